"""The `keras-mixkd` command line: in-process for speed, one subprocess for the kill test."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest

from keras_mixkd import cli

BACKEND = keras.backend.backend()
COMMANDS = ("study", "train-teacher", "distill", "evaluate", "measure", "export", "report")

# A tiny study: one teacher (4 epochs) and one student (STUDENT_EPOCHS), a backup every epoch.
STUDENT_EPOCHS = 25
CRASH_ARGS = [
    "study", "--smoke", "--runs-dir", "{runs}", "--name", "crash",
    # Many short student epochs: the kill must land mid-cell even on a fast backend.
    "--teacher-epochs", "4", "--student-epochs", str(STUDENT_EPOCHS),
    "--set", "backup_interval_seconds=0", "--set", "data.train_examples=64",
    "--set", 'teacher.augmentations=["mixup"]',
    "--set", 'distillation=[{name = "kd_T1", temperature = 1.0}]',
    "--set", "student.baseline=false", "--verbose", "0", "--no-report",
]


def run_main(capsys, *argv):
    try:
        status = cli.main(list(argv))
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    status, out, _ = run_main(capsys, command, "--help")
    assert status == 0
    assert out.startswith(f"usage: keras-mixkd {command}")


def test_bad_flags_and_recipes_are_named(capsys, tmp_path):
    status, _, err = run_main(capsys, "study", "--bogus-flag")
    assert status == 2 and "unrecognized arguments: --bogus-flag" in err
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\n[[pairs]]\nteacher = "digits_cnn"\nstudent = "digits_cnn"\n'
                      '[[distillation]]\nname = "kd"\n[teacher]\nepohcs = 3\n')
    status, _, err = run_main(capsys, "study", "--recipe", str(recipe), "--dry-run")
    assert status == 2
    assert f"{recipe}, line 8: teacher.epohcs: unknown key 'epohcs'" in err and "Did you mean 'epochs'" in err
    status, _, err = run_main(capsys, "study", "--set", "teacher.lr=0.1", "--dry-run")
    assert status == 2 and "Unknown setting 'teacher.lr'" in err
    status, _, err = run_main(capsys, "study", "--only", "colour=red", "--dry-run")
    assert status == 2 and "Unknown grid field 'colour'" in err
    status, _, err = run_main(capsys, "report", str(tmp_path / "nothing"))
    assert status == 2 and "No runs folder" in err
    other = "jax" if BACKEND != "jax" else "torch"
    status, _, err = run_main(capsys, "--backend", other, "study", "--dry-run")
    assert status == 2 and "already imported" in err  # too late to switch in this process


def test_dry_run_lists_the_default_grid(capsys):
    status, out, _ = run_main(capsys, "study", "--dry-run")
    lines = out.strip().splitlines()
    assert status == 0 and len(lines) == 3 * (1 + 6 * (1 + 4))  # per seed: the student alone, then the grid
    assert lines[0] == "cell 1/93 · seed 0 · train student digits_cnn_small alone (no teacher)"
    assert lines[1] == "cell 2/93 · teacher=none · seed 0 · train teacher digits_cnn"
    assert lines[3] == "cell 4/93 · teacher=none · seed 0 · distil kd_T1: digits_cnn -> digits_cnn_small"
    status, out, _ = run_main(capsys, "study", "--list-recipes")
    assert out.split() == ["digits", "methods_cifar100", "study_a_cifar10", "study_b_cifar100"]


def test_single_model_commands_chain(capsys, tmp_path):
    teacher = str(tmp_path / "teacher.keras")
    student = str(tmp_path / "student.keras")
    status, out, err = run_main(capsys, "train-teacher", "--model", "digits_cnn_small", "--augmentation", "mixup",
                                "--epochs", "1", "--output", teacher, "--verbose", "0")
    assert status == 0, err
    assert os.path.exists(teacher) and json.load(open(teacher + ".json"))["teacher_augmentation"] == "mixup"
    assert "test accuracy" in out and not os.path.exists(teacher + ".work")
    status, out, err = run_main(capsys, "distill", "--teacher", teacher, "--student", "digits_cnn_small",
                                "--augmentation", "partial_mixup", "--fraction", "0.25", "--temperature", "1",
                                "--epochs", "1", "--output", student, "--verbose", "0")
    assert status == 0, err
    record = json.load(open(student + ".json"))
    assert record["distillation_augmentation"] == "partial_mixup" and record["temperature"] == 1.0
    status, out, err = run_main(capsys, "evaluate", student, "--json", str(tmp_path / "e.json"))
    assert status == 0, err
    assert out.startswith("val: accuracy ") and "test: accuracy " in out
    values = json.load(open(tmp_path / "e.json"))
    assert values["test"]["accuracy"] == pytest.approx(record["test_accuracy_last"], abs=1e-6)
    status, out, err = run_main(capsys, "measure", student, "--measures", "class_discrimination", "gdv")
    assert status == 0, err
    assert "class_discrimination" in out and "gdv" in out
    # A teacher of another class count is refused before any training.
    from keras_mixkd.models import get_model

    three = str(tmp_path / "three.keras")
    get_model("digits_cnn_small", 3, (8, 8, 1)).save(three)
    status, _, err = run_main(capsys, "distill", "--teacher", three, "--student", "digits_cnn_small",
                              "--output", str(tmp_path / "s3.keras"))
    assert status == 2 and "predicts 3 classes but the data has 10" in err
    status, _, err = run_main(capsys, "evaluate", str(tmp_path / "missing.keras"))
    assert status == 2 and "missing.keras" in err
    status, _, err = run_main(capsys, "export", str(tmp_path / "missing.keras"), str(tmp_path / "out"))
    assert status == 2 and err.startswith("keras-mixkd export: error:")


def _wait_for_mid_cell(run_dir, process, timeout=240):
    """Poll until a cell has a backup of a finished epoch but no result yet."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the study ended before it could be interrupted: {process.stderr.read()}")
        work = os.path.join(run_dir, "work")
        finished = os.listdir(os.path.join(run_dir, "cells")) if os.path.isdir(os.path.join(run_dir, "cells")) else []
        for key in os.listdir(work) if os.path.isdir(work) else []:
            metadata = os.path.join(work, key, "backup", "training_metadata.json")
            if finished and os.path.exists(metadata) and f"{key}.json" not in finished:
                if json.load(open(metadata))["epoch"] >= 2:
                    return key
        time.sleep(0.2)
    raise AssertionError("no cell reached a mid-cell backup in time")


def test_killed_study_resumes_with_every_cell_once(capsys, tmp_path):
    """SIGKILL the study mid-cell, rerun the same command: complete, no cell lost or doubled."""
    runs = str(tmp_path / "runs")
    argv = [a.replace("{runs}", runs) for a in CRASH_ARGS]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen([sys.executable, "-m", "keras_mixkd.cli", "--backend", BACKEND, *argv],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = os.path.join(runs, "crash")
        interrupted = _wait_for_mid_cell(run_dir, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    history_before = json.load(open(os.path.join(run_dir, "work", interrupted, "history.json")))
    backed_up = json.load(open(os.path.join(run_dir, "work", interrupted, "backup", "training_metadata.json")))

    status, out, err = run_main(capsys, *argv)  # the same command, in this process
    assert status == 0, err
    assert any(line.startswith("study ") and "already finished" in line for line in out.splitlines())
    results = json.load(open(os.path.join(run_dir, "results.json")))
    keys = [cell["key"] for cell in results["cells"]]
    expected = {"teacher__digits_cnn__mixup__s0", "student__digits_cnn_small__kd_T1__from__digits_cnn__mixup__s0"}
    assert sorted(keys) == sorted(expected)  # every cell, once
    assert len(open(os.path.join(run_dir, "results.csv")).read().strip().splitlines()) == 1 + 2
    assert not os.listdir(os.path.join(run_dir, "work"))
    resumed = next(cell for cell in results["cells"] if cell["key"] == interrupted)
    assert [row["epoch"] for row in resumed["history"]] == list(range(1, STUDENT_EPOCHS + 1))
    kept = backed_up["epoch"]
    assert resumed["history"][:kept] == history_before[:kept]  # the epochs before the kill were kept
    for cell in results["cells"]:
        assert cell["backend"] == BACKEND
    status, out, err = run_main(capsys, "report", run_dir)
    assert status == 0, err
    assert "teacher augmentation" in out and os.path.exists(os.path.join(run_dir, "report.md"))
