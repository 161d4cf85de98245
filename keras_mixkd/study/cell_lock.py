"""`CellLock`: one owner at a time for a cell's work folder, across processes and reruns.

A study killed mid-cell can leave a process still training that cell: a Ray
worker of a killed driver goes on until Ray stops it, and a second `keras-mixkd
study` on the same runs folder would train the same cells. Two processes
training in one work folder overwrite each other's backups. Whoever trains a
cell first takes its lock, `work/<key>/owner.json`, naming the host, the
process id and the process's start time; it is removed when the cell's
training ends. A process that finds a lock:

- of a live process on this host: waits for it to end (up to `wait`
  seconds), then refuses the cell with `CellBusyError`;
- of a process that has ended (or whose id now belongs to a later process):
  takes the lock over, and continues the cell from its backup;
- of another host: cannot tell, and refuses after `wait` seconds, naming the
  file to delete once that process is gone.
"""

import contextlib
import datetime
import json
import os
import socket
import time
import uuid

# The lock's file name in a cell's work folder.
LOCK_FILE = "owner.json"

# How long a cell waits, by default, for a live owner of its work folder to end.
DEFAULT_WAIT_SECONDS = 60.0

# The locks this process holds: path -> [token, depth] (re-entrant within a process).
_HELD = {}


class CellBusyError(BlockingIOError):
    """A cell's work folder is owned by another process that is still alive (or cannot be checked)."""


def process_owner(pid=None):
    """What a lock records of a process: `{"host", "pid", "started"}` (`started`: its start time, epoch seconds).

    Arguments:
        pid: a process id on this host (default: this process).

    Example:

    >>> process_owner()
    {'host': 'node-1', 'pid': 4242, 'started': 1796630933.81}
    """
    pid = os.getpid() if pid is None else int(pid)
    return {"host": socket.gethostname(), "pid": pid, "started": _start_time(pid)}


def _start_time(pid):
    try:
        import psutil
    except ImportError:  # without psutil a reused process id cannot be told apart
        return None
    try:
        return round(psutil.Process(pid).create_time(), 3)
    except psutil.Error:
        return None


def owner_state(owner):
    """`"alive"`, `"dead"` or `"unknown"` (another host) for a lock's owner record.

    A process id that now belongs to a process started at another time (a
    reused id) and a zombie count as dead.
    """
    if owner.get("host") != socket.gethostname():
        return "unknown"
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return "dead"
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return "dead"
            started = owner.get("started")
            if started is not None and abs(process.create_time() - started) > 1.0:
                return "dead"
            return "alive"
        except psutil.NoSuchProcess:
            return "dead"
        except psutil.Error:
            return "alive"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"
    return "alive"


def read_owner(path):
    """The owner record of a lock file, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


class CellLock:
    """The lock of a cell's work folder: `with CellLock(work_dir):` trains as its only owner.

    Taken atomically (a complete lock file is linked into place, which fails
    when one exists), re-entrant within a process, and removed on leaving the
    block (only when it is still this process's).

    Arguments:
        work_dir: the cell's work folder (created if missing).
        wait: seconds to wait for a live owner to end before refusing
            (None: `DEFAULT_WAIT_SECONDS`, read when the lock is made).
        poll: seconds between two looks at a live owner's lock.
        print_fn: where the one line saying that it waits goes (None: nowhere).

    Example:

    >>> with CellLock("runs/digits/work/teacher__digits_cnn__none__s0"):
    ...     train_teacher(...)
    """

    def __init__(self, work_dir, *, wait=None, poll=0.5, print_fn=print):
        self.work_dir = os.fspath(work_dir)
        self.path = os.path.join(self.work_dir, LOCK_FILE)
        self.wait = float(DEFAULT_WAIT_SECONDS if wait is None else wait)
        self.poll = float(poll)
        self.print_fn = print_fn

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *_):
        self.release()

    def acquire(self):
        """Take the lock: at once, after a live owner ends, or over a dead one; else `CellBusyError`."""
        path = os.path.abspath(self.path)
        if path in _HELD:
            _HELD[path][1] += 1
            return
        os.makedirs(self.work_dir, exist_ok=True)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait
        told = False
        while True:
            if self._create(path, token):
                _HELD[path] = [token, 1]
                return
            owner = read_owner(path)
            if owner is None:  # removed meanwhile (or being replaced): look again
                if time.monotonic() >= deadline:
                    raise CellBusyError(f"The lock {path} of a cell's work folder cannot be read: delete it if "
                                        "no other run trains this cell, then rerun the same command.")
                time.sleep(min(self.poll, 0.05))
                continue
            state = "dead" if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname() \
                else owner_state(owner)
            if state == "dead":
                self._take_over(path, owner)
                continue
            if time.monotonic() >= deadline:
                raise CellBusyError(self._busy_message(path, owner, state))
            if not told and self.print_fn is not None:
                self.print_fn(f"{self.work_dir}: waiting up to {self.wait:.0f} s for {_describe(owner)} to end "
                              "(it still trains this cell)")
                told = True
            time.sleep(self.poll)

    def release(self):
        """Leave the lock; the file goes when the outermost holder of this process leaves it."""
        path = os.path.abspath(self.path)
        held = _HELD.get(path)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[path]
        owner = read_owner(path)
        if owner is not None and owner.get("token") == held[0]:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)

    # -- the file --
    def _create(self, path, token):
        """Put a complete lock file in place unless one exists; True when this call did."""
        owner = dict(process_owner(), token=token, acquired=time.time())
        tmp = f"{path}.{token}.partial"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(owner, f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails when a lock is there: never two owners
            return True
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: exclusive create, then write
            try:
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(handle, "w", encoding="utf-8") as f:
                json.dump(owner, f)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)

    def _take_over(self, path, owner):
        """Move a dead owner's lock aside; put it back if it was not the one read (another process's new lock)."""
        aside = f"{path}.{uuid.uuid4().hex}.stale"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        if read_owner(aside) == owner:
            with contextlib.suppress(FileNotFoundError):
                os.remove(aside)
            return
        with contextlib.suppress(OSError):  # a live lock taken by mistake goes back
            os.link(aside, path)
        with contextlib.suppress(FileNotFoundError):
            os.remove(aside)

    def _busy_message(self, path, owner, state):
        who = _describe(owner)
        if state == "unknown":
            return (f"Cell work folder {self.work_dir} is owned by {who}, on another host that this one cannot "
                    f"check (waited {self.wait:.0f} s). If that run has ended, delete {path} and rerun the "
                    "same command.")
        return (f"Cell work folder {self.work_dir} is in use by {who}, still running (waited {self.wait:.0f} s): "
                "another run trains this cell — a second study on the same runs folder, or a Ray worker of a "
                f"killed driver that has not stopped yet. Wait for it to end or stop it (kill {owner.get('pid')}), "
                "then rerun the same command: it continues from the cell's backup.")


def _describe(owner):
    started = owner.get("started")
    when = ""
    if isinstance(started, (int, float)):
        when = ", started " + datetime.datetime.fromtimestamp(started).isoformat(sep=" ", timespec="seconds")
    return f"process {owner.get('pid')} on {owner.get('host')}{when}"
