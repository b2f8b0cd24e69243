# The two commands a new user needs (see README):
#   make main   set up, then run the main job on embedded defaults (no network, no GPU)
#   make test   set up, then run lint and the test suite
#   make test-slow   the slow tier (Ray fault tests, the [edge] install; a few minutes)
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup main test test-slow

setup: $(VENV)/.installed

# pip takes torch from the machine's wheel cache when one exists (docs/design.md)
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,test]'
	touch $@

main: setup
	$(BIN)/audiodistill quickstart --config configs/quickstart.yaml

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow
