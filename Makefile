# keras-mixkd: `make demo` runs the main job, `make test` runs the suite under every backend.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch is installed first, from an exact CPU build, so the `torch` extra never pulls a CUDA build.
# Elsewhere, override: `make test TORCH_SPEC="torch==2.5.1 --index-url ..."`.
TORCH_SPEC ?= torch==2.13.0
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

STAMP := $(VENV)/.installed

.PHONY: demo test install bench gpu-wheels clean

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

# One process per backend: Keras fixes its backend at import. Backend-independent tests
# (configs, reports, analysis, progress) run under the first backend only.
test: $(STAMP)
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		KERAS_BACKEND=$$backend KERAS_MIXKD_INDEPENDENT_BACKEND=$(firstword $(BACKENDS)) \
			$(PY) -m pytest -q $(PYTEST_ARGS) || failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED under:$$failed"; exit 1; fi; \
	echo "All backends passed: $(BACKENDS)"

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
	rm -rf $(VENV) build *.egg-info
