# The two ways to start (see README.md): `make demo` and `make test`.
# Each creates .venv when missing and installs the project (with its declared
# dependencies) into it; the install is redone only when the packaging files change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.vidcls-installed

# Test processes: run one after another, the suite keeps about one of two cores busy
# (TensorFlow start-up, subprocesses, file work), so two workers (pytest-xdist, whole
# files each) finish it in ~15 instead of ~27 minutes on a 2-core machine.
TEST_WORKERS ?= 2

.PHONY: demo test lint install clean

demo: $(STAMP)
	$(BIN)/vidcls demo --work-dir demo_output

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# ruff: pyflakes, pycodestyle, bugbear, pyupgrade and import order (pyproject.toml [tool.ruff]).
lint: $(STAMP)
	$(BIN)/ruff check vidcls tests benchmarks tools train_dual_gpu.py

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf demo_output .pytest_cache .ruff_cache build dist *.egg-info
