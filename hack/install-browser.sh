#!/usr/bin/env bash
# The browser the console's browser tests drive: Debian's headless-capable Chromium and the
# matching ChromeDriver (packages chromium and chromium-driver; Selenium from the `test` extra
# talks to it), and a small CJK font so the Chinese pages render in screenshots. Playwright's
# own browser download is not used: Debian's build is what a fresh machine can install.
# Idempotent: does nothing when all three are there. Needs root (or sudo) for apt-get.
set -euo pipefail
PACKAGES=(chromium chromium-driver fonts-wqy-microhei)
if dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "[browser] installing ${PACKAGES[*]} (apt-get)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
chromium --version >&2
