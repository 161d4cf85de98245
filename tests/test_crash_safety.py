"""SIGKILL `keras-mixkd study` five times, then let it finish: nothing lost, nothing doubled.

One kill lands mid-cell, right after a student's backup of an epoch before its
last: the rerun must keep the epochs trained before the kill and continue from
there. The other four come at random moments (setting up, inside a cell, right
after a result is written). Resuming from a backup is each backend's own work
(its optimizer and seed state), so the mid-cell kill runs under every backend;
the random kills test the run folder's writes, which no backend changes, so
they run under one backend (`KERAS_MIXKD_INDEPENDENT_BACKEND`, as the
`one_backend` tests; each kill is a fresh process importing Keras, seconds
each). The final results must hold every cell exactly once
and have the structure of an uninterrupted run of the same command (same cells,
same columns, same per-cell fields, same files). Between kills, whatever is on
disk must already be readable: every cell file and table parses, no cell
appears twice. The finished run folder makes a report.
"""

import csv
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import keras
import numpy as np
import pytest

from keras_mixkd.study.run_folder import CSV_COLUMNS
from tests.backends import runs_one_backend_tests
from tests.helpers import run_cli_ok
from tests.helpers import tiny_study_argv

BACKEND = keras.backend.backend()
# The mid-cell kill everywhere; the four at random moments under one backend (see above).
KILLS = 5 if runs_one_backend_tests() else 1
TEACHER_EPOCHS = 2
# Three student epochs: a backup of epoch 1 or 2 is a cell caught mid-training.
STUDENT_EPOCHS = 3

# Four cells: a mixup teacher, then three students: plain KD at T=1 alone, and partial mixup with
# KD and with standardised KD, one group sharing the teacher's pass (`keras_mixkd.study.groups`).
STUDY = tiny_study_argv(
    "--set", 'teacher.augmentations=["mixup"]',
    "--set", 'distillation=[{name = "kd_T1", temperature = 1.0}, {name = "pmu", augmentation = '
             '"partial_mixup", augmentation_options = {partial_mixup = {fraction = 0.5}}}, {name = "pmu_std", '
             'loss = "standardized", augmentation = "partial_mixup", augmentation_options = {partial_mixup = '
             '{fraction = 0.5}}}]',
    "--set", "student.baseline=false", teacher_epochs=TEACHER_EPOCHS, student_epochs=STUDENT_EPOCHS)
TEACHER = "teacher__digits_cnn__mixup__s0"
ALONE_STUDENT = "student__digits_cnn_small__kd_T1__from__digits_cnn__mixup__s0"
CELLS = {
    TEACHER,
    ALONE_STUDENT,
    "student__digits_cnn_small__pmu__from__digits_cnn__mixup__s0",
    "student__digits_cnn_small__pmu_std__from__digits_cnn__mixup__s0",
}


def study_args(runs, name):
    return [*STUDY, "--runs-dir", runs, "--name", name]


def backed_up_mid_cell(run_dir, key):
    """The epoch of `key`'s backup while the cell is unfinished and has epochs left, else None."""
    metadata = os.path.join(run_dir, "work", key, "backup", "training_metadata.json")
    if not os.path.exists(metadata) or os.path.exists(os.path.join(run_dir, "cells", key + ".json")):
        return None
    epoch = json.load(open(metadata))["epoch"]
    return epoch if 1 <= epoch < STUDENT_EPOCHS else None


def start_and_kill(argv, trigger, delay, timeout=240):
    """Start the real command; SIGKILL it `delay` s after it prints a line holding `trigger`,
    or, when `trigger` is a function, as soon as it returns true (polled every 20 ms)."""
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "keras_mixkd.cli", *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and process.poll() is None:
            try:
                output.append(lines.get(timeout=0.02))
            except queue.Empty:
                pass
            if callable(trigger):
                if trigger():
                    break
            elif output and trigger in output[-1]:
                time.sleep(delay)
                break
        finished = process.poll() is not None
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    while not lines.empty():
        output.append(lines.get())
    return finished, "".join(output)


def check_readable(run_dir):
    """What a kill may leave: complete files only, each cell once."""
    assert json.load(open(os.path.join(run_dir, "study.json")))["config"]
    cells_dir = os.path.join(run_dir, "cells")
    names = [n for n in os.listdir(cells_dir) if not n.startswith(".")] if os.path.isdir(cells_dir) else []
    for name in names:
        record = json.load(open(os.path.join(cells_dir, name)))
        assert record["key"] + ".json" == name
        assert record["key"] in CELLS
    if os.path.exists(os.path.join(run_dir, "results.json")):
        keys = [c["key"] for c in json.load(open(os.path.join(run_dir, "results.json")))["cells"]]
        assert len(keys) == len(set(keys)), keys
        assert set(keys) <= {n[:-len(".json")] for n in names}
    return names


def read_run(run_dir):
    results = json.load(open(os.path.join(run_dir, "results.json")))
    with open(os.path.join(run_dir, "results.csv"), newline="") as f:
        rows = list(csv.reader(f))
    files = {sub: sorted(n for n in os.listdir(os.path.join(run_dir, sub)) if not n.startswith("."))
             for sub in ("cells", "models", "features")}
    return results, rows, files


@pytest.mark.slow
def test_kills_then_finish_match_an_uninterrupted_run(capsys, tmp_path):
    runs = str(tmp_path / "runs")
    seed = int(time.time()) % 10_000
    rng = np.random.default_rng(seed)
    run_dir = os.path.join(runs, "crash")
    progress = []
    # The first kill: mid-cell, as the student alone starts its second epoch (Keras prints
    # "Epoch 2/3" with --verbose 2 once epoch 1's callbacks, its backup among them, have run; the
    # teacher trains 2 epochs and the alone cell precedes the group). First, so that no earlier run
    # has finished that cell (on PyTorch a run killed a few seconds in had); a line, not a poll of
    # the folder: on a fast backend a student's three epochs take less than a poll's interval.
    mid_cell = f"Epoch 2/{STUDENT_EPOCHS}"
    # Random moments in each other phase: while the folder and data are set up, inside a cell
    # (training, saving), and right after a cell's result is written (tables being rebuilt).
    triggers = [mid_cell, "study ", "test accuracy", "cell ", "test accuracy"][:KILLS]
    kept = None
    for trigger in triggers:
        delay = 0.0 if trigger == mid_cell else float(rng.uniform(0.0, 0.5 if trigger == "test accuracy" else 3.0))
        began = time.time()
        verbose = ["--verbose", "2"] if trigger == mid_cell else []
        finished, output = start_and_kill(study_args(runs, "crash") + verbose, trigger, delay)
        assert "Traceback" not in output, (seed, output)
        if trigger == mid_cell:
            kept = backed_up_mid_cell(run_dir, ALONE_STUDENT)
            assert kept is not None and not finished, ("no mid-cell kill", seed, output)
            history_before = json.load(open(os.path.join(run_dir, "work", ALONE_STUDENT, "history.json")))
            assert [row["epoch"] for row in history_before][:kept] == list(range(1, kept + 1))
        progress.append(("mid-cell" if trigger == mid_cell else trigger, round(delay, 2),
                         len(check_readable(run_dir)), finished, round(time.time() - began, 1)))
    if KILLS > 2:
        assert progress[2][2] >= 1, progress  # later kills met finished cells, to skip and keep

    began = time.time()
    out = run_cli_ok(capsys, *study_args(runs, "crash"))  # the same command, to the end, in this process
    progress.append(round(time.time() - began, 1))
    began = time.time()
    assert f"{len(CELLS)} cells" in out
    assert any(line.startswith("study ") and "already finished" in line for line in out.splitlines()), out
    crashed, crashed_rows, crashed_files = read_run(run_dir)
    reference_out = run_cli_ok(capsys, *study_args(runs, "reference"))
    assert "2 student cells in 1 groups" in reference_out
    reference, reference_rows, reference_files = read_run(os.path.join(runs, "reference"))
    progress.append(round(time.time() - began, 1))
    print(progress)

    note = f"seed {seed}; (trigger, delay, finished cells, exited, seconds) per kill, then seconds to finish: {progress}"
    keys = [cell["key"] for cell in crashed["cells"]]
    assert sorted(keys) == sorted(CELLS), note  # every cell, exactly once
    assert sorted(keys) == sorted(cell["key"] for cell in reference["cells"])
    assert crashed["config"] == reference["config"]
    by_key = {cell["key"]: cell for cell in reference["cells"]}
    for cell in crashed["cells"]:
        epochs = TEACHER_EPOCHS if cell["key"] == TEACHER else STUDENT_EPOCHS
        # "group" names the cells a student trained with; a kill between the records of a group's cells
        # leaves the rest to train again alone (a group is made of pending cells only), without it.
        assert set(cell) - {"group"} == set(by_key[cell["key"]]) - {"group"}, (cell["key"], note)
        assert [row["epoch"] for row in cell["history"]] == list(range(1, epochs + 1)), (cell["key"], note)
        assert [set(row) for row in cell["history"]] == [set(row) for row in by_key[cell["key"]]["history"]]
        assert cell["backend"] == BACKEND
    # The epochs trained before the mid-cell kill were kept as they were; training went on from there.
    resumed = next(cell for cell in crashed["cells"] if cell["key"] == ALONE_STUDENT)
    assert resumed["history"][:kept] == history_before[:kept], note
    assert crashed_rows[0] == reference_rows[0] == list(CSV_COLUMNS)
    assert len(crashed_rows) == len(reference_rows) == 1 + len(CELLS)
    assert sorted(row[0] for row in crashed_rows[1:]) == sorted(CELLS)
    assert crashed_files == reference_files, note
    assert not os.listdir(os.path.join(run_dir, "work")), note  # nothing left in progress
    leftovers = [name for _, _, names in os.walk(run_dir) for name in names if ".partial" in name]
    assert not leftovers, note  # temporary files of writes cut short were removed on resume
    # The resumed run folder makes a report like any other.
    out = run_cli_ok(capsys, "report", run_dir)
    assert "teacher augmentation" in out and os.path.exists(os.path.join(run_dir, "report.md"))


@pytest.mark.backend_independent
def test_reopening_a_study_removes_the_temporary_files_of_writes_cut_short(tmp_path):
    from keras_mixkd.study import load_recipe
    from keras_mixkd.study.run_folder import RunFolder

    config = load_recipe("digits", smoke=True)
    folder = RunFolder(str(tmp_path / "run"))
    folder.open(config)
    folder.write_cell("teacher__digits_cnn__none__s0", {"role": "teacher"})
    cut_short = [tmp_path / "run" / "cells" / ".student__x.json.k2j3.partial.json",
                 tmp_path / "run" / "models" / ".teacher__y.keras.a1b2.partial.keras"]
    for path in cut_short:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half a fi")
    RunFolder(str(tmp_path / "run")).open(config)  # what a rerun does first
    assert not any(path.exists() for path in cut_short)
    assert [c["key"] for c in folder.read_cells()] == ["teacher__digits_cnn__none__s0"]
