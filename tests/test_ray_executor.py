"""`--executor ray`: the same results as in-process, a killed worker retried, a killed driver resumed.

One local Ray cluster (2 CPUs) serves the module; its workers are reused by
the tests that run in this process. The study is tiny (Ray's start and each
worker's import of Keras cost far more than it): one teacher and one student
distilled from it with partial mixup, 2 epochs each.

The equality with the in-process run is tested under every backend. The
fault-tolerance tests (a killed worker, a killed driver, a failing cell) test
Ray's retries and the cell lock, which no backend changes, so they run under
one backend (`one_backend`, tests/conftest.py); resuming a cell from its backup
is tested under every backend by tests/test_crash_safety.py.
"""

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import keras
import pytest

from keras_mixkd import cli
from tests.helpers import run_cli_ok
from tests.helpers import tiny_study_argv

ray = pytest.importorskip("ray", reason="the ray executor needs the ray extra: pip install 'keras-mixkd[ray]'")

# Every test here shares the module's one Ray cluster: under pytest-xdist they run in one worker.
pytestmark = pytest.mark.xdist_group("ray_cluster")

BACKEND = keras.backend.backend()
STUDY_ANY_THREADS = tiny_study_argv(
    "--set", 'teacher.augmentations=["mixup"]',
    "--set", 'distillation=[{name = "pmu", temperature = 1.0, augmentation = "partial_mixup", '
             'augmentation_options = {partial_mixup = {fraction = 0.5}}}]',
    "--set", "student.baseline=false")
# One math thread in every cell, under both executors: the thread count changes a CPU's round-off
# (see keras_mixkd.study.executors.threads), and with it equal the results are identical.
STUDY = [*STUDY_ANY_THREADS, "--threads", "1"]
TEACHER = "teacher__digits_cnn__mixup__s0"
STUDENT = "student__digits_cnn_small__pmu__from__digits_cnn__mixup__s0"
CELLS = [TEACHER, STUDENT]
CONTROL = re.compile(r"\x1b|\r")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process run of the study (`--threads 1`, as the Ray workers run theirs).

    PyTorch takes its thread count at any time, and this process's TensorFlow and JAX were given
    one thread before they started (tests/conftest.py, as `--threads 1` does): in this process.
    Where a caller ran the tests with other threads, the command line refuses `--threads 1` under
    TensorFlow and JAX here, and the run is in a fresh process."""
    runs = tmp_path_factory.mktemp("reference")
    argv = [*STUDY, "--runs-dir", str(runs), "--name", "in_process"]
    from keras_mixkd.study.executors.threads import thread_environment

    sized = all(os.environ.get(name) == value for name, value in thread_environment(1, BACKEND).items())
    if BACKEND == "torch" or sized:
        assert cli.main(argv) == 0
        return str(runs / "in_process")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "keras_mixkd.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return str(runs / "in_process")


def run_ray(capsys, runs, name, *extra):
    return run_cli_ok(capsys, *STUDY, "--runs-dir", str(runs), "--name", name, "--executor", "ray", *extra)


def rows(run_dir):
    with open(os.path.join(run_dir, "results.csv"), newline="") as f:
        return {row["key"]: row for row in csv.DictReader(f)}


def cells_of(run_dir):
    return json.load(open(os.path.join(run_dir, "results.json")))["cells"]


def copy_without(reference, target, keys):
    """The reference run folder with `keys` not finished (as if they had not run yet)."""
    shutil.copytree(reference, target)
    for key in keys:
        for sub, ext in (("cells", ".json"), ("models", ".keras"), ("features", ".npz")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(target, sub, key + ext))
    return str(target)


def check_every_cell_once(run_dir):
    keys = [cell["key"] for cell in cells_of(run_dir)]
    assert sorted(keys) == sorted(CELLS)
    for cell in cells_of(run_dir):
        assert [row["epoch"] for row in cell["history"]] == [1, 2], cell["key"]
        assert cell["backend"] == BACKEND
    assert sorted(os.listdir(os.path.join(run_dir, "cells"))) == sorted(k + ".json" for k in CELLS)
    assert not os.listdir(os.path.join(run_dir, "work"))


def test_ray_gives_the_in_process_results(cluster, reference, capsys, tmp_path):
    out = run_ray(capsys, tmp_path, "ray")
    run_dir = str(tmp_path / "ray")
    assert not CONTROL.search(out), repr(out)  # not a terminal: plain lines only
    lines = out.splitlines()
    assert any(line.startswith("study ") and "executor ray" in line for line in lines)
    assert [line for line in lines if line.startswith("progress ")][-1].startswith("progress 2/2 cells")
    assert sum(line.startswith("cell ") for line in lines) == 2
    ours, theirs = rows(run_dir), rows(reference)
    assert sorted(ours) == sorted(theirs) == sorted(CELLS)
    for key, row in theirs.items():
        for column, value in row.items():
            if column == "seconds":
                continue
            # Identical, not close: the same seeds, backend and thread count give the same bits.
            assert ours[key][column] == value, (key, column, ours[key][column], value)
    check_every_cell_once(run_dir)
    for key in CELLS:  # each worker's Keras output, one line per epoch, in the run folder
        log = open(os.path.join(run_dir, "logs", key + ".log")).read()
        assert log.startswith(f"keras-mixkd cell {key} · pid ") and "Epoch 2/2" in log, log
        assert "\r" not in log
        # The cell's CSVLogger rows, written on the worker and stored by the driver as in-process.
        with open(os.path.join(run_dir, "logs", key, "history.csv"), newline="") as f:
            assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1"], key
    # In-process: Keras output stays on the terminal (logs/ holds only each cell's history.csv).
    assert not [name for name in os.listdir(os.path.join(reference, "logs")) if name.endswith(".log")]


@pytest.mark.one_backend  # Ray's retries and the cell lock; resuming per backend: test_crash_safety
def test_a_worker_killed_mid_cell_is_retried_and_every_cell_done_once(cluster, reference, capsys, tmp_path):
    run_dir = copy_without(reference, tmp_path / "killed", [STUDENT])
    key = STUDENT
    work = os.path.join(run_dir, "work", key)
    killed = []

    def kill_the_worker():
        # The worker names its pid at the top of the cell's log; kill it after its first epoch's backup.
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(os.path.join(run_dir, "cells", key + ".json")):
            try:
                header = open(os.path.join(work, "cell.log")).readline()
                backed_up = os.path.exists(os.path.join(work, "backup", "training_metadata.json"))
            except OSError:
                header, backed_up = "", False
            match = re.search(r"· pid (\d+) on ", header)
            if match and backed_up:
                os.kill(int(match.group(1)), signal.SIGKILL)
                killed.append(int(match.group(1)))
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    out = run_ray(capsys, os.path.dirname(run_dir), "killed")
    killer.join()
    assert killed, "the worker finished its cell before it could be killed"
    assert any(line.startswith("study ") and "1 already finished" in line for line in out.splitlines())
    check_every_cell_once(run_dir)
    log = open(os.path.join(run_dir, "logs", key + ".log")).read()
    pids = re.findall(r"keras-mixkd cell \S+ · pid (\d+) on ", log)
    assert len(pids) == 2 and int(pids[0]) == killed[0] and pids[1] != pids[0], log  # killed, then retried
    assert log.count(f"keras-mixkd cell {key}: finished") == 1
    retried = log.split(f"keras-mixkd cell {key} · pid ")[2]
    assert "Epoch 1/2" not in retried and "Epoch 2/2" in retried, log  # continued from the backup


@pytest.mark.one_backend  # Ray's retries and the cell lock; resuming per backend: test_crash_safety
def test_a_killed_driver_is_resumed_by_the_rerun(cluster, reference, capsys, tmp_path):
    """The killed driver's worker is left alone: it may still train the student when the rerun starts.

    Ray kills a dead driver's workers, but not at once: a tiny cell's second epoch (0.1 s) can
    finish first, or the orphan can still be training when the rerun's worker reaches the cell.
    The cell's lock (`work/<key>/owner.json`) makes the rerun wait for it, or take its lock over
    once it is dead; either way the rerun continues from the backup it left, and every cell is
    trained and written once.
    """
    run_dir = copy_without(reference, tmp_path / "driver", [STUDENT])
    argv = [*STUDY, "--runs-dir", str(tmp_path), "--name", "driver", "--executor", "ray", "--address", cluster]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    driver = subprocess.Popen([sys.executable, "-m", "keras_mixkd.cli", *argv], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # Kill the driver once the student has backed up an epoch: that cell is mid-training.
        deadline = time.time() + 300
        work = os.path.join(run_dir, "work", STUDENT)
        backup = os.path.join(work, "backup", "training_metadata.json")
        while time.time() < deadline and driver.poll() is None and not os.path.exists(backup):
            time.sleep(0.005)
        assert driver.poll() is None, driver.communicate()[0].decode()
        owner = json.load(open(os.path.join(work, "owner.json")))  # the worker's lock on the cell
        assert owner["pid"] != driver.pid and owner["host"] == socket.gethostname()
    finally:
        driver.send_signal(signal.SIGKILL)
        output = driver.communicate()[0].decode()
    assert "Traceback" not in output and not CONTROL.search(output), output
    out = run_ray(capsys, tmp_path, "driver")
    assert any(line.startswith("study ") and "1 already finished" in line for line in out.splitlines())
    check_every_cell_once(run_dir)
    # The rerun continued the student from the backup the killed driver's worker left.
    log = open(os.path.join(run_dir, "logs", STUDENT + ".log")).read()
    attempts = log.split(f"keras-mixkd cell {STUDENT} · pid ")[1:]
    assert len(attempts) == 2 and "Epoch 1/2" not in attempts[1], log


@pytest.mark.one_backend  # Ray's retries and the cell lock; resuming per backend: test_crash_safety
def test_a_cell_failing_on_its_own_stops_the_study_with_its_one_line_error_unretried(cluster, capsys, tmp_path):
    # Without --threads: both runs take the threads they find (the error does not depend on them).
    argv = [*STUDY_ANY_THREADS, "--runs-dir", str(tmp_path), "--only", "kind=teacher",
            "--set", "teacher.optimizer.model_learning_rates={digits_cnn = 1e30}"]
    assert cli.main([*argv, "--name", "in_process"]) == 2
    expected = capsys.readouterr().err
    assert cli.main([*argv, "--name", "ray", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err == expected and len(err.strip().splitlines()) == 1, (err, expected)
    assert "Training diverged in epoch 1" in err
    cells = os.path.join(tmp_path, "ray", "cells")
    assert not os.path.exists(cells) or not os.listdir(cells)
    log = open(os.path.join(tmp_path, "ray", "work", TEACHER, "cell.log")).read()
    assert log.count("keras-mixkd cell ") == 1, log  # run once: an error of its own is not retried
