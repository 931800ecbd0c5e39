# The README's two commands are `make demo` and `make test`; both install the stack first (idempotent).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-demo test-all clean-venv
install:
	@bash tools/install.sh

# The toy chain: scenes -> ASL and MAE pretraining -> probes, detection, segmentation, linear probing and
# fine-tuning from ASL, MAE and random initialisation -> results table (work_dirs/pipeline/toy). A rerun reuses
# finished stages.
demo: install
	@$(PY) tools/run_pipeline.py $(DEMO_ARGS)

# Default test run (< 10 min here): the linter (ruff, pyproject.toml), then the tests. `make test-all` adds the
# slow end-to-end tests.
test: install
	@$(PY) -m ruff check .
	@$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

# The slow tests other than the demo (.ci/run runs them): the real ViT-B / ViT-L configs on full-size scenes, the
# torchrun and SLURM-style launches, the stop-signal tests with several processes, the own-data chain
test-slow: install
	@$(PY) -m pytest -q -m slow --ignore tests/test_demo.py $(PYTEST_ARGS) tests

# `make demo` from a fresh clone of this repository, its table checked (slow; .ci/run runs it after `make test`)
test-demo: install
	@$(PY) -m pytest -q -s -m slow $(PYTEST_ARGS) tests/test_demo.py

test-all: install
	@$(PY) -m pytest -q $(PYTEST_ARGS) tests

clean-venv:
	rm -rf .venv
