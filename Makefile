# The two set-up commands of the README. Both install what they need by themselves.
.PHONY: dev test lint bench bootstrap browser

bootstrap:
	@bash hack/bootstrap.sh

# `tokenpool dev` builds the control-plane binaries itself when missing (progress bar + estimate).
# Options: make dev DEV_ARGS="--use-current-context --port 9090"
dev:
	@TOKENPOOL_SKIP_BINARIES=1 bash hack/bootstrap.sh
	.venv/bin/tokenpool dev $(DEV_ARGS)

# The console's browser tests drive Debian's headless Chromium (installed once, by apt-get).
browser:
	@bash hack/install-browser.sh

test: bootstrap browser
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

lint: bootstrap
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

# Benchmarks print figures and ratios against a baseline of the same run (bench/README.md).
# About 50 minutes on 2 cores, most of it the three at scale (10,000 users, thousands of streams).
bench: bootstrap
	bash hack/install-bench-tools.sh
	.venv/bin/python -m bench.bench_proxy
	.venv/bin/python -m bench.usage_writes
	.venv/bin/python -m bench.bench_operator --users 10000 --tokens 1000
	.venv/bin/python -m bench.bench_status_scale
	.venv/bin/python -m bench.bench_streams
