# The two commands of the README: `make demo` and `make test`. Each sets itself up first.
.PHONY: setup demo test test-slow test-all bench

PYTEST = .venv/bin/python -m pytest

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/nocodetune --workspace ./ModelTrainingWorkspace demo

test:
	bash scripts/setup.sh --browser
	$(PYTEST) -m "not slow"

test-slow:
	bash scripts/setup.sh
	$(PYTEST) -m slow

test-all: test test-slow

bench: setup
	.venv/bin/python bench/train_throughput.py
	.venv/bin/python bench/serve_throughput.py
