"""keras_mixkd.saving.load_model: the one loader of every `.keras` file, through the API and the CLI."""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_mixkd
from keras_mixkd import cli
from keras_mixkd.models import get_model
from keras_mixkd.saving import as_graph_model
from keras_mixkd.saving import load_model

SHAPE, CLASSES = (8, 8, 1), 10


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def digits_batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE)).astype("float32"), rng.integers(0, CLASSES, n)


def sequential_file(path):
    """A plain keras.Sequential without an Input, built by fit on a batch of 8 (as a user writes it)."""
    model = keras.Sequential([keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(),
                              keras.layers.Dense(CLASSES)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = digits_batch(8)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(path)
    return model


def distiller_file(path, train_teacher=True):
    """A saved Distiller whose teacher was compiled and trained before it was wrapped (the README's way)."""
    x, y = digits_batch(16)
    teacher = get_model("digits_cnn_small", CLASSES, SHAPE)
    if train_teacher:
        teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        teacher.fit(x, y, epochs=1, verbose=0)
    distiller = keras_mixkd.Distiller(teacher, get_model("digits_cnn_small", CLASSES, SHAPE))
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    distiller.fit(x, y, epochs=1, verbose=0)
    distiller.save(path)
    return distiller


def numpy(values):
    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in values]


def test_a_sequential_without_input_loads_as_a_graph_model_with_the_same_outputs(tmp_path):
    path = str(tmp_path / "seq.keras")
    original = sequential_file(path)
    model = load_model(path, num_classes=CLASSES)
    assert model.input_shape == (None, *SHAPE) and model.output_shape == (None, CLASSES)
    # Another batch size than the one it was built with, inputs far from the origin.
    x = (np.random.default_rng(1).random((5, *SHAPE)) * 50 + 100).astype("float32")
    np.testing.assert_allclose(model.predict_on_batch(x), original.predict_on_batch(x[:8]), rtol=1e-5, atol=1e-4)
    direct = as_graph_model(original)
    np.testing.assert_allclose(direct.predict_on_batch(x), original.predict_on_batch(x), rtol=1e-5, atol=1e-4)
    assert as_graph_model(model) is model  # already a graph: unchanged


def test_a_sequential_file_is_evaluated_measured_and_used_as_a_teacher(capsys, tmp_path):
    path = str(tmp_path / "seq.keras")
    sequential_file(path)
    status, out, err = run_cli(capsys, "evaluate", path, "--split", "test")
    assert status == 0, err
    assert out.startswith("test: accuracy ")
    status, out, err = run_cli(capsys, "measure", path, "--measures", "accuracy", "class_discrimination")
    assert status == 0, err
    assert "class_discrimination" in out
    student = str(tmp_path / "student.keras")
    status, out, err = run_cli(capsys, "distill", "--teacher", path, "--student", "digits_cnn_small",
                               "--epochs", "1", "--output", student)
    assert status == 0, err
    assert os.path.isfile(student) and "saved" in out


def test_a_saved_distiller_gives_its_student_its_teacher_or_itself(tmp_path):
    path = str(tmp_path / "distiller.keras")
    distiller = distiller_file(path)
    student = load_model(path, num_classes=CLASSES)
    teacher = load_model(path, part="teacher")
    whole = load_model(path, part="distiller")
    assert isinstance(whole, keras_mixkd.Distiller)
    for loaded, original in ((student, distiller.student), (teacher, distiller.teacher)):
        for a, b in zip(numpy(loaded.weights), numpy(original.weights)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="part must be one of student, teacher, distiller; got 'both'"):
        load_model(path, part="both")


def test_a_saved_distiller_as_teacher_distils_from_its_student(capsys, tmp_path):
    path = str(tmp_path / "distiller.keras")
    distiller_file(path)
    output = str(tmp_path / "student.keras")
    status, out, err = run_cli(capsys, "distill", "--teacher", path, "--student", "digits_cnn_small",
                               "--epochs", "1", "--output", output)
    assert status == 0, err
    assert os.path.isfile(output)
    status, out, err = run_cli(capsys, "evaluate", path, "--split", "test")
    assert status == 0, err


def test_reloading_a_distiller_warns_of_no_skipped_optimizer_variables(tmp_path):
    path = str(tmp_path / "distiller.keras")
    distiller = distiller_file(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reloaded = load_model(path, part="distiller")
    skipped = [str(w.message) for w in caught if "Skipping variable loading" in str(w.message)]
    assert not skipped
    # The Distiller's own optimizer state comes back whole.
    assert len(reloaded.optimizer.variables) == len(distiller.optimizer.variables)
    for a, b in zip(numpy(reloaded.optimizer.variables), numpy(distiller.optimizer.variables)):
        np.testing.assert_array_equal(a, b)


def test_bad_files_and_arguments_are_refused_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file at .*gone.keras"):
        load_model(str(tmp_path / "gone.keras"))
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_model(str(tmp_path))
    with pytest.raises(TypeError, match="path must be the path of a .keras file"):
        load_model(3)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=f"Cannot load the teacher {junk}: it is not a .keras archive"):
        load_model(str(junk), what="teacher")
    three = str(tmp_path / "three.keras")
    get_model("digits_cnn_small", 3, SHAPE).save(three)
    with pytest.raises(ValueError, match="predicts 3 classes but the data has 10"):
        load_model(three, num_classes=10)


def test_every_loader_of_the_library_is_this_one():
    # The study's load_teacher and export's loader go through keras_mixkd.saving.
    import inspect

    from keras_mixkd import export
    from keras_mixkd.study import runner

    assert "load_model(" in inspect.getsource(runner.load_teacher)
    assert "keras.saving.load_model" not in inspect.getsource(export)
    assert "keras.saving.load_model" not in inspect.getsource(runner)
