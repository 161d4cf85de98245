"""Math threads of a study's cells (`--threads`, `run_study(threads=)`): checked early, set per backend."""

import os

import keras
import pytest

from keras_mixkd import cli
from keras_mixkd.study import load_recipe
from keras_mixkd.study import run_study
from keras_mixkd.study.executors.threads import JAX_ONE_THREAD_FLAGS
from keras_mixkd.study.executors.threads import check_threads
from keras_mixkd.study.executors.threads import set_math_threads
from keras_mixkd.study.executors.threads import thread_environment

BACKEND = keras.backend.backend()


@pytest.mark.backend_independent
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused_with_what_was_given(bad):
    with pytest.raises(ValueError, match=f"threads must be a whole number >= 1.*got {bad!r}"):
        check_threads(bad)


@pytest.mark.backend_independent
def test_thread_environment_per_backend():
    assert thread_environment(None, "tensorflow") == {}
    env = thread_environment(3, "tensorflow")
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["TF_NUM_INTEROP_THREADS"] == "2"
    assert env["OMP_NUM_THREADS"] == "3" and "XLA_FLAGS" not in env
    assert JAX_ONE_THREAD_FLAGS in thread_environment(1, "jax")["XLA_FLAGS"]
    with pytest.raises(ValueError, match="threads=2 on the JAX backend: XLA:CPU runs on every core or on one"):
        thread_environment(2, "jax")


@pytest.mark.backend_independent
def test_run_study_refuses_bad_threads_before_writing_anything(tmp_path):
    config = load_recipe("digits", smoke=True)
    with pytest.raises(ValueError, match="threads must be a whole number"):
        run_study(config, runs_dir=str(tmp_path), name="bad", threads=0, executor="in_process")
    assert not os.listdir(tmp_path)


@pytest.mark.backend_independent
def test_cli_refuses_bad_threads_in_one_line(capsys, tmp_path):
    argv = ["study", "--smoke", "--runs-dir", str(tmp_path), "--name", "bad", "--threads", "0"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("keras-mixkd study: error: threads must be a whole number >= 1 (or None: the backend's "
                   "default); got 0."), err
    assert not os.listdir(tmp_path)


def test_a_started_backend_with_other_threads_is_a_clear_error_or_is_set():
    keras.ops.convert_to_numpy(keras.ops.ones((2, 2)) @ keras.ops.ones((2, 2)))  # the backend has started
    if BACKEND == "torch":
        import torch

        before = torch.get_num_threads()
        try:
            set_math_threads(1, "torch")  # PyTorch takes it at any time
            assert torch.get_num_threads() == 1
        finally:
            torch.set_num_threads(before)
        return
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow's pools are fixed from its first op on
    current = tf.config.threading.get_intra_op_parallelism_threads()
    # Under TensorFlow a count other than the one tests/conftest.py gave it before it started (1).
    wanted = max(current, 1) + 1 if BACKEND == "tensorflow" else 1
    if BACKEND == "jax" and JAX_ONE_THREAD_FLAGS in os.environ.get("XLA_FLAGS", ""):
        # This process's JAX runs on one thread (tests/conftest.py): a fresh one started with its default.
        import subprocess
        import sys

        flags = os.environ["XLA_FLAGS"].replace(JAX_ONE_THREAD_FLAGS, "").strip()
        code = ("import keras; keras.ops.convert_to_numpy(keras.ops.ones((2, 2)) @ keras.ops.ones((2, 2))); "
                "from keras_mixkd.study.executors.threads import set_math_threads; set_math_threads(1, 'jax')")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, XLA_FLAGS=flags))
        assert done.returncode != 0 and "ValueError: threads=1: JAX has already started" in done.stderr, done.stderr
        return
    expected = "TensorFlow has already started" if BACKEND == "tensorflow" else "JAX has already started"
    before = dict(os.environ)
    try:
        with pytest.raises(ValueError, match=f"threads={wanted}: {expected}"):
            set_math_threads(wanted, BACKEND)
    finally:
        os.environ.clear()
        os.environ.update(before)
