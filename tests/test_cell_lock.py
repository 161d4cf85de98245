"""One owner per cell work folder: a live owner is waited for then refused, a dead one's lock is taken over.

The owner is a child process started here (a sleeping Python), standing for a
Ray worker of a killed driver still training the cell: no worker is frozen.
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from keras_mixkd._checks import explain_error
from keras_mixkd.study import cell_lock
from keras_mixkd.study.cell_lock import LOCK_FILE
from keras_mixkd.study.cell_lock import CellBusyError
from keras_mixkd.study.cell_lock import CellLock
from keras_mixkd.study.cell_lock import process_owner

pytest.importorskip("psutil", reason="the start time of a lock's owner is read with psutil")


def sleeper(seconds=60):
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def held_by(work_dir, owner):
    os.makedirs(work_dir, exist_ok=True)
    with open(os.path.join(work_dir, LOCK_FILE), "w") as f:
        json.dump(dict(owner, token="theirs"), f)


def read_lock(work_dir):
    with open(os.path.join(work_dir, LOCK_FILE)) as f:
        return json.load(f)


@pytest.mark.backend_independent
def test_a_live_owner_is_refused_then_its_lock_is_taken_over_once_it_died(tmp_path):
    work = str(tmp_path / "work" / "teacher__x__none__s0")
    child = sleeper()
    try:
        owner = process_owner(child.pid)
        assert owner["host"] == socket.gethostname() and owner["started"] is not None
        held_by(work, owner)
        start = time.monotonic()
        with pytest.raises(CellBusyError) as error:
            CellLock(work, wait=0.3, poll=0.05, print_fn=None).acquire()
        assert time.monotonic() - start >= 0.3  # it waited before refusing
        message = explain_error(error.value)
        assert f"Cell work folder {work} is in use by process {child.pid} on {socket.gethostname()}" in message
        assert f"kill {child.pid}" in message and "\n" not in message
        assert read_lock(work)["token"] == "theirs"  # the live owner's lock is left alone
    finally:
        child.kill()
        child.wait()
    # The owner is dead: the lock is taken over, names this process, and goes when the block ends.
    with CellLock(work, wait=0, print_fn=None):
        mine = read_lock(work)
        assert mine["pid"] == os.getpid() and mine["token"] != "theirs"
        assert not [name for name in os.listdir(work) if name != LOCK_FILE]  # no temporary file left
    assert not os.path.exists(os.path.join(work, LOCK_FILE))


@pytest.mark.backend_independent
def test_a_cell_waits_for_a_live_owner_that_ends(tmp_path):
    work = str(tmp_path / "cell")
    child = sleeper(1.0)
    held_by(work, process_owner(child.pid))
    said = []
    start = time.monotonic()
    try:
        with CellLock(work, wait=30, poll=0.05, print_fn=said.append):
            assert read_lock(work)["pid"] == os.getpid()
    finally:
        child.kill()
        child.wait()
    assert 0.3 < time.monotonic() - start < 30
    assert len(said) == 1 and f"waiting up to 30 s for process {child.pid} on " in said[0]


@pytest.mark.backend_independent
def test_a_reused_process_id_and_another_host(tmp_path):
    # This process's parent is alive, but did not start at the time the lock names: a reused id, taken over.
    work = str(tmp_path / "reused")
    held_by(work, dict(process_owner(os.getppid()), started=1.0))
    with CellLock(work, wait=0, print_fn=None):
        assert read_lock(work)["pid"] == os.getpid()
    # Another host's process cannot be checked: refused, naming the file to delete once it has ended.
    work = str(tmp_path / "elsewhere")
    held_by(work, {"host": "another-node", "pid": 12345, "started": 1.0})
    with pytest.raises(CellBusyError, match=r"owned by process 12345 on another-node.*delete .*owner\.json"):
        CellLock(work, wait=0, print_fn=None).acquire()


@pytest.mark.backend_independent
def test_the_lock_is_reentrant_within_a_process_and_kept_until_the_outer_block_ends(tmp_path):
    work = str(tmp_path / "cell")
    with CellLock(work, print_fn=None):
        token = read_lock(work)["token"]
        with CellLock(work, wait=0, print_fn=None):
            assert read_lock(work)["token"] == token
        assert read_lock(work)["token"] == token
    assert not os.path.exists(os.path.join(work, LOCK_FILE))


def test_a_study_refuses_a_cell_another_live_process_trains(tmp_path, monkeypatch):
    """run_study through execute_cells: the cell's work folder is owned by a live child; nothing is trained."""
    from keras_mixkd.study import RunOptions
    from keras_mixkd.study import run_study
    from keras_mixkd.study.run_folder import RunFolder
    from tests.helpers import tiny_config

    config = tiny_config(**{"teacher.augmentations": ["none"], "student.baseline": False, "pairs": [
        {"teacher": "digits_cnn", "student": "digits_cnn_small"}]})
    folder = RunFolder(tmp_path / "locked")
    folder.open(config)
    key = "teacher__digits_cnn__none__s0"
    monkeypatch.setattr(cell_lock, "DEFAULT_WAIT_SECONDS", 0.2)
    child = sleeper()
    try:
        held_by(folder.work_dir(key), process_owner(child.pid))
        with pytest.raises(CellBusyError, match=f"work/{key} is in use by process {child.pid}"):
            run_study(config, runs_dir=str(tmp_path), name="locked", report=False, print_fn=lambda *_: None,
                      options=RunOptions(verbose=0), only={"kind": ["teacher"]})
    finally:
        child.kill()
        child.wait()
    assert not folder.is_done(key) and os.listdir(folder.work_dir(key)) == [LOCK_FILE]
