# The two set-up commands of the README. Both install what they need by themselves.
.PHONY: dev test lint bench bootstrap

bootstrap:
	@bash hack/bootstrap.sh

dev: bootstrap
	.venv/bin/tokenpool dev

test: bootstrap
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench: bootstrap
	.venv/bin/python -m bench.run_all
