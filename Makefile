# Two entry points (see README): `make demo` runs the quickstart sweep, `make test` runs the tests
# (all of them: what CI runs); `make test-fast` runs the quick subset for the edit-test loop.
# Each sets up .venv first if needed. On a machine without an NVIDIA GPU the CPU build of PyTorch
# is installed before the project, so pip does not pull a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_CPU ?= torch==2.13.0

.PHONY: setup demo test test-fast bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	command -v nvidia-smi >/dev/null 2>&1 || $(PY) -m pip install -q "$(TORCH_CPU)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	RAY_USAGE_STATS_ENABLED=0 $(PY) -m sweeper run search_spaces/quickstart.yaml

test: setup
	RAY_USAGE_STATS_ENABLED=0 $(PY) -m pytest -q

# The unit tests without what starts processes or draws hundreds of inputs: no integration or slow
# marks, no test_*cli*.py (the real command line in a subprocess), no test_fuzz*.py (hypothesis).
test-fast: setup
	RAY_USAGE_STATS_ENABLED=0 $(PY) -m pytest -q -m "not integration and not slow" \
		--ignore-glob='*/test_*cli*.py' --ignore-glob='*/test_fuzz*.py'

bench: setup
	$(PY) benchmarks/bench_data.py
	$(PY) -m trm_core bench train --preset sudoku4_tiny

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
