# The README's two commands are `make demo` and `make test`; both install the stack first (idempotent).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-all clean-venv
install:
	@bash tools/install.sh

demo: install
	@$(PY) tools/demo.py

# Default test run (< 10 min here). `make test-all` adds the slow end-to-end tests.
test: install
	@$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

test-all: install
	@$(PY) -m pytest -q $(PYTEST_ARGS) tests

clean-venv:
	rm -rf .venv
