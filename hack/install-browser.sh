#!/usr/bin/env bash
# The browser the console's browser tests drive: Debian's headless-capable Chromium and the
# matching ChromeDriver (packages chromium and chromium-driver; Selenium from the `test` extra
# talks to it). Playwright's own browser download is not used: Debian's build is what a fresh
# machine can install. Idempotent: does nothing when both are there. Needs root (or sudo).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "[browser] installing chromium and chromium-driver (apt-get)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver fonts-noto-cjk >/dev/null
chromium --version >&2
