"""Process set-up before Keras starts: the backend, TensorFlow's start-up chatter, devices and precision.

What the `keras-mixkd` command line does first, for any program that, like
it, lets its user choose the backend: nothing here imports Keras at import.
"""

import contextlib
import logging
import os
import sys
import tempfile

from keras_mixkd.distribute import check_real_devices
from keras_mixkd.distribute import data_parallel
from keras_mixkd.distribute import request_cpu_devices
from keras_mixkd.distribute import training_scope

BACKENDS = ("tensorflow", "jax", "torch")


# Lines TensorFlow's C++ runtime writes to stderr at import and first device use
# (before absl logging is set up, so TF_CPP_MIN_LOG_LEVEL does not hide them):
# start-up information and "no GPU here" errors of a CPU-only machine.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "TF-TRT Warning",
    "Skipping registering GPU devices",
    "cudart_stub.cc",
    "cuda_driver.cc",
    "cuda_diagnostics.cc",
    "kernel driver does not appear to be running",
    "retrieving CUDA diagnostic information",
    "hostname:",
)


def is_startup_noise(line):
    """True for a line of TensorFlow's start-up chatter (see `_STARTUP_NOISE`), False for anything else."""
    return any(marker in line for marker in _STARTUP_NOISE)


def import_tensorflow_quietly():
    """Import TensorFlow and list its devices with its start-up chatter filtered out of stderr.

    Every backend's data pipeline runs on tf.data, so every command that trains
    or loads a model imports TensorFlow. Its C++ start-up lines go straight to
    file descriptor 2; they are caught in a temporary file and every line that
    is not known noise is written back to stderr, so real warnings still show.
    TensorFlow's Python logger is set to errors only (no retracing warnings).
    """
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host)
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # where a CPU-only machine logs its cuInit failure
        except ImportError:
            pass  # Keras's own import reports it
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
    kept = [line for line in text.splitlines() if line.strip() and not is_startup_noise(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def select_backend(backend):
    """Set KERAS_BACKEND before Keras is imported; refuse when it is too late."""
    wanted = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if wanted not in BACKENDS:
        raise ValueError(f"Unknown backend {wanted!r} (from KERAS_BACKEND); choose one of {', '.join(BACKENDS)}.")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != wanted and backend:
            raise ValueError(
                f"Keras is already imported with the {keras.backend.backend()} backend in this process; "
                f"--backend {wanted} must be chosen before Keras is imported."
            )
        return
    os.environ["KERAS_BACKEND"] = wanted
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def imports_tensorflow(command, what=None):
    """True when `command` imports TensorFlow (so its start-up chatter must be caught first).

    Every command but `report` trains, loads or describes a model or a data
    pipeline; `list models` and `list augmentations` import Keras (and with
    it TensorFlow) to describe them, `list recipes` and `list datasets` do not.

    Example:

    >>> imports_tensorflow("list", "models"), imports_tensorflow("list", "recipes")
    (True, False)
    """
    if command == "report":
        return False
    if command == "list":
        return what in ("models", "augmentations")
    return True


def training_scope_for(command, devices=1, precision="float32", virtual_devices=False):
    """The scope a command enters for `devices` and `precision` before it builds any model.

    The study enters one per cell itself (it clears the Keras session before
    each cell, which would drop an outer scope): for it, only an impossible
    request is refused here, before any cell runs.

    `devices > 1` needs that many accelerators (`check_real_devices`);
    `virtual_devices=True` (`--virtual-devices`) splits the CPU into that
    many virtual devices instead, where there are no accelerators.
    """
    if devices == 1 and precision == "float32":
        return contextlib.nullcontext()
    if devices > 1 and os.environ.get("KERAS_BACKEND") != "torch":
        if os.environ.get("KERAS_BACKEND") == "tensorflow":
            # Both ask TensorFlow for its devices, which logs start-up chatter; listing the
            # physical devices leaves the logical ones still to be configured.
            import_tensorflow_quietly()
        if virtual_devices:
            request_cpu_devices(devices)  # Virtual CPU devices where there are no accelerators.
        else:
            check_real_devices(devices)
    if command == "study":
        data_parallel(devices)  # Refuse an impossible request (PyTorch) before any cell runs.
        return contextlib.nullcontext()
    return training_scope(devices=devices, precision=precision)
