"""SavedModel export of a distilled student from the current backend.

One export (with its fresh-process verification) is shared by the module:
each export from PyTorch runs TensorFlow child processes (~5-8 s each).
"""

import os

import keras
import numpy as np
import pytest

from keras_mixkd import cli
from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.export import export_student
from keras_mixkd.models import get_model

tf = pytest.importorskip("tensorflow")

INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10


def _distilled(seed=0):
    """A tiny teacher -> student distillation, one epoch on random data."""
    keras.utils.set_random_seed(seed)
    teacher = get_model("digits_cnn", NUM_CLASSES, INPUT_SHAPE)
    student = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
    distiller = Distiller(teacher, student, temperature=4.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(seed)
    x = rng.random((16,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, 16)
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return distiller


def _weight_count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.backend.clear_session()
    distiller = _distilled()
    export_dir = str(tmp_path_factory.mktemp("export") / "student")
    result = export_student(distiller, export_dir)
    return distiller, export_dir, result


def test_export_reports_a_fresh_process_verification(exported):
    distiller, export_dir, result = exported
    assert result.verified
    assert result.max_abs_diff <= 1e-5
    assert result.batch_sizes == (4, 1)
    assert result.backend == keras.backend.backend()
    assert result.num_params == _weight_count(distiller.student.weights)
    assert "(None, 8, 8, 1)" in result.signature
    text = str(result)
    assert "Verified" in text and "fresh process" in text
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    # Only the SavedModel is left: the staging folder is gone.
    assert [p for p in os.listdir(os.path.dirname(export_dir)) if p.startswith(".")] == []


@pytest.mark.parametrize("batch_size", [1, 3])
def test_savedmodel_predicts_what_the_student_predicts(exported, batch_size):
    distiller, export_dir, _ = exported
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert spec.shape.as_list() == [None, *INPUT_SHAPE]  # Dynamic batch dimension.
    x = np.random.default_rng(batch_size).random((batch_size,) + INPUT_SHAPE, dtype=np.float32)
    (outputs,) = serve(**{name: tf.constant(x)}).values()
    expected = keras.ops.convert_to_numpy(distiller.student(x, training=False))
    assert outputs.shape == (batch_size, NUM_CLASSES)
    np.testing.assert_allclose(outputs.numpy(), expected, rtol=0, atol=1e-5)


def test_teacher_is_not_in_the_export(exported):
    distiller, export_dir, _ = exported
    loaded = tf.saved_model.load(export_dir)
    student_count = _weight_count(distiller.student.weights)
    teacher_count = _weight_count(distiller.teacher.weights)
    assert teacher_count != student_count
    assert _weight_count(loaded.variables) == student_count
    shapes = sorted(tuple(v.shape) for v in loaded.variables)
    assert shapes == sorted(tuple(v.shape) for v in distiller.student.weights)


def test_cli_exports_a_saved_distiller_over_a_stale_savedmodel(exported, tmp_path, capsys):
    distiller, _, _ = exported
    keras_path = str(tmp_path / "distiller.keras")
    distiller.save(keras_path)
    output = tmp_path / "served"
    output.mkdir()
    (output / "saved_model.pb").write_bytes(b"stale")
    # An existing path is refused without --overwrite, with a clear message.
    assert cli.main(["export", keras_path, str(output)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["export", keras_path, str(output), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "Verified" in printed and "max |SavedModel - Keras pipeline|" in printed
    loaded = tf.saved_model.load(str(output))
    assert _weight_count(loaded.variables) == _weight_count(distiller.student.weights)
    x = np.random.default_rng(7).random((2,) + INPUT_SHAPE, dtype=np.float32)
    expected = keras.ops.convert_to_numpy(distiller.student(x, training=False))
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(), expected, rtol=0, atol=1e-5)


def test_existing_path_is_refused_without_overwrite(tmp_path):
    model = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("not a SavedModel")
    with pytest.raises(ValueError, match="already exists.*overwrite=True"):
        export_student(model, str(target))
    # overwrite=True still never deletes something that is not a SavedModel.
    with pytest.raises(ValueError, match="not a SavedModel"):
        export_student(model, str(target), overwrite=True)
    assert (target / "keep.txt").read_text() == "not a SavedModel"


def test_model_never_built_is_refused(tmp_path):
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="never built"):
        export_student(model, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_wrong_inputs_are_refused(tmp_path):
    with pytest.raises(TypeError, match="Distiller, a keras.Model or the path"):
        export_student(object(), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="No model file"):
        export_student(str(tmp_path / "missing.keras"), str(tmp_path / "out"))
    model = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
    with pytest.raises(TypeError, match="export_dir"):
        export_student(model, 3)
    with pytest.raises(ValueError, match="verify_batch_size"):
        export_student(model, str(tmp_path / "out"), verify_batch_size=1)


def test_mixed_precision_student_exports_float32_logits(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        student = get_model("digits_cnn_small", NUM_CLASSES, INPUT_SHAPE)
    finally:
        keras.config.set_dtype_policy("float32")
    assert student.get_layer("features").compute_dtype == "bfloat16"
    result = export_student(student, str(tmp_path / "mixed"), verify=False)
    assert result.tolerance == 0.25  # The bound verification would use for bfloat16.
    serve = tf.saved_model.load(str(tmp_path / "mixed")).signatures["serving_default"]
    x = np.random.default_rng(3).random((2,) + INPUT_SHAPE, dtype=np.float32)
    (outputs,) = serve(**{next(iter(serve.structured_input_signature[1])): tf.constant(x)}).values()
    assert outputs.dtype == tf.float32
    expected = keras.ops.convert_to_numpy(student(x, training=False))
    np.testing.assert_allclose(outputs.numpy(), expected, rtol=0, atol=0.25)
