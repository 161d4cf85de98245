"""SavedModel export of a distilled student from the current backend.

One export (with its fresh-process verification) is shared by the module:
each export from PyTorch runs TensorFlow child processes (~5-8 s each), so
each further export here checks several things at once.
"""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from keras_mixkd import cli
from keras_mixkd.distill.distiller import Distiller
from keras_mixkd.export import export_student
from keras_mixkd.models import get_model
from tests.helpers import BACKEND
from tests.helpers import run_cli
from tests.helpers import run_cli_ok

tf = pytest.importorskip("tensorflow")

INPUT_SHAPE = (8, 8, 1)
NUM_CLASSES = 10


def _normalization():
    return keras.layers.Normalization(mean=0.5, variance=0.09, name="input_normalization")


@keras.saving.register_keras_serializable(package="keras_mixkd_tests")
class SubclassedStudent(keras.Model):
    """A user's subclassed student (normalisation inside, logits out), importable by the export's child."""

    def __init__(self, num_classes=NUM_CLASSES, **kwargs):
        super().__init__(**kwargs)
        self.normalize = _normalization()
        # Built here, eagerly: built in a subclassed model's first call, its constants would be
        # tensors of Keras's scratch graph under TensorFlow (a Keras 3.15 quirk, not the export's).
        self.normalize.build((None,) + INPUT_SHAPE)
        self.flatten = keras.layers.Flatten()
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.classifier = keras.layers.Dense(num_classes)

    def call(self, images):
        return self.classifier(self.hidden(self.flatten(self.normalize(images))))


class NeedsConfig(keras.Model):
    """A subclassed model taking a function: Keras cannot save it without a `get_config`."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.classifier = keras.layers.Dense(NUM_CLASSES, activation=activation)

    def call(self, images):
        return self.classifier(keras.ops.reshape(images, (-1, 64)))


def _signature(export_dir):
    """(input name, input spec, output names) of the SavedModel's serving_default, as TensorFlow reads it."""
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    return name, spec, sorted(serve.structured_outputs)


def _distilled(seed=0):
    """A tiny teacher -> subclassed student distillation, one epoch on random data.

    A zoo student's export from a `Distiller` is checked in tests/test_ship.py.
    """
    keras.utils.set_random_seed(seed)
    teacher = get_model("digits_cnn", NUM_CLASSES, INPUT_SHAPE)
    student = SubclassedStudent(name="subclassed_student")
    distiller = Distiller(teacher, student, temperature=4.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    rng = np.random.default_rng(seed)
    x = rng.random((16,) + INPUT_SHAPE, dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, 16)
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return distiller


def _weight_count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


VERIFY_IMAGES = np.random.default_rng(5).random((5,) + INPUT_SHAPE, dtype=np.float32)


# The tests of one exported student share it: one pytest-xdist worker builds it (a SavedModel written
# and verified in child processes, ~5-9 s), rather than each worker.
shares_the_export = pytest.mark.xdist_group("test_export_exported")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.backend.clear_session()
    distiller = _distilled()
    export_dir = str(tmp_path_factory.mktemp("export") / "student")
    result = export_student(distiller, export_dir, verify_images=VERIFY_IMAGES)
    return distiller, export_dir, result


@shares_the_export
def test_export_reports_a_fresh_process_verification(exported):
    distiller, export_dir, result = exported
    # A subclassed student, verified on the given images (and the first of them alone).
    assert result.verified
    assert result.max_abs_diff <= 1e-5
    assert result.batch_sizes == (5, 1)
    assert result.backend == keras.backend.backend()
    assert result.num_params == _weight_count(distiller.student.weights)
    assert "images: float32 (None, 8, 8, 1) -> output_0: float32 (None, 10)" in result.signature
    text = str(result)
    assert "Verified" in text and "fresh process" in text
    assert text.startswith("Exported student 'subclassed_student'")
    # The bound is the tolerance times the outputs' scale on the verification images.
    outputs = keras.ops.convert_to_numpy(distiller.student(VERIFY_IMAGES, training=False))
    scale = max(1.0, float(np.abs(outputs).max()))
    assert result.tolerance == 1e-5 and result.bound == pytest.approx(1e-5 * scale, rel=1e-6)
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    # Only the SavedModel is left: the staging folder is gone.
    assert [p for p in os.listdir(os.path.dirname(export_dir)) if p.startswith(".")] == []


@shares_the_export
@pytest.mark.parametrize("batch_size", [1, 3])
def test_savedmodel_predicts_what_the_student_predicts(exported, batch_size):
    distiller, export_dir, _ = exported
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert spec.shape.as_list() == [None, *INPUT_SHAPE]  # Dynamic batch dimension.
    assert (name, list(serve.structured_outputs)) == ("images", ["output_0"])
    x = np.random.default_rng(batch_size).random((batch_size,) + INPUT_SHAPE, dtype=np.float32)
    (outputs,) = serve(**{name: tf.constant(x)}).values()
    expected = keras.ops.convert_to_numpy(distiller.student(x, training=False))
    assert outputs.shape == (batch_size, NUM_CLASSES)
    np.testing.assert_allclose(outputs.numpy(), expected, rtol=0, atol=1e-5)


@shares_the_export
def test_teacher_is_not_in_the_export(exported):
    distiller, export_dir, _ = exported
    loaded = tf.saved_model.load(export_dir)
    student_count = _weight_count(distiller.student.weights)
    teacher_count = _weight_count(distiller.teacher.weights)
    assert teacher_count != student_count
    assert _weight_count(loaded.variables) == student_count
    shapes = sorted(tuple(v.shape) for v in loaded.variables)
    assert shapes == sorted(tuple(v.shape) for v in distiller.student.weights)


@shares_the_export
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
    # --no-verify: this test compares the SavedModel itself below (the command line's verification is
    # tested by the far-from-origin and uint8 exports).
    assert cli.main(["export", keras_path, str(output), "--overwrite", "--no-verify"]) == 0
    printed = capsys.readouterr().out
    assert "Not verified (verify=False, or --no-verify" in printed and "Verified" not in printed
    card = json.load(open(output / "metadata.json"))
    assert card["export"]["verified"] is False and card["export"]["max_abs_diff"] is None
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
    with pytest.raises(ValueError, match=r"`verify_images` must be at least 2 images.*shape \(3,\)"):
        export_student(model, str(tmp_path / "out"), verify_images=np.zeros(3))
    with pytest.raises(ValueError, match=r"`verify_images` must be .* of shape \(8, 8, 1\).*\(2, 9, 9, 1\)"):
        export_student(model, str(tmp_path / "out"), verify_images=np.zeros((2, 9, 9, 1)))
    assert list(tmp_path.iterdir()) == []


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


# ---------------------------------------------------------------------------
# The tolerance is relative to the outputs' scale; every model kind serves `images`
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def far_from_origin(tmp_path_factory):
    """A Sequential model whose logits lie around 2000, saved as .keras (no model card beside it)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(INPUT_SHAPE), _normalization(), keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(NUM_CLASSES),
    ], name="far_from_origin")
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 1000.0, bias + 1000.0])
    path = str(tmp_path_factory.mktemp("far") / "far.keras")
    model.save(path)
    return model, path


def test_logits_far_from_origin_pass_and_a_wrong_export_still_fails(far_from_origin, tmp_path, capsys,
                                                                      monkeypatch):
    model, path = far_from_origin
    # Float32 logits around 2000 carry ~1e-4 of rounding between two engines: refused by an
    # absolute 1e-5, accepted by 1e-5 x max(1, max |output|).
    target = str(tmp_path / "far")
    out = run_cli_ok(capsys, "export", path, target)
    assert out.startswith("Exported model 'far_from_origin'")  # No model card names it student or teacher.
    card = json.load(open(os.path.join(target, "metadata.json")))
    x = np.random.default_rng(0).random((4,) + INPUT_SHAPE, dtype=np.float32)  # The default verification batch.
    scale = float(np.abs(keras.ops.convert_to_numpy(model(x, training=False))).max())
    assert scale > 1000.0
    assert card["export"]["tolerance"] == 1e-5
    assert card["export"]["max_abs_diff_allowed"] == pytest.approx(1e-5 * scale, rel=1e-6)
    assert card["export"]["max_abs_diff"] <= card["export"]["max_abs_diff_allowed"]
    # A Sequential model serves `images` -> `output_0` too, and the card says so.
    name, spec, outputs = _signature(target)
    assert (name, spec.shape.as_list(), outputs) == ("images", [None, *INPUT_SHAPE], ["output_0"])
    assert card["input"]["name"] == "images" and card["output"]["name"] == "output_0"

    # A genuinely wrong export: the SavedModel checked against Keras outputs 0.1 % of their
    # scale away (what a changed weight gives) is still refused, and nothing is written.
    from keras_mixkd.export import child

    real_run_child = child.run_child

    def keras_side_off_by_a_thousandth(arguments, what):
        if arguments[0] == "write":  # PyTorch: the SavedModel written above, without a second child process.
            shutil.copytree(target, arguments[3])
            return {"written": arguments[3], "route": "keras.export.ExportArchive"}
        if arguments[0] == "verify":
            batch = dict(np.load(arguments[3]))
            batch["expected"][:, 0] += 1e-3 * np.abs(batch["expected"]).max()
            np.savez(arguments[3], **batch)
        return real_run_child(arguments, what)

    monkeypatch.setattr(child, "run_child", keras_side_off_by_a_thousandth)
    wrong = str(tmp_path / "wrong")
    status, _, err = run_cli(capsys, "export", path, wrong, "--tolerance", "1e-4")
    assert status == 2
    assert "error: The SavedModel does not predict what the Keras model predicts" in err
    assert "tolerance 0.0001 x max(1, max |output|)" in err
    assert not os.path.exists(wrong)


@pytest.mark.backend_independent
@pytest.mark.parametrize("tolerance", ["-1", "nan", "inf"])
def test_a_tolerance_that_is_not_a_finite_number_at_least_0_is_refused(tolerance, tmp_path, capsys):
    status, _, err = run_cli(capsys, "export", str(tmp_path / "any.keras"), str(tmp_path / "out"),
                             "--tolerance", tolerance)
    assert status == 2
    assert err.startswith("keras-mixkd export: error: `tolerance` (--tolerance) must be a finite number >= 0")
    assert f"got {float(tolerance)!r}" in err


def test_functional_model_with_an_unnamed_input_serves_uint8_images_and_a_teacher_is_named(tmp_path, capsys):
    inputs = keras.Input(INPUT_SHAPE)  # Keras names it input_layer_<n>.
    hidden = keras.layers.Flatten()(_normalization()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(NUM_CLASSES)(hidden), name="users_teacher")
    assert model.inputs[0].name != "images"
    path = str(tmp_path / "teacher.keras")
    model.save(path)
    with open(path + ".json", "w") as handle:  # The record `train-teacher` writes beside its file.
        json.dump({"model_card": {"role": "teacher"}}, handle)
    target = str(tmp_path / "functional")
    # Verified on random pixels: uint8 ones, what the SavedModel then takes.
    out = run_cli_ok(capsys, "export", path, target, "--input-dtype", "uint8")
    assert out.startswith("Exported teacher 'users_teacher'") and "Verified" in out
    name, spec, outputs = _signature(target)
    assert (name, spec.shape.as_list(), spec.dtype, outputs) == ("images", [None, *INPUT_SHAPE], tf.uint8,
                                                                 ["output_0"])


def test_a_class_the_export_process_cannot_import_is_named(tmp_path):
    from keras_mixkd.serving_signature import model_classes

    class LocalStudent(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.classifier = keras.layers.Dense(NUM_CLASSES)

        def call(self, images):
            return self.classifier(keras.ops.reshape(images, (-1, 64)))

    model = LocalStudent()
    model(np.zeros((2,) + INPUT_SHAPE, "float32"))
    assert model_classes(SubclassedStudent()) == ["tests.test_export:SubclassedStudent"]
    with pytest.raises(ValueError, match="LocalStudent defined inside a function.*importable module"):
        model_classes(model)
    if BACKEND == "torch":  # Refused before anything is written; TensorFlow and JAX export them in-process.
        with pytest.raises(ValueError, match="export from the TensorFlow or JAX backend"):
            export_student(model, str(tmp_path / "out"), verify=False)
        needs_config = NeedsConfig(lambda x: x, name="needs_config")
        needs_config(np.zeros((2,) + INPUT_SHAPE, "float32"))
        with pytest.raises(ValueError, match=r"'needs_config' cannot be saved to a .keras file \(Object NeedsConfig "
                                             r"was created by .*give its classes a `get_config`"):
            export_student(needs_config, str(tmp_path / "out"), verify=False)
        assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_a_subclassed_model_that_does_not_take_one_batch_of_images_is_refused(tmp_path):
    class DictInput(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.classifier = keras.layers.Dense(NUM_CLASSES)

        def call(self, inputs):
            return self.classifier(keras.ops.reshape(inputs["images"], (-1, 64))) + inputs["bias"]

    class TwoArguments(DictInput):
        def call(self, images, bias):
            return self.classifier(keras.ops.reshape(images, (-1, 64))) + bias

    x, bias = np.zeros((2,) + INPUT_SHAPE, "float32"), np.zeros((2, NUM_CLASSES), "float32")
    dict_input = DictInput(name="dict_input")
    dict_input({"images": x, "bias": bias})
    with pytest.raises(ValueError, match="input shape of the subclassed model 'dict_input'.*not one batch of images"):
        export_student(dict_input, str(tmp_path / "out"), verify=False)
    if BACKEND != "torch":  # On PyTorch the class, defined in this function, is refused first (test above).
        two = TwoArguments(name="two_arguments")
        two(x, bias)
        with pytest.raises(ValueError, match="calls model 'two_arguments' on one batch of images 'images'"):
            export_student(two, str(tmp_path / "out"), verify=False)
    assert not (tmp_path / "out").exists()
    assert [path.name for path in tmp_path.iterdir()] == []  # No staging folder left either.
