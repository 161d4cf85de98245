"""Shared test setup. The backend is fixed by KERAS_BACKEND before Keras is imported.

`make test` runs the suite once per backend. Tests marked `backend_independent`
(configs, reports, analysis scripts, progress lines: nothing Keras computes)
run under one backend only, `KERAS_MIXKD_INDEPENDENT_BACKEND` (the Makefile sets its
INDEPENDENT_BACKEND, torch when tested; tensorflow when unset), and are skipped, with
the reason, under the others. Set it to `all` to run them under every backend.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# XLA compiles every new shape of the tests' tiny models; at LLVM's lowest
# optimisation level compiling takes ~40 % less CPU (tests/test_models.py under
# JAX: 131 s -> 82 s of CPU time) while the numbers stay within the tests'
# tolerances. Tests only: benchmarks and users keep XLA's default. Set before
# Keras imports JAX.
if os.environ["KERAS_BACKEND"] == "jax" and "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
# One math thread per test process (and the subprocesses, which inherit it), unless the caller set
# thread variables: `make test` runs two pytest-xdist workers on a 2-core machine, and with each
# backend's default (a thread per core in each worker) the thread pools of the tiny models wait and
# spin against each other (tests/test_shared_teacher.py + test_fixed_cost.py under PyTorch beside a
# busy core: 27 s of CPU with the default, 13 s with one thread). What a cell computes on one thread
# is what `--threads 1` gives (keras_mixkd.study.executors.threads), and the variables are set as
# `--threads 1` sets them, before TensorFlow and JAX start (TensorFlow also runs tf.data under the other
# backends): the command line then takes `--threads 1` in the test process (tests/test_ray_executor.py's
# in-process run). Tests of thread counts set theirs; those of a backend started with its default
# threads start a fresh process (tests/test_threads.py). The pytest-xdist workers find the variables
# set by the controller, which loaded this file first.
from keras_mixkd.study.executors.threads import apply_thread_environment  # noqa: E402 (neither Keras nor a backend)
from keras_mixkd.study.executors.threads import thread_environment  # noqa: E402

if all(os.environ.get(name, value) == value for name, value in thread_environment(1, "tensorflow").items()):
    # Under JAX, also XLA:CPU's one-thread flags, after the flags above (XLA stops reading at one of them).
    apply_thread_environment(1, "jax" if os.environ["KERAS_BACKEND"] == "jax" else "tensorflow")
# The tests build the same tiny models again and again (every cell, every test clears the session),
# so JAX compiles the same programs many times. One persistent compilation cache for the whole run,
# shared by the pytest-xdist workers and the subprocesses (they inherit the variables), serves each
# program after its first compile: a cached executable is the one XLA compiled, so no number changes
# (tests/test_study_groups.py under JAX: 92 s of CPU time without it, 79 s with a cold cache, 41 s warm).
# The folder is made once, by the process that loads this file first (the xdist controller), and
# removed when it exits. Set JAX_COMPILATION_CACHE_DIR yourself to keep a cache between runs.
if os.environ["KERAS_BACKEND"] == "jax" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _jax_cache = tempfile.mkdtemp(prefix="keras-mixkd-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _jax_cache
    atexit.register(shutil.rmtree, _jax_cache, ignore_errors=True)
if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    # JAX caches only programs that took a second to compile by default; the tests' take less.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Keras is imported by the fixtures, not here: under pytest-xdist this file is also loaded by the
# controller process, which runs no test, and importing Keras (and TensorFlow) there delays the
# workers' start by seconds. KERAS_BACKEND is set above, and Keras takes its backend from it.
from tests.backends import BACKEND  # noqa: E402
from tests.backends import INDEPENDENT_BACKEND  # noqa: E402
from tests.backends import runs_one_backend_tests  # noqa: E402


def _keras_version():
    from importlib import metadata

    for distribution in ("keras", "keras-nightly"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            pass
    return "unknown"


def pytest_report_header(config):
    where = "every backend" if INDEPENDENT_BACKEND == "all" else INDEPENDENT_BACKEND
    return f"keras {_keras_version()}, backend {BACKEND}; backend-independent tests under {where}"


# A session fixture costing many seconds (a study), used by tests in several files: every test
# using it joins one pytest-xdist group (`--dist loadgroup`), so one worker builds it while the
# other runs other tests, rather than both building it. (A test module whose own module-scoped
# fixture is costly marks itself with `pytestmark = pytest.mark.xdist_group(...)`.)
COSTLY_SESSION_FIXTURES = ("tiny_study",)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups from the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        costly = [name for name in COSTLY_SESSION_FIXTURES if name in getattr(item, "fixturenames", ())]
        if costly and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(costly[0]))
    # pytest-xdist hands out the groups first, then single tests in this order: the tests of tens of
    # seconds (`slow`) go first, so that the two workers finish together rather than one waiting on
    # a slow test handed out last. (Only tests without module-scoped fixtures are marked `slow`:
    # moving them does not split their module's fixtures.)
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") else 1)
    if runs_one_backend_tests():
        return
    skips = {
        "backend_independent": pytest.mark.skip(
            reason=f"backend-independent: run under KERAS_BACKEND={INDEPENDENT_BACKEND} only"),
        "one_backend": pytest.mark.skip(
            reason=f"tests what no backend changes: run under KERAS_BACKEND={INDEPENDENT_BACKEND} only"),
    }
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker):
                item.add_marker(skip)


_UNGROUPED = set()  # tests marked xdist_group that pytest-xdist could not group (see below)


def pytest_collection_finish(session):
    """Under `--dist loadgroup`, note the tests pytest-xdist could not group: each of them fails.

    pytest-xdist groups a test by renaming its node id `<id>@<group>`; with a pytest that keeps the
    id elsewhere (9.2, with pytest-xdist 3.8) the renaming silently does nothing, and every costly
    shared fixture (a Ray cluster, a study) is built once per worker, at the same time.
    """
    if getattr(session.config.option, "loadgroup", False):  # set in the workers of --dist loadgroup
        _UNGROUPED.update(item.nodeid for item in session.items
                          if item.get_closest_marker("xdist_group") and "@" not in item.nodeid)


def pytest_runtest_setup(item):
    if item.nodeid in _UNGROUPED:
        pytest.fail(f"pytest-xdist's --dist loadgroup did not group the {len(_UNGROUPED)} tests marked "
                    "xdist_group: this pytest and pytest-xdist do not work together. Install the versions "
                    "pyproject.toml's test extra names (make install).", pytrace=False)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from a clean Keras session and fixed seeds."""
    import keras

    # free_memory=False skips a full garbage collection (~0.6 s a test).
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def splits():
    """The digits data set with a 10 % validation split (seed 0), loaded once. Read it, never change it."""
    from keras_mixkd.data import load_dataset

    return load_dataset("digits", validation_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """One tiny study, run once for the session and read by the study, report, analysis and CLI tests.

    Two teachers (no augmentation, mixup), each distilled into one student with
    partial mixup at T = 1, and the student trained alone: five cells, two
    epochs each, with TensorBoard logs, the report and its plots. Returns
    `(run_dir, records, lines)`: the run folder (a `pathlib.Path`), the records
    `run_study` returned and the lines it printed. Tests that change the folder
    work on a copy.
    """
    import keras

    from keras_mixkd.study import RunOptions
    from keras_mixkd.study import run_study
    from tests.helpers import PMU
    from tests.helpers import tiny_config

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    runs = tmp_path_factory.mktemp("tiny_study")
    lines = []
    config = tiny_config(**{"teacher.augmentations": ["none", "mixup"], "distillation": [PMU]})
    records = run_study(config, runs_dir=str(runs), name="tiny", print_fn=lines.append,
                        options=RunOptions(verbose=0, tensorboard=True))
    return runs / "tiny", records, lines
