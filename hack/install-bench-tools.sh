#!/usr/bin/env bash
# Tools the benchmarks need besides the Python environment: `wrk` (a native HTTP load generator:
# a Python load loop cannot saturate the proxy, see shared performance notes) from Debian, and
# py-spy (sampling profiler, a binary wheel on PyPI) into the project's virtualenv.
# Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

if ! command -v wrk >/dev/null 2>&1; then
  echo "[bench-tools] installing wrk (apt-get)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
if [[ ! -x "$ROOT/.venv/bin/py-spy" ]]; then
  echo "[bench-tools] installing py-spy into .venv" >&2
  "$ROOT/.venv/bin/python" -m pip install --quiet --disable-pip-version-check "py-spy==0.4.3"
fi
command -v wrk
