"""The math threads of a cell: part of its numbers on a CPU, so every executor can fix them.

On a CPU, TensorFlow and PyTorch split a convolution's or a matmul's sums
over their thread pool: another thread count adds the same terms in another
order. The round-off differs in the last bits, and a training of many epochs
amplifies that into other weights (on the digits study, test accuracies a few
tenths of a percent apart, the size of the seed-to-seed spread). A cell run by
Ray with one CPU uses one thread; one run in-process uses the backend's default
(every core). Fixing the same `threads` for both gives identical numbers.
"""

import os

THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
# XLA:CPU has no thread count, only on (every core) or off (one thread).
JAX_ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def check_threads(threads):
    """`threads` as an int >= 1, or None (the backend's default); a clear error otherwise."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1 (or None: the backend's default); got {threads!r}.")
    return threads


def thread_environment(threads, backend):
    """Environment variables that give a new process `threads` math threads on `backend`.

    What the command line sets before TensorFlow or JAX starts, and what a Ray
    worker is started with. JAX takes only 1 (XLA:CPU's threading is on or off).

    Example:

    >>> thread_environment(1, "jax")["XLA_FLAGS"]
    '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
    """
    threads = check_threads(threads)
    if threads is None:
        return {}
    env = {"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads),
           "TF_NUM_INTEROP_THREADS": str(min(2, threads))}
    if backend == "jax":
        _check_jax_threads(threads)
        env["XLA_FLAGS"] = _with_jax_one_thread_flags(os.environ.get("XLA_FLAGS", ""))
    return env


# backend -> the threads `apply_thread_environment` gave it before it started in this process.
_SIZED_BEFORE_START = {}


def apply_thread_environment(threads, backend):
    """Set this process's environment for `threads` math threads, before TensorFlow or JAX starts.

    What the command line's `--threads` does first thing. `set_math_threads`
    later accepts a TensorFlow that started since with that pool.

    Example:

    >>> apply_thread_environment(1, "tensorflow")
    >>> os.environ["TF_NUM_INTRAOP_THREADS"]
    '1'
    """
    import sys

    os.environ.update(thread_environment(threads, backend))
    if threads is not None and "tensorflow" not in sys.modules:
        _SIZED_BEFORE_START["tensorflow"] = threads


def set_math_threads(threads, backend):
    """Give this process `threads` math threads on `backend` (None: leave the default).

    PyTorch takes it at any time. TensorFlow and JAX fix their thread pools
    when they start: set before (the command line's `--threads` does, through
    `thread_environment`), or this raises a `ValueError` saying so, unless the
    running pool already has that size.
    """
    threads = check_threads(threads)
    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    if backend == "jax":
        _check_jax_threads(threads)
        if JAX_ONE_THREAD_FLAGS not in os.environ.get("XLA_FLAGS", ""):
            import sys

            if "jax" in sys.modules and _jax_started():
                raise ValueError(
                    f"threads={threads}: JAX has already started with its default threads in this process; "
                    f"set XLA_FLAGS='{JAX_ONE_THREAD_FLAGS}' before importing JAX (keras-mixkd study "
                    "--threads 1 does).")
            os.environ["XLA_FLAGS"] = _with_jax_one_thread_flags(os.environ.get("XLA_FLAGS", ""))
    # TensorFlow runs every backend's tf.data pipeline and the tensorflow backend's math.
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
    except RuntimeError:
        current = tf.config.threading.get_intra_op_parallelism_threads()
        # Already started (loading a recipe builds its augmentations once, to check them): fine when the
        # pool was sized before it started (`apply_thread_environment`, the command line's --threads).
        sized_before = _SIZED_BEFORE_START.get("tensorflow") == threads
        if backend == "tensorflow" and current != threads and not sized_before:
            raise ValueError(
                f"threads={threads}: TensorFlow has already started with "
                f"{current or 'its default'} math threads in this process; set TF_NUM_INTRAOP_THREADS="
                f"{threads} before importing TensorFlow (keras-mixkd study --threads {threads} does).") from None


def _with_jax_one_thread_flags(flags):
    """`flags` (an XLA_FLAGS value) with XLA:CPU's one-thread flags, added once."""
    if JAX_ONE_THREAD_FLAGS in flags:
        return flags
    return f"{flags} {JAX_ONE_THREAD_FLAGS}".strip()


def _check_jax_threads(threads):
    if threads != 1:
        raise ValueError(
            f"threads={threads} on the JAX backend: XLA:CPU runs on every core or on one thread; "
            "use threads=1, or None for every core.")


def _jax_started():
    from keras_mixkd._keras_compat import jax_backends_started

    return jax_backends_started()
