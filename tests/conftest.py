"""Shared test setup. The backend is fixed by KERAS_BACKEND before Keras is imported."""

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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from a clean Keras session and fixed seeds."""
    # free_memory=False skips a full garbage collection (~0.6 s a test).
    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
