"""Bad input, through the Python API and the `keras-mixkd` command: a clear error, never a traceback.

Each case names what was wrong and what to do. The command-line cases call
`keras_mixkd.cli.main` in this process (same code, no second Keras import) and
check it prints one line and exits 2; one test runs the installed
`keras-mixkd` in a fresh process, for a bad recipe and for an unknown
KERAS_BACKEND (read when Keras is first imported).
"""

import errno
import json
import os
import re
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from keras_mixkd import Distiller
from keras_mixkd._checks import NonFiniteLossError
from keras_mixkd._checks import explain_error
from keras_mixkd.data import make_dataset
from keras_mixkd.models import get_model
from tests.helpers import run_cli
from tests.helpers import tiny_study_argv

BACKEND = keras.backend.backend()
NUM_CLASSES = 10
SHAPE = (8, 8, 1)


def images(n=16, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


def labels(n=16, seed=0):
    return np.random.default_rng(seed).integers(0, NUM_CLASSES, n)


def with_value(array, index, value):
    array = array.copy()
    array.flat[index] = value
    return array


def assert_one_clear_line(status, err, *fragments):
    assert status == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("keras-mixkd ") and ": error: " in lines[0], err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, err)


def keras_mixkd_command():
    script = os.path.join(os.path.dirname(sys.executable), "keras-mixkd")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "keras_mixkd.cli"]


def run_subprocess(*argv, backend=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run([*keras_mixkd_command(), *argv], env=env, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout, done.stderr


# ------------------------------------------------------------------ arrays


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: (with_value(images(), 3 * 64 + 5, np.nan), labels()), ValueError,
         r"images holds 1 NaN and 0 infinite values \(first in example 3\): repair or drop"),
        (lambda: (with_value(images(), 7 * 64, np.inf), labels()), ValueError,
         r"images holds 0 NaN and 1 infinite values \(first in example 7\)"),
        (lambda: (images(), with_value(np.eye(NUM_CLASSES, dtype="float32")[labels()], 25, np.nan)),
         ValueError, r"labels holds 1 NaN and 0 infinite values \(first in example 2\)"),
        (lambda: (images(), with_value(labels(), 4, NUM_CLASSES)), ValueError,
         r"class id 10, out of range for num_classes=10"),
        (lambda: (images(), with_value(labels(), 4, -1)), ValueError, r"negative class id \(-1\)"),
        (lambda: (images()[:0], labels()[:0]), ValueError, r"images is empty"),
        (lambda: ("images.npy", labels()), ValueError, r"images must have shape \(N, height, width, channels\)"),
        (lambda: (images()[..., 0], labels()), ValueError, r"got shape \(16, 8, 8\)"),
        (lambda: ((images() * 255).astype("uint8"), labels()), TypeError, r"got dtype uint8; divide integer"),
        (lambda: (images(), labels()[:15]), ValueError, r"Got 16 images but 15 labels"),
        (lambda: (images(), np.array(["3"] * 16)), ValueError, r"labels must be integer class ids .* dtype <U1"),
    ],
    ids=["nan-image", "inf-image", "nan-soft-label", "label-too-large", "negative-label", "empty",
         "string", "no-channel-axis", "uint8", "length-mismatch", "string-labels"],
)
def test_make_dataset_refuses_bad_arrays(make, error, message):
    x, y = make()
    with pytest.raises(error, match=message):
        make_dataset(x, y, batch_size=8, num_classes=NUM_CLASSES)


def make_distiller():
    teacher = get_model("digits_cnn", NUM_CLASSES, input_shape=SHAPE)
    student = get_model("digits_cnn_small", NUM_CLASSES, input_shape=SHAPE)
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="sgd")
    return distiller


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: (with_value(images(), 2 * 64, np.nan), labels()), ValueError,
         r"x holds 1 NaN and 0 infinite values \(first in example 2\)"),
        (lambda: ({"images": images(), "teacher_images": with_value(images(), 5 * 64, -np.inf)}, labels()),
         ValueError, r"teacher_images holds 0 NaN and 1 infinite values \(first in example 5\)"),
        (lambda: (images(), with_value(labels(), 6, 12)), ValueError,
         r"class id 12 \(example 6\), out of range for 10 classes: class ids must lie in \[0, 10\)"),
        (lambda: (images(), with_value(labels(), 1, -3)), ValueError, r"negative class id -3 \(example 1\)"),
        (lambda: (images(), labels().astype("float32") + 0.5), TypeError,
         r"must be integer class ids, got the non-integer value .*soft labels as rows"),
        (lambda: (images()[:0], labels()[:0]), ValueError, r"x is empty \(shape \(0, 8, 8, 1\)\)"),
        (lambda: (images(), np.full((16, NUM_CLASSES), 0.2, "float32")), ValueError,
         r"rows must be probabilities summing to 1; row 0 sums to 2"),
        (lambda: (images(), with_value(np.eye(NUM_CLASSES, dtype="float32")[labels()], 33, np.nan)),
         ValueError, r"labels holds 1 NaN"),
    ],
    ids=["nan-image", "inf-teacher-image", "label-too-large", "negative-label", "fractional-label",
         "empty", "soft-rows-not-summing-to-1", "nan-soft-label"],
)
def test_distiller_refuses_bad_arrays_before_any_step(make, error, message):
    x, y = make()
    distiller = make_distiller()
    before = [w.copy() for w in distiller.get_weights()]
    with pytest.raises(error, match=message):
        distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = distiller.get_weights()
    assert len(after) == len(before)
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)


# ----------------------------------------------------------- saved models


def write_corrupt_models(folder):
    """A garbage file, a .keras cut in half (a crash mid-copy), a zip without a model."""
    model = get_model("digits_cnn", NUM_CLASSES, input_shape=SHAPE)
    good = os.path.join(folder, "good.keras")
    model.save(good)
    paths = {}
    paths["garbage"] = os.path.join(folder, "garbage.keras")
    with open(paths["garbage"], "wb") as f:
        f.write(b"this is not a keras file\n")
    paths["truncated"] = os.path.join(folder, "truncated.keras")
    with open(good, "rb") as f:
        data = f.read()
    with open(paths["truncated"], "wb") as f:
        f.write(data[: len(data) // 2])
    paths["empty-zip"] = os.path.join(folder, "empty-zip.keras")
    with zipfile.ZipFile(paths["empty-zip"], "w") as archive:
        archive.writestr("readme.txt", "no model here")
    return good, paths


def test_corrupt_keras_files_are_named_through_api_and_cli(capsys, tmp_path):
    from keras_mixkd.study.runner import load_teacher

    good, paths = write_corrupt_models(str(tmp_path))
    assert load_teacher(good, NUM_CLASSES).output_shape == (None, NUM_CLASSES)
    problems = {"garbage": "not a zip file", "truncated": "cut short by an interrupted copy",
                "empty-zip": "holds no Keras model (no config.json"}
    for kind, path in paths.items():
        with pytest.raises(ValueError, match=f"Cannot load the teacher {re.escape(path)}: .*{re.escape(problems[kind])}"):
            load_teacher(path, NUM_CLASSES)
        status, _, err = run_cli(capsys, "evaluate", path, "--split", "val")
        assert_one_clear_line(status, err, path, problems[kind])
        status, _, err = run_cli(capsys, "distill", "--teacher", path, "--student", "digits_cnn_small",
                                 "--output", str(tmp_path / "s.keras"), "--epochs", "1")
        assert_one_clear_line(status, err, path, problems[kind])
    status, _, err = run_cli(capsys, "evaluate", str(tmp_path / "missing.keras"))
    assert_one_clear_line(status, err, "No model file at", "missing.keras")


def test_a_teacher_that_outputs_probabilities_is_refused_with_the_way_out(capsys, tmp_path):
    from keras_mixkd.study.runner import load_teacher

    logits = get_model("digits_cnn", NUM_CLASSES, input_shape=SHAPE)
    softmax_teacher = keras.Model(logits.inputs, keras.layers.Softmax()(logits.outputs[0]))
    path = str(tmp_path / "softmax_teacher.keras")
    softmax_teacher.save(path)
    student = get_model("digits_cnn_small", NUM_CLASSES, input_shape=SHAPE)
    with pytest.raises(ValueError, match="outputs probabilities, not logits. Pass teacher_outputs='probabilities'"):
        Distiller(load_teacher(path, NUM_CLASSES), student)
    status, _, err = run_cli(capsys, "distill", "--teacher", path, "--student", "digits_cnn_small",
                             "--output", str(tmp_path / "s.keras"), "--epochs", "1", "--verbose", "0")
    assert_one_clear_line(status, err, "ends in a softmax", "probabilities, not logits")
    assert not os.path.exists(tmp_path / "s.keras")


# ----------------------------------------------------- recipes and backends


BAD_RECIPES = {
    # file text, fragments of the one line printed
    "syntax.toml": ('name = "x"\nseeds = [0]\n[data]\ndataset = "digits\n', ["not valid TOML", "line 4"]),
    "key.toml": ('name = "x"\n\n[data]\nbatch_sise = 64\n',
                 ["line 4", "data.batch_sise", "unknown key 'batch_sise'", "Did you mean 'batch_size'?"]),
    "value.toml": ('name = "x"\n[teacher]\nepochs = "ten"\n', ["line 3", "teacher.epochs", "expected an integer"]),
    "binary.toml": (b"\xff\xfe\x00garbage", ["not valid TOML", "utf-8"]),
}


@pytest.mark.backend_independent
def test_corrupt_recipes_and_unknown_backends_are_one_line(capsys, tmp_path):
    for name, (text, fragments) in BAD_RECIPES.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        status, out, err = run_cli(capsys, "study", "--recipe", str(path), "--dry-run")
        assert_one_clear_line(status, err, str(path), *fragments)
    status, _, err = run_cli(capsys, "study", "--recipe", str(tmp_path / "absent.toml"))
    assert_one_clear_line(status, err, "absent.toml", "does not exist")

    # --backend is checked by argparse: its usage line, then the error naming the choices.
    status, _, err = run_cli(capsys, "--backend", "foo", "study", "--dry-run")
    assert status == 2 and "Traceback" not in err
    assert "argument --backend: invalid choice: 'foo'" in err.strip().splitlines()[-1]
    assert "tensorflow" in err and "jax" in err and "torch" in err


UNUSED_OPTION_RECIPE = """\
name = "x"

[[pairs]]
teacher = "digits_cnn"
student = "digits_cnn_small"

[[distillation]]
name = "kd"

[distillation.augmentation_options.mixup]
alpha = 0.2
"""


@pytest.mark.backend_independent
def test_an_option_for_an_augmentation_not_in_use_is_refused_on_every_path(capsys, tmp_path):
    teacher, student = str(tmp_path / "t.keras"), str(tmp_path / "s.keras")
    for flags, fragments in [
        (["--fraction", "0.5"], ["error: --fraction 0.5 (fraction= in Python) is an option of augmentation "
                                 "'partial_mixup', which this run does not use (augmentations in use: none)"]),
        (["--alpha", "0.2", "--augmentation", "standard"],
         ["error: --alpha 0.2 (alpha= in Python) is an option of the augmentations 'mixup', 'cutmix'",
          "(augmentations in use: standard)"]),
    ]:
        status, _, err = run_cli(capsys, "distill", "--teacher", teacher, "--student", "digits_cnn_small",
                                 "--output", student, *flags)
        assert_one_clear_line(status, err, "keras-mixkd distill: ", *fragments)
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn", "--output", teacher,
                             "--option", "mixup.alpha=0.2")
    assert_one_clear_line(status, err, "keras-mixkd train-teacher: error: --option mixup.alpha=0.2 is an option "
                          "of augmentation 'mixup', which this run does not use (augmentations in use: none)")
    recipe = tmp_path / "unused.toml"
    recipe.write_text(UNUSED_OPTION_RECIPE)
    status, _, err = run_cli(capsys, "study", "--recipe", str(recipe), "--dry-run", "--runs-dir", str(tmp_path))
    assert_one_clear_line(status, err, f"{recipe}, line 11: distillation[0].augmentation_options.mixup.alpha: "
                          "option 'mixup.alpha' is an option of augmentation 'mixup', which this run does not use "
                          "(augmentations in use: none)")
    assert not os.path.exists(teacher) and not os.path.exists(student)


def test_measure_names_the_layer_flag(capsys, tmp_path):
    path = str(tmp_path / "m.keras")
    get_model("digits_cnn_small", NUM_CLASSES, input_shape=SHAPE).save(path)
    status, _, err = run_cli(capsys, "measure", path, "--layer", "pool")
    assert_one_clear_line(status, err, "keras-mixkd measure: error: ", "has no layer named 'pool' (given as --layer "
                          "(layer= in Python))")
    assert "layer_name" not in err


@pytest.mark.backend_independent
def test_the_installed_command_prints_one_line_for_a_bad_recipe_and_an_unknown_backend(tmp_path):
    """The real `keras-mixkd` in a fresh process: KERAS_BACKEND is read when Keras is first imported."""
    text, fragments = BAD_RECIPES["key.toml"]
    path = tmp_path / "key.toml"
    path.write_text(text)
    status, _, err = run_subprocess("study", "--recipe", str(path), "--dry-run")
    assert_one_clear_line(status, err, str(path), *fragments)
    status, _, err = run_subprocess("study", "--dry-run", backend="foo")
    assert_one_clear_line(status, err, "Unknown backend 'foo' (from KERAS_BACKEND)",
                          "choose one of tensorflow, jax, torch")


# ------------------------------------------------------- disks and folders


SMALL_STUDY = tiny_study_argv("--set", 'teacher.augmentations=["none"]', "--set", 'distillation=[{name = "kd"}]',
                              "--set", "student.baseline=false", teacher_epochs=1, student_epochs=1,
                              train_examples=128)


def test_unwritable_output_folder_is_one_line(capsys, tmp_path):
    blocker = tmp_path / "file.txt"  # root ignores chmod: a path under a file is unwritable for anyone
    blocker.write_text("a file, not a folder")
    runs = str(blocker / "sub")
    status, _, err = run_cli(capsys, *SMALL_STUDY, "--runs-dir", runs, "--name", "x")
    assert_one_clear_line(status, err, "Cannot use", "Not a directory", "folder you can write to")
    for command in (["train-teacher", "--model", "digits_cnn"],
                    ["distill", "--teacher", write_teacher(tmp_path), "--student", "digits_cnn_small"]):
        # Refused before training, not after an epoch's work.
        status, out, err = run_cli(capsys, *command, "--epochs", "1", "--verbose", "0",
                                   "--output", str(blocker / "model.keras"))
        assert_one_clear_line(status, err, "--output", str(blocker), "cannot create its folder")
        assert "test accuracy" not in out
    assert blocker.read_text() == "a file, not a folder"


def write_teacher(folder):
    path = os.path.join(folder, "teacher.keras")
    get_model("digits_cnn", NUM_CLASSES, input_shape=SHAPE).save(path)
    return path


def test_full_disk_is_one_line_and_leaves_no_partial_files(capsys, tmp_path, monkeypatch):
    from keras_mixkd.study import atomic

    target = tmp_path / "kept.json"
    atomic.write_json(str(target), {"old": True})

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError):
        atomic.write_json(str(target), {"new": True})
    assert json.loads(target.read_text()) == {"old": True}  # the old file, whole
    assert os.listdir(tmp_path) == ["kept.json"]  # no temporary file left behind

    runs = str(tmp_path / "runs")
    status, _, err = run_cli(capsys, *SMALL_STUDY, "--runs-dir", runs, "--name", "full")
    assert_one_clear_line(status, err, "No space left on device", "free some space", "rerun the same command")
    for folder, _, files in os.walk(runs):
        assert not [f for f in files if ".partial" in f], (folder, files)
    assert explain_error(OSError(errno.EROFS, "Read-only file system", "/ro/x")).startswith(
        "Cannot use /ro/x: Read-only file system.")


# --------------------------------------------------------- NaN in training


def test_nan_in_training_stops_with_a_clear_line_and_keeps_finished_cells(capsys, tmp_path):
    """The teacher cell finishes; its student's learning rate of 1e30 diverges at once."""
    runs = str(tmp_path / "runs")
    argv = [*SMALL_STUDY, "--runs-dir", runs, "--name", "nan", "--set", "data.train_examples=128",
            "--set", "student.optimizer.model_learning_rates={digits_cnn_small = 1e30}"]
    status, out, err = run_cli(capsys, *argv)
    assert_one_clear_line(status, err, "Training diverged in epoch 1", "NaN or infinite",
                          "TerminateOnNaN", "Lower the learning rate")
    run_dir = os.path.join(runs, "nan")
    cells = sorted(os.listdir(os.path.join(run_dir, "cells")))
    assert cells == ["teacher__digits_cnn__none__s0.json"]
    teacher = json.load(open(os.path.join(run_dir, "cells", cells[0])))
    assert 0.0 <= teacher["test_accuracy_last"] <= 1.0
    rows = open(os.path.join(run_dir, "results.csv")).read().strip().splitlines()
    assert len(rows) == 2 and rows[1].startswith("teacher__digits_cnn__none__s0,")
    assert os.path.getsize(os.path.join(run_dir, "models", "teacher__digits_cnn__none__s0.keras")) > 0
    # No NaN weights were backed up for the diverged student: a rerun would not resume them.
    work = os.path.join(run_dir, "work")
    for folder, _, files in os.walk(work):
        assert not [f for f in files if f.endswith(".weights.h5")], (folder, files)


def test_nan_in_the_last_step_of_an_epoch_is_caught_by_the_epoch_measures(tmp_path):
    """One step per epoch: no later batch shows a NaN loss, the epoch's outputs do."""
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study import training

    config = load_recipe("digits", smoke=True, overrides={"data.train_examples": 64, "data.test_examples": 32})
    splits = training.prepare_data(config["data"])
    optimizer = dict(config["teacher"]["optimizer"], learning_rate=1e30)
    with pytest.raises(NonFiniteLossError, match="Training diverged in epoch 1"):
        training.train_teacher(splits, "digits_cnn", "none", seed=0, epochs=1, optimizer=optimizer,
                               batch_size=64, measure=config["measure"], work_dir=str(tmp_path / "w"),
                               verbose=0)
    assert issubclass(NonFiniteLossError, ValueError) and issubclass(NonFiniteLossError, FloatingPointError)


def test_bad_data_files_stop_the_study_before_training(capsys, tmp_path):
    """An empty, a NaN and an out-of-range .npz data set, through `keras-mixkd study`."""
    rng = np.random.default_rng(0)

    def save(name, **changes):
        arrays = dict(x_train=rng.random((40, *SHAPE), dtype=np.float32), y_train=np.arange(40) % 4,
                      x_test=rng.random((12, *SHAPE), dtype=np.float32), y_test=np.arange(12) % 4)
        arrays.update(changes)
        path = str(tmp_path / f"{name}.npz")
        np.savez(path, **arrays)
        return path

    cases = {
        "empty": (save("empty", x_train=np.zeros((0, *SHAPE), "float32"), y_train=np.zeros(0, "int64")),
                  ["x_train", "no images"]),
        "nan": (save("nan", x_train=with_value(rng.random((40, *SHAPE), dtype=np.float32), 77, np.nan)),
                ["x_train", "NaN or infinite"]),
        "out-of-range": (save("oor", y_test=np.arange(12) % 7), ["y_test", "class id 6, out of range for 4 classes"]),
    }
    for name, (path, fragments) in cases.items():
        status, out, err = run_cli(capsys, *SMALL_STUDY, "--dataset", "npz", "--data-path", path,
                                   "--set", "data.validation_fraction=0.25",
                                   "--runs-dir", str(tmp_path / "runs"), "--name", name)
        assert_one_clear_line(status, err, *fragments)
        assert "cell 1/" not in out  # refused before any cell started


@pytest.mark.backend_independent
def test_a_damaged_result_file_is_named(capsys, tmp_path):
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study.run_folder import RunFolder

    folder = RunFolder(str(tmp_path / "run"))
    folder.open(load_recipe("digits", smoke=True))
    folder.write_cell("teacher__digits_cnn__none__s0", {"role": "teacher"})
    damaged = folder.cell_path("teacher__digits_cnn__none__s0")
    with open(damaged, "w") as f:
        f.write('{"role": "teach')  # changed by hand, or by a failing disk
    status, _, err = run_cli(capsys, "report", folder.path)
    assert_one_clear_line(status, err, damaged, "is not valid JSON", "delete it")
