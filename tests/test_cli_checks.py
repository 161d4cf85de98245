"""The command line's checks and messages: no silent surprises (issue 14, points 2, 4, 9-17)."""

import argparse
import json
import os
import stat
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from keras_mixkd import cli
from tests.helpers import run_cli


def _options(parser, name="keras-mixkd"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _options(sub, sub_name)
        elif action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield name, action


@pytest.mark.backend_independent
def test_every_option_help_states_its_default():
    options = list(_options(cli.build_parser()))
    assert len(options) > 40
    for command, action in options:
        assert action.required or "default" in action.help.lower(), (command, action.option_strings)


@pytest.mark.backend_independent
@pytest.mark.parametrize("what,expected", [("models", "resnet20"), ("augmentations", "mixup"),
                                           ("recipes", "study_b_cifar100"), ("datasets", "npz")])
def test_list_prints_one_described_line_per_name(capsys, what, expected):
    status, out, _ = run_cli(capsys, "list", what)
    assert status == 0
    lines = {line.split()[0]: line for line in out.strip().splitlines()}
    assert expected in lines and len(lines[expected].split()) > 2  # a description follows the name
    if what == "recipes":
        path = lines[expected].split(" · ")[-1]
        assert path.endswith("study_b_cifar100.toml") and os.path.isfile(path)
    status, _, err = run_cli(capsys, "list", "colours")
    assert status == 2 and "invalid choice" in err


def test_epochs_below_one_are_refused_naming_the_flag(capsys, tmp_path):
    for epochs in ("0", "-1"):
        status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--epochs", epochs,
                                  "--output", str(tmp_path / "t.keras"))
        assert status == 2 and f"--epochs must be a whole number >= 1, got {epochs}" in err
        status, _, err = run_cli(capsys, "distill", "--teacher", str(tmp_path / "t.keras"), "--student",
                                  "digits_cnn_small", "--epochs", epochs, "--output", str(tmp_path / "s.keras"))
        assert status == 2 and "--epochs must be" in err
    assert not os.listdir(tmp_path)  # nothing left behind, no .work folder


def test_distiller_fit_refuses_negative_epochs():
    from keras_mixkd import Distiller
    from keras_mixkd.models import get_model

    distiller = Distiller(get_model("digits_cnn_small", 10, (8, 8, 1)), get_model("digits_cnn_small", 10, (8, 8, 1)))
    distiller.compile(optimizer="sgd")
    x, y = np.zeros((4, 8, 8, 1), "float32"), np.zeros((4,), "int32")
    for epochs in (-1, 0, 1.5):
        with pytest.raises(ValueError, match=r"epochs must be a whole number >= 1, got"):
            distiller.fit(x, y, epochs=epochs, verbose=0)


@pytest.mark.backend_independent
def test_scale_milestones_against_the_definition():
    from keras_mixkd.study import scale_milestones

    rng = np.random.default_rng(0)
    for _ in range(200):
        recipe_epochs = int(rng.integers(2, 400))
        epochs = int(rng.integers(1, 400))
        milestones = sorted(set(rng.integers(1, recipe_epochs, size=3).tolist()))
        expected = []
        for m in milestones:
            moved = max(1, int(np.floor(np.float64(m) * epochs / recipe_epochs + 0.5)))
            if moved < epochs and moved not in expected:
                expected.append(moved)
        assert scale_milestones(milestones, recipe_epochs, epochs) == expected
    assert scale_milestones([60, 80, 120], 150, 30) == [12, 16, 24]
    with pytest.raises(ValueError, match="epochs must be an int >= 1, got 0"):
        scale_milestones([5], 10, 0)


@pytest.mark.backend_independent
def test_changed_epochs_scale_the_milestones_or_keep_them(capsys):
    args = cli.build_parser().parse_args(["study", "--teacher-epochs", "24", "--dry-run"])
    config = cli.study_config_from_args(args)
    out = capsys.readouterr().out  # a note on stdout: stderr stays one line for errors
    assert config["teacher"]["optimizer"]["milestones"] == [18]  # digits: [9] of 12 epochs
    assert "milestones [9] scaled to [18] (--keep-milestones keeps them" in out
    # Under --smoke (1 epoch, the full schedule's milestones) they scale from the full recipe's 12 epochs.
    args = cli.build_parser().parse_args(["study", "--smoke", "--teacher-epochs", "4"])
    assert cli.study_config_from_args(args)["teacher"]["optimizer"]["milestones"] == [3]
    capsys.readouterr()
    assert config["student"]["optimizer"]["milestones"] == [12]  # unchanged epochs: unchanged
    args = cli.build_parser().parse_args(["study", "--set", "teacher.epochs=6", "--keep-milestones"])
    config = cli.study_config_from_args(args)
    err = capsys.readouterr().err
    assert config["teacher"]["optimizer"]["milestones"] == [9]
    assert "milestones [9] (kept by --keep-milestones) come at or after the last epoch" in err


@pytest.mark.backend_independent
def test_only_matching_nothing_lists_the_valid_values(capsys):
    status, _, err = run_cli(capsys, "study", "--only", "teacher_augmentation=mixpu", "--dry-run")
    assert status == 2
    assert "'mixpu' matches no cell" in err and "none, standard, cutout, label_smoothing, mixup, cutmix" in err
    status, _, err = run_cli(capsys, "study", "--only", "seed=7", "--dry-run")
    assert status == 2 and "valid values of seed: 0, 1, 2" in err


@pytest.mark.backend_independent
def test_dry_run_checks_names_as_a_run_does(capsys, tmp_path):
    status, _, err = run_cli(capsys, "study", "--set", 'teacher.augmentations=["mixupp"]', "--dry-run")
    assert status == 2 and "unknown augmentation 'mixupp'" in err
    status, _, err = run_cli(capsys, "study", "--set", 'pairs=[{teacher = "resnet21", student = "lenet5"}]',
                              "--dry-run")
    assert status == 2 and "unknown model 'resnet21'" in err
    status, _, err = run_cli(capsys, "study", "--dataset", "cifar11", "--dry-run")
    assert status == 2 and "unknown data set 'cifar11'" in err.lower() and "data.dataset" in err
    status, _, err = run_cli(capsys, "study", "--dataset", "npz", "--data-path", str(tmp_path / "no.npz"),
                              "--dry-run")
    assert status == 2 and "no.npz: no such file" in err


def test_output_checks_and_messages(capsys, tmp_path):
    existing = tmp_path / "t.keras"
    existing.write_bytes(b"old")
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--output", str(existing))
    assert status == 2 and "already exists; pass --overwrite" in err and existing.read_bytes() == b"old"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small",
                              "--output", str(blocker / "t.keras"))
    assert status == 2 and f"--output {blocker / 't.keras'}" in err and ".work" not in err
    status, _, err = run_cli(capsys, "distill", "--teacher", str(tmp_path / "missing.keras"), "--student",
                              "digits_cnn_small", "--output", str(tmp_path / "s.keras"))
    assert status == 2 and "--teacher" in err and "missing.keras: no such file" in err and "cell" not in err
    status, _, err = run_cli(capsys, "distill", "--teacher", str(existing), "--student", "digits_cnn_small",
                              "--augmentation", "mixup", "--alpha", "0", "--output", str(tmp_path / "s.keras"))
    assert status == 2 and "--alpha must be > 0" in err and "None" not in err
    status, _, err = run_cli(capsys, "export", str(existing), str(tmp_path / "out"))
    assert status == 2 and "exists but cannot be loaded" in err and "not a .keras archive" in err
    from keras_mixkd.models import get_model

    good = str(tmp_path / "good.keras")
    get_model("digits_cnn_small", 10, (8, 8, 1)).save(good)
    status, _, err = run_cli(capsys, "export", good, str(blocker / "out"))
    assert status == 2 and f"{blocker}" in err and "keras-mixkd-export" not in err
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".work")]


def test_library_messages_carry_the_command_line_advice():
    # The command line prints library errors as they are: each names the flag too.
    from keras_mixkd import Distiller
    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.models import get_model

    logits = get_model("digits_cnn_small", 10, (8, 8, 1))
    teacher = keras.Model(logits.inputs, keras.layers.Softmax()(logits.outputs[0]))
    with pytest.raises(ValueError, match="--teacher-outputs probabilities"):
        Distiller(teacher, get_model("digits_cnn_small", 10, (8, 8, 1)))
    with pytest.raises(ValueError, match="leave that augmentation out"):
        get_augmentation("mixup", alpha=0.0, num_classes=10)
    assert not hasattr(cli, "cli_advice")


def test_npz_and_folder_data_are_refused_with_counts(capsys, tmp_path):
    rng = np.random.default_rng(0)
    skipping = tmp_path / "skip.npz"
    np.savez(skipping, x_train=rng.random((30, 8, 8, 1)), y_train=np.repeat([0, 3, 6], 10),
             x_test=rng.random((6, 8, 8, 1)), y_test=np.repeat([0, 3, 6], 2))
    status, _, err = run_cli(capsys, "study", "--dataset", "npz", "--data-path", str(skipping), "--smoke")
    assert status == 2 and "skips class id(s) 1, 2, 4, 5" in err and "0: 10, 3: 10, 6: 10" in err
    npy = tmp_path / "arrays.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    for path, kind in ((npy, "a single NumPy array (.npy)"), (text, "not a NumPy archive")):
        status, _, err = run_cli(capsys, "study", "--dataset", "npz", "--data-path", str(path), "--smoke")
        assert status == 2 and f"is {kind}" in err
    from keras_mixkd.data import load_dataset

    with pytest.raises(ValueError, match="--data-path on the command line"):
        load_dataset("npz")
    folder = tmp_path / "images"
    for name, count in (("cat", 3), ("dog", 3), ("owl", 0)):
        (folder / name).mkdir(parents=True)
        for i in range(count):
            (folder / name / f"{i}.png").write_bytes(_png())
    with pytest.raises(ValueError, match=r"'owl' hold no image.*cat: 3, dog: 3, owl: 0"):
        load_dataset("folder", path=str(folder), image_size=(8, 8))


def test_splits_too_small_for_the_measures_are_refused_before_training(capsys, tmp_path):
    status, _, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--epochs", "1",
                              "--output", str(tmp_path / "t.keras"), "--recipe", "digits",
                              "--run", str(_tiny_run(tmp_path, test_examples=1)))
    assert status == 2 and "The test split of 'digits' is too small for the measures" in err
    assert "test 1 examples of 1 classes" in err
    assert not os.path.exists(tmp_path / "t.keras.work")


def _tiny_run(tmp_path, **data):
    """A runs folder whose manifest holds a digits config with `data` overrides."""
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study.run_folder import RunFolder

    overrides = {f"data.{key}": value for key, value in data.items()}
    folder = RunFolder(str(tmp_path / "runs" / "tiny"))
    folder.open(load_recipe("digits", overrides=overrides))
    return folder.path


def _png():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), "uint8")).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.backend_independent
def test_outputs_follow_the_umask(tmp_path):
    from keras_mixkd.study import atomic

    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "report.md", "x")
        atomic.write_json(tmp_path / "results.json", {"a": 1})
        with atomic.atomic_path(tmp_path / "model.keras") as tmp:
            with zipfile.ZipFile(tmp, "w") as archive:
                archive.writestr("config.json", "{}")
        os.umask(0o077)
        atomic.write_text(tmp_path / "private.md", "x")
    finally:
        os.umask(old)
    for name in ("report.md", "results.json", "model.keras"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644, name
    assert stat.S_IMODE(os.stat(tmp_path / "private.md").st_mode) == 0o600


def test_train_teacher_record_and_options_suit_the_data(capsys, tmp_path):
    """One real run: record JSON fields, data-suited augmentation sizes, --overwrite, no .work left."""
    rng = np.random.default_rng(1)
    data = tmp_path / "big.npz"
    labels = np.tile(np.arange(3), 12)
    np.savez(data, x_train=rng.random((36, 32, 32, 3)).astype("float32"), y_train=labels,
             x_test=rng.random((9, 32, 32, 3)).astype("float32"), y_test=np.tile(np.arange(3), 3),
             class_names=np.array(["a", "b", "c"]))
    output = str(tmp_path / "t.keras")
    argv = ["train-teacher", "--model", "digits_cnn_small", "--augmentation", "standard+cutout", "--epochs", "1",
            "--dataset", "npz", "--data-path", str(data), "--output", output, "--option", "cutout.fill_value=0.5"]
    status, out, err = run_cli(capsys, *argv)
    assert status == 0, err
    record = json.load(open(output + ".json"))
    assert record["dataset"] == "npz" and record["class_names"] == ["a", "b", "c"]
    assert record["input_shape"] == [32, 32, 3] and len(record["normalization"]["mean"]) == 3
    # The digits recipe's 1 px / 4 px are dropped on 32x32 data: the layers scale them (4 px, 16 px).
    assert record["augmentation_options"] == {"standard": {}, "cutout": {"fill_value": 0.5}}
    import keras

    assert record["backend"] == keras.backend.backend()
    assert not os.path.exists(output + ".work")
    status, _, err = run_cli(capsys, *argv)
    assert status == 2 and "already exists" in err
    status, _, err = run_cli(capsys, *argv, "--overwrite", "--option", "mixup.alpha=0.2")
    assert status == 2 and ("--option mixup.alpha=0.2 is an option of augmentation 'mixup', which this run does "
                            "not use (augmentations in use: standard, cutout)") in err


# The filter is the same code under every backend (every command that trains or loads imports TensorFlow
# for tf.data): one backend runs this fresh process; under TensorFlow and JAX, tests/test_run_guards.py's
# virtual-devices test checks a fresh process's error output, start-up chatter filtered, too.
@pytest.mark.one_backend
def test_tensorflow_start_up_noise_is_filtered():
    assert cli.is_startup_noise("E0000 cuda_driver.cc:152] failed call to cuInit: INTERNAL: CUDA error")
    assert cli.is_startup_noise("WARNING: All log messages before absl::InitializeLog() is called are written")
    assert not cli.is_startup_noise("W tensorflow/core/framework/op_kernel.cc] Invalid argument: bad shape")
    process = subprocess.run([sys.executable, "-m", "keras_mixkd.cli", "evaluate", "missing.keras"],
                             capture_output=True, text=True, env=dict(os.environ), timeout=240)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == ["keras-mixkd evaluate: error: No model file at missing.keras."]


def test_evaluate_both_splits_without_a_validation_split_measures_the_test_split_and_says_why(capsys, tmp_path):
    """Data of `validation_fraction = 0` (the reference protocol's whole training split) has no val split:
    `evaluate` (default --split both) measures the test split and says so; --split val is a clear error."""
    from keras_mixkd.data import load_dataset
    from keras_mixkd.models import get_model
    from keras_mixkd.models import with_preprocessing

    recipe = tmp_path / "full.toml"
    recipe.write_text('name = "full"\nseeds = [0]\n[data]\nvalidation_fraction = 0\n[[pairs]]\n'
                      'teacher = "digits_cnn"\nstudent = "digits_cnn_small"\n[[distillation]]\nname = "kd"\n')
    splits = load_dataset("digits", validation_fraction=0.0)
    model_path = str(tmp_path / "m.keras")
    with_preprocessing(get_model("digits_cnn_small", 10, splits.input_shape), splits.normalization).save(model_path)
    status, out, err = run_cli(capsys, "evaluate", model_path, "--recipe", str(recipe), "--json",
                                str(tmp_path / "e.json"))
    assert status == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "val: none (data.validation_fraction = 0: no validation split); the test split only"
    assert lines[1].startswith("test: accuracy ") and lines[2:] == [f"wrote {tmp_path / 'e.json'}"]
    assert list(json.load(open(tmp_path / "e.json"))) == ["test"]
    status, _, err = run_cli(capsys, "evaluate", model_path, "--recipe", str(recipe), "--split", "val")
    assert status == 2 and "The val split of 'digits' is empty" in err, err
