"""The `keras-mixkd` command line, in this process (killing a study: tests/test_crash_safety.py)."""

import json
import os

import keras
import pytest

from tests.helpers import run_cli

BACKEND = keras.backend.backend()
COMMANDS = ("study", "train-teacher", "distill", "evaluate", "measure", "calibrate", "export", "compression", "report")


@pytest.mark.backend_independent
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    status, out, _ = run_cli(capsys, command, "--help")
    assert status == 0
    assert out.startswith(f"usage: keras-mixkd {command}")


@pytest.mark.backend_independent
def test_bad_flags_and_recipes_are_named(capsys, tmp_path):
    status, _, err = run_cli(capsys, "study", "--bogus-flag")
    assert status == 2 and "unrecognized arguments: --bogus-flag" in err
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\n[[pairs]]\nteacher = "digits_cnn"\nstudent = "digits_cnn"\n'
                      '[[distillation]]\nname = "kd"\n[teacher]\nepohcs = 3\n')
    status, _, err = run_cli(capsys, "study", "--recipe", str(recipe), "--dry-run")
    assert status == 2
    assert f"{recipe}, line 8: teacher.epohcs: unknown key 'epohcs'" in err and "Did you mean 'epochs'" in err
    status, _, err = run_cli(capsys, "study", "--set", "teacher.lr=0.1", "--dry-run")
    assert status == 2 and "Unknown setting 'teacher.lr'" in err
    status, _, err = run_cli(capsys, "study", "--only", "colour=red", "--dry-run")
    assert status == 2 and "Unknown grid field 'colour'" in err
    status, _, err = run_cli(capsys, "report", str(tmp_path / "nothing"))
    assert status == 2 and "No runs folder" in err
    other = "jax" if BACKEND != "jax" else "torch"
    status, _, err = run_cli(capsys, "--backend", other, "study", "--dry-run")
    assert status == 2 and "already imported" in err  # too late to switch in this process


@pytest.mark.backend_independent
def test_dry_run_lists_the_default_grid(capsys):
    status, out, _ = run_cli(capsys, "study", "--dry-run")
    lines = out.strip().splitlines()
    assert status == 0 and len(lines) == 3 * (1 + 6 * (1 + 4))  # per seed: the student alone, then the grid
    assert lines[0] == "cell 1/93 · seed 0 · train student digits_cnn_small alone (no teacher)"
    assert lines[1] == "cell 2/93 · teacher=none · seed 0 · train teacher digits_cnn"
    assert lines[3] == "cell 4/93 · teacher=none · seed 0 · distil kd_T1: digits_cnn -> digits_cnn_small"
    status, out, _ = run_cli(capsys, "study", "--list-recipes")
    assert out.split() == ["digits", "function_matching_cifar100", "methods_cifar100", "study_a_cifar10", "study_b_cifar100"]


def test_single_model_commands_chain(capsys, tmp_path):
    teacher = str(tmp_path / "teacher.keras")
    student = str(tmp_path / "student.keras")
    status, out, err = run_cli(capsys, "train-teacher", "--model", "digits_cnn_small", "--augmentation", "mixup",
                                "--epochs", "1", "--output", teacher, "--verbose", "0")
    assert status == 0, err
    assert os.path.exists(teacher) and json.load(open(teacher + ".json"))["teacher_augmentation"] == "mixup"
    assert "test accuracy" in out and not os.path.exists(teacher + ".work")
    status, out, err = run_cli(capsys, "distill", "--teacher", teacher, "--student", "digits_cnn_small",
                                "--augmentation", "partial_mixup", "--fraction", "0.25", "--temperature", "1",
                                "--epochs", "1", "--output", student, "--verbose", "0")
    assert status == 0, err
    record = json.load(open(student + ".json"))
    assert record["distillation_augmentation"] == "partial_mixup" and record["temperature"] == 1.0
    status, out, err = run_cli(capsys, "evaluate", student, "--json", str(tmp_path / "e.json"))
    assert status == 0, err
    assert out.startswith("val: accuracy ") and "test: accuracy " in out
    values = json.load(open(tmp_path / "e.json"))
    assert values["test"]["accuracy"] == pytest.approx(record["test_accuracy_last"], abs=1e-6)
    status, out, err = run_cli(capsys, "measure", student, "--measures", "class_discrimination", "gdv")
    assert status == 0, err
    assert "class_discrimination" in out and "gdv" in out
    # A teacher of another class count is refused before any training.
    from keras_mixkd.models import get_model

    three = str(tmp_path / "three.keras")
    get_model("digits_cnn_small", 3, (8, 8, 1)).save(three)
    status, _, err = run_cli(capsys, "distill", "--teacher", three, "--student", "digits_cnn_small",
                              "--output", str(tmp_path / "s3.keras"))
    assert status == 2 and "predicts 3 classes but the data has 10" in err
    status, _, err = run_cli(capsys, "evaluate", str(tmp_path / "missing.keras"))
    assert status == 2 and "missing.keras" in err
    status, _, err = run_cli(capsys, "export", str(tmp_path / "missing.keras"), str(tmp_path / "out"))
    assert status == 2 and err.startswith("keras-mixkd export: error:")
