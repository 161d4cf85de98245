"""Which backend this test run is, and which backend runs the tests of one backend only.

Read from the environment, without importing Keras: `tests/conftest.py` uses it
in the pytest-xdist controller, which must not start Keras (see there).
"""

import os

# Keras takes its backend from KERAS_BACKEND (tests/conftest.py sets it before Keras starts).
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
# The backend that runs the `backend_independent` and `one_backend` tests (the Makefile's INDEPENDENT_BACKEND), or "all".
INDEPENDENT_BACKEND = os.environ.get("KERAS_MIXKD_INDEPENDENT_BACKEND", "tensorflow")


def runs_one_backend_tests():
    """Whether this run is the one backend that the `backend_independent` and `one_backend` tests run
    under (`KERAS_MIXKD_INDEPENDENT_BACKEND`): for a test whose parts differ in that."""
    return INDEPENDENT_BACKEND in ("all", BACKEND)
