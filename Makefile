# keras-mixkd: `make demo` runs the main job, `make test` runs the suite under every backend.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch is installed first, from an exact CPU build, so the `torch` extra never pulls a CUDA build.
# Elsewhere, override: `make test TORCH_SPEC="torch==2.5.1 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
# pytest-xdist workers per backend: the tests are small and mostly single-threaded, so two workers keep
# both cores of a 2-core machine busy. Tests sharing one costly resource (a Ray cluster) carry
# `pytest.mark.xdist_group` and run in one worker. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 2

STAMP := $(VENV)/.installed

.PHONY: demo test test-keras-next install bench gpu-wheels clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test,all]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-mixkd study

# One pytest per backend, each in its own process: Keras fixes its backend at import. Backend-independent
# tests (configs, reports, analysis, progress) run under INDEPENDENT_BACKEND only (below). TEST_BACKEND_JOBS
# backends run at once (-k: all of them, whatever fails; with more than one, each backend's output is
# printed whole when it ends). Default 1: on a 2-core machine two at a time gained nothing (TensorFlow
# and JAX together 806-834 s against 355 + 445 s one after the other); on more cores, raise it.
TEST_BACKEND_JOBS ?= 1
test: $(STAMP)
	@echo "Testing under $(BACKENDS), $(TEST_BACKEND_JOBS) at a time."
	@$(MAKE) --no-print-directory -k -j$(TEST_BACKEND_JOBS) --output-sync=target \
		$(addprefix test-backend-,$(BACKENDS)) \
		&& echo "All backends passed: $(BACKENDS)" \
		|| { echo "FAILED: the backends make names above (test-backend-NAME)"; exit 1; }

# The backend-independent and one-backend tests run under PyTorch when it is tested (the one-backend
# tests cost least there: benchmarks/bench_study.py's smoke test 8.5 s against 32.5 s under TensorFlow),
# else under the first of BACKENDS. Set INDEPENDENT_BACKEND to choose, or to `all`.
INDEPENDENT_BACKEND ?= $(if $(filter torch,$(BACKENDS)),torch,$(firstword $(BACKENDS)))
test-backend-%: $(STAMP)
	@echo "=== KERAS_BACKEND=$* ==="
	@KERAS_BACKEND=$* KERAS_MIXKD_INDEPENDENT_BACKEND=$(INDEPENDENT_BACKEND) \
		$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The suite on the next Keras, before raising pyproject.toml's upper bound on keras (docs/ARCHITECTURE.md):
# a venv of its own, built like `make install`, with keras-nightly in place of keras. Not part of `make test`.
# keras and keras-nightly install the same `keras` package: both are removed first (uninstalling keras
# after the nightly would delete the nightly's files), then the nightly goes in on its own.
VENV_NEXT ?= .venv-next
KERAS_NEXT_SPEC ?= keras-nightly
NEXT_STAMP := $(VENV_NEXT)/.keras-next

$(NEXT_STAMP): pyproject.toml
	$(MAKE) install VENV=$(VENV_NEXT)
	$(VENV_NEXT)/bin/python -m pip uninstall --quiet -y keras keras-nightly
	$(VENV_NEXT)/bin/python -m pip install --quiet --pre $(KERAS_NEXT_SPEC)
	$(VENV_NEXT)/bin/python -c "import keras; print('keras', keras.__version__, 'in', '$(VENV_NEXT)')"
	touch $@

test-keras-next: $(NEXT_STAMP)
	$(MAKE) test VENV=$(VENV_NEXT)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# Wheels that benchmarks/gpu_check.sh installs on a GPU node without Keras or network.
# optree is compiled: set GPU_PYTHON_VERSION to the node's Python (e.g. 3.12) when it differs from this one.
GPU_PYTHON_VERSION ?=
gpu-wheels: $(STAMP)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: -d benchmarks/gpu_wheels \
		$(if $(GPU_PYTHON_VERSION),--python-version $(GPU_PYTHON_VERSION)) \
		"keras==$$($(PY) -c 'import keras; print(keras.__version__)')" namex optree absl-py

clean:
	rm -rf $(VENV) $(VENV_NEXT) build *.egg-info
