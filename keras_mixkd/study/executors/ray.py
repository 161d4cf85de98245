"""`RayExecutor`: every cell of a study a Ray task; the driver the only writer of the run folder."""

import contextlib
import dataclasses
import hashlib
import math
import os
import socket
import sys
import tempfile

from keras_mixkd.study.cell_lock import CellLock
from keras_mixkd.study.executors.cell_result import CellResult
from keras_mixkd.study.executors.executor import Executor
from keras_mixkd.study.executors.executor import teacher_dependency


class WorkerLostError(ChildProcessError):
    """A cell's Ray worker died (killed, out of memory, node lost) more often than retried."""


class RayNotInstalledError(ImportError, ValueError):
    """The ray executor was asked for where Ray is not installed (a `ValueError` too: one line in the CLI)."""


class RayExecutor(Executor):
    """Run each cell of a study as a Ray task, on this machine or across a cluster.

    Each cell is one task asking for `cpus_per_cell` CPUs and `gpus_per_cell`
    GPUs; a student's task takes its teacher's task's output (the teacher's
    `.keras` bytes) as an argument, so Ray starts it once the teacher is
    trained. Tasks return the model's `.keras` bytes, the record, the
    features and the cell's log through Ray's object store: the driver (the
    process of `run_study`) writes them to the run folder, and is its only
    writer. Nodes need no shared file system.

    Backups: a worker that can see the run folder (same machine, or a shared
    file system: it finds the driver's `study.json` at the same path, with
    the same content) trains in the run folder's `work/<key>/`, like the
    in-process executor, so a rerun after any failure continues each
    interrupted cell from its last backup on whichever node runs it. A
    worker that cannot see it trains in a folder of its own node's temporary
    directory, keyed by the study: a retry or rerun that lands on the same
    node continues from there; on another node the cell starts over.

    Faults: a task whose worker process dies (SIGKILL, out of memory, lost
    node) is run again up to `max_retries` times, from its backup; each cell
    is written once, by the driver, whatever was retried. A cell failing for
    a reason of its own (bad input, `NonFiniteLossError`) is not retried: the
    study stops with that cell's own error, the cells already finished stay.

    Workers use the driver's Keras backend (`KERAS_BACKEND`) and limit their
    math threads to their CPUs; Keras's output of each cell (always one line
    per epoch, whatever `verbose`) goes to `logs/<key>.log` in the run folder
    (while it runs: `work/<key>/cell.log` on a shared file system), never to
    the driver's terminal.

    Arguments:
        address: the cluster to join (`"auto"`, `"ray://host:10001"`,
            `"host:6379"`); None starts Ray on this machine (or uses the Ray
            already initialised in this process).
        workers: cells run at once when Ray is started here (default: one per
            GPU on a GPU machine, else one per `cpus_per_cell` CPUs).
        cpus_per_cell: CPUs of one cell (and its math threads), > 0.
        threads: math threads of each cell, if not `cpus_per_cell`'s (on a
            CPU they change the round-off; `threads=1` equals the in-process
            executor's `threads=1`, see `executors.threads`).
        gpus_per_cell: GPUs of one cell, >= 0; None: 1 where the cluster has
            GPUs, else 0.
        max_retries: runs again of a cell whose worker died, >= 0.

    Example:

    >>> from keras_mixkd.study import load_recipe, run_study
    >>> run_study(load_recipe("digits"), executor="ray", workers=2)
    >>> run_study(load_recipe("digits"), executor="ray", address="auto")  # after `ray start --head`
    """

    name = "ray"

    def __init__(self, address=None, workers=None, cpus_per_cell=1.0, gpus_per_cell=None, max_retries=3,
                 threads=None):
        import keras

        from keras_mixkd.study.executors.threads import thread_environment

        thread_environment(threads, keras.backend.backend())  # checks threads now, before any cell
        self.threads = threads
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(f"address must be a Ray address such as 'auto' or 'host:6379'; got {address!r}.")
        if workers is not None:
            if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
                raise ValueError(f"workers must be an int >= 1 (cells run at once); got {workers!r}.")
            if address is not None:
                raise ValueError(
                    f"workers={workers} starts Ray on this machine with that many cells at once; with "
                    f"address={address!r} the cluster's resources decide it (see cpus_per_cell, "
                    "gpus_per_cell). Give one of the two."
                )
        if not _is_number(cpus_per_cell) or cpus_per_cell <= 0:
            raise ValueError(f"cpus_per_cell must be a number > 0; got {cpus_per_cell!r}.")
        if gpus_per_cell is not None and (not _is_number(gpus_per_cell) or gpus_per_cell < 0):
            raise ValueError(f"gpus_per_cell must be a number >= 0 (or None: 1 on GPU machines); "
                             f"got {gpus_per_cell!r}.")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0; got {max_retries!r}.")
        self.address = address
        self.workers = workers
        self.cpus_per_cell = float(cpus_per_cell)
        self.gpus_per_cell = None if gpus_per_cell is None else float(gpus_per_cell)
        self.max_retries = max_retries

    def describe(self):
        if self.address is not None:
            return f"ray (cluster {self.address})"
        if self.workers is not None:
            return f"ray (local, {self.workers} worker{'s' * (self.workers != 1)})"
        return "ray"

    def run(self, pending, *, config, splits, folder, on_done, options):
        # Each cell is a task of its own: students are not grouped under Ray (group_students is ignored).
        if not pending:
            return
        ray = import_ray()
        env_vars = self._env_vars()
        started = self._connect(ray, env_vars)
        try:
            self._run(ray, env_vars, pending, config, splits, folder, on_done, options)
        finally:
            if started:
                ray.shutdown()

    # -- the driver's side --
    def _connect(self, ray, env_vars):
        """Join the cluster or start Ray here; True when this call started it."""
        if ray.is_initialized():
            if self.address is not None or self.workers is not None:
                raise ValueError(
                    "Ray is already initialised in this process: the study runs on that cluster. "
                    "Leave address and workers unset (or call ray.shutdown() first)."
                )
            return False
        # The driver's own keras_mixkd travels with the job to every node (nodes need only its
        # dependencies installed), so workers run the driver's code.
        runtime_env = {"py_modules": [_package_dir()], "excludes": ["__pycache__", "*.pyc"],
                       "env_vars": env_vars}
        # A Ray started here says nothing but errors (its notes on token authentication and the
        # like are not the study's business); a cluster's warnings are shown.
        kwargs = {"include_dashboard": False, "log_to_driver": False, "runtime_env": runtime_env,
                  "logging_level": "WARNING" if self.address is not None else "ERROR"}
        if self.address is not None:
            ray.init(address=self.address, **kwargs)
        else:
            cpus = os.cpu_count() or 1
            if self.workers is not None:
                cpus = max(1, math.ceil(self.workers * self.cpus_per_cell))
            ray.init(num_cpus=cpus, **kwargs)
        return True

    def _gpus_per_cell(self, ray):
        if self.gpus_per_cell is not None:
            return self.gpus_per_cell
        return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0

    def _env_vars(self):
        """The workers' environment: the driver's backend, quiet TensorFlow, threads for their CPUs."""
        import keras

        from keras_mixkd.study.executors.threads import thread_environment

        # On this machine (or a shared file system) workers import the driver's keras_mixkd
        # from here; elsewhere from the job's py_modules.
        path = [_package_dir_parent()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        return {
            "KERAS_BACKEND": keras.backend.backend(),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
            "OMP_NUM_THREADS": str(self._threads()),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(path),
            # TensorFlow's (and with threads=1, JAX's) pools are fixed when the worker starts them.
            **thread_environment(self.threads, keras.backend.backend()),
        }

    def _threads(self):
        return self.threads or max(1, int(self.cpus_per_cell))

    def _run(self, ray, env_vars, pending, config, splits, folder, on_done, options):
        gpus = self._gpus_per_cell(ray)
        threads = self._threads()
        runtime_env = {"env_vars": env_vars}
        context = {
            "run_path": os.path.abspath(folder.path),
            "token": manifest_token(folder.manifest_path),
            # Always one line per epoch: the log is where a long study is watched (`tail -f`),
            # and a progress bar's carriage returns do not belong in a file.
            "options": dataclasses.replace(options, verbose=2, group_students=False), "threads": threads,
        }
        task = ray.remote(run_cell_task)
        config_ref, splits_ref = ray.put(config), ray.put(splits)
        teachers = {}  # cell key -> ref of its .keras bytes
        waiting = {}  # payload ref -> (index, cell, bytes ref)
        try:
            for index, cell in pending:
                teacher = teacher_dependency(cell)
                teacher_ref = None
                if teacher is not None:
                    if teacher not in teachers:
                        if not folder.is_done(teacher):
                            raise ValueError(f"Cell {cell.key} needs the teacher {teacher}, which is neither "
                                             "finished nor part of this run.")
                        with open(folder.model_path(teacher), "rb") as f:
                            teachers[teacher] = ray.put(f.read())
                    teacher_ref = teachers[teacher]
                model_ref, payload_ref = task.options(
                    num_cpus=self.cpus_per_cell, num_gpus=gpus, max_retries=self.max_retries,
                    retry_exceptions=False, num_returns=2, runtime_env=runtime_env, name=cell.key,
                ).remote(cell, config_ref, splits_ref, teacher_ref, context)
                teachers[cell.key] = model_ref  # any cell may be another's teacher
                waiting[payload_ref] = (index, cell, model_ref)
            while waiting:
                ready, _ = ray.wait(list(waiting), num_returns=1)
                for ref in ready:
                    index, cell, model_ref = waiting.pop(ref)
                    payload, model_bytes = _get(ray, cell, ref, model_ref, self.max_retries)
                    on_done(index, cell, CellResult(record=payload["record"], features=payload["features"],
                                                    model_bytes=model_bytes, log=payload["log"],
                                                    log_files=payload.get("log_files")))
        finally:
            for ref in waiting:  # a failure or an interrupt: stop what still runs
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)


def _get(ray, cell, payload_ref, model_ref, max_retries):
    """The task's outputs; its own error as it was raised, or `WorkerLostError`."""
    try:
        return ray.get(payload_ref), ray.get(model_ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None  # the cell's own one-line error, as in-process
        raise
    except ray.exceptions.RayError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WorkerLostError(
            f"Cell {cell.key} was lost: its Ray worker died {max_retries + 1} time(s) "
            f"(max_retries={max_retries}; last: {type(error).__name__}: {first}). The finished cells "
            "are kept; rerun the same command to continue from the last backups."
        ) from None


def _package_dir():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _package_dir_parent():
    return os.path.dirname(_package_dir())


def import_ray():
    """`import ray`, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise RayNotInstalledError(
            "The ray executor needs Ray: pip install 'keras-mixkd[ray]' (or pip install ray). "
            f"({error})"
        ) from None
    return ray


def manifest_token(path):
    """A fingerprint of a run folder's study.json: a worker finding the same file sees the same folder."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# -- the worker's side --
def run_cell_task(cell, config, splits, teacher_bytes, context):
    """The Ray task of one cell: train it, return `(model .keras bytes, {record, features, log})`.

    Writes only in the cell's work folder (see `RayExecutor`); Keras's output
    and the process's own (file descriptors 1 and 2) go to that folder's
    `cell.log` while the cell runs.
    """
    options = context["options"]
    _limit_threads(context["threads"], options.devices)
    work_dir = cell_work_dir(context, cell.key)
    os.makedirs(work_dir, exist_ok=True)
    log = os.path.join(work_dir, "cell.log")
    with _output_to(log):
        print(f"keras-mixkd cell {cell.key} · pid {os.getpid()} on {socket.gethostname()} · "
              f"work dir {work_dir}", flush=True)
        # The work folder's one owner from the teacher's file to the cleanup (execute_cells takes the
        # same lock again, re-entrantly): a worker of a killed driver still in this cell is waited for.
        with CellLock(work_dir):
            model_bytes, result, log_dir = _run_locked(cell, config, splits, teacher_bytes, options, work_dir)
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    log_files = {}
    for root, _, names in os.walk(log_dir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                log_files[os.path.relpath(path, log_dir)] = f.read()
    return model_bytes, {"record": result.record, "features": result.features, "log": text,
                         "log_files": log_files}


def _run_locked(cell, config, splits, teacher_bytes, options, work_dir):
    """The cell's training in its work folder (its lock held): `(model bytes, CellResult, log folder)`."""
    teacher_file = None
    if teacher_bytes is not None:
        teacher_file = os.path.join(work_dir, "teacher.keras")
        _write_bytes(teacher_file, teacher_bytes)
    from keras_mixkd.study.cell_execution import execute_cells
    from keras_mixkd.study.cell_folders import CellFolders

    # The CSVLogger's and TensorBoard's files are written next to the backup and handed to the
    # driver, which puts them in logs/<key>/ as the in-process executor does.
    log_dir = os.path.join(work_dir, "logs")
    [result] = execute_cells([cell], config, splits, teacher_path=lambda key: teacher_file,
                             folders=CellFolders.of_one(work_dir, log_dir), options=options)
    model_file = os.path.join(work_dir, "model.keras")
    result.model.save(model_file)
    with open(model_file, "rb") as f:
        model_bytes = f.read()
    os.remove(model_file)
    if teacher_file is not None:
        os.remove(teacher_file)
        # The teacher's logits, computed in this cell (each Ray cell computes its own cache).
        from keras_mixkd.study.teacher_cache import teacher_cache_path

        with contextlib.suppress(FileNotFoundError):
            os.remove(teacher_cache_path(teacher_file))
    print(f"keras-mixkd cell {cell.key}: finished in {result.record['seconds']:.1f} s", flush=True)
    return model_bytes, result, log_dir


def cell_work_dir(context, key):
    """The run folder's `work/<key>/` when this node sees the driver's run folder, else a local one."""
    manifest = os.path.join(context["run_path"], "study.json")
    try:
        shared = manifest_token(manifest) == context["token"]
    except OSError:
        shared = False
    if shared:
        return os.path.join(context["run_path"], "work", key)
    return os.path.join(tempfile.gettempdir(), "keras-mixkd-work", context["token"][:16], key)


def _limit_threads(threads, devices):
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if devices and devices > 1 and backend != "torch":
        from keras_mixkd.distribute import request_cpu_devices

        with contextlib.suppress(ValueError):  # a reused worker already set up
            request_cpu_devices(devices)
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # a reused worker: TensorFlow already started
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))


@contextlib.contextmanager
def _output_to(path):
    """Send this process's stdout and stderr (Python's and the C libraries') to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _write_bytes(path, data):
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
