# The two commands of the README: `make demo` and `make test`. Each sets itself up first.
.PHONY: setup demo test test-extras test-slow test-all bench

PYTEST = .venv/bin/python -m pytest

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/nocodetune --workspace ./ModelTrainingWorkspace demo

# The default suite: everything but the slow end-to-end tests on the real default model
# (browser tests included; two-process training runs in a private network namespace).
test:
	bash scripts/setup.sh --browser
	$(PYTEST) -m "not slow"

# Optional extras: the registry on a real PostgreSQL, the llama.cpp serving backend, and
# torch.distributed + Ray inside a private network namespace (root; docs/scale-out.md).
test-extras:
	bash scripts/setup.sh --extras
	$(PYTEST) --postgres -m "not slow and not browser" tests/jobs/test_registry.py tests/jobs/test_service.py tests/api tests/security/test_postgres.py
	$(PYTEST) -m "not slow" tests/serving/test_llamacpp.py tests/serving/test_generation_fields.py tests/serving/test_fields.py tests/serving/test_embeddings.py tests/export/test_exports.py
	.venv/bin/python tests/netns.py -m "ray or distributed" --ignore tests/distributed/test_local.py

# End-to-end tests on the embedded default model (SmolLM2-135M-Instruct).
test-slow:
	bash scripts/setup.sh
	$(PYTEST) -m slow

test-all: test test-extras test-slow

bench: setup
	.venv/bin/python bench/train_throughput.py
	.venv/bin/python bench/serve_throughput.py
