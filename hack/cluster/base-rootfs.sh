#!/usr/bin/env bash
# The base image for building tokenpool's image on a machine without a registry: a Debian
# bookworm root filesystem with Python 3.11 (python3, python3-venv, ca-certificates) made by
# debootstrap from the host's Debian mirror, packed as a tarball for `docker import`.
# Cached under $TOKENPOOL_CACHE/images/ (default ~/.cache/tokenpool), keyed by this recipe;
# made once (~1 minute). Elsewhere the Dockerfile's default, the official Python image pinned
# by digest, is the base instead. Prints the tarball's path on the last line of stdout.
set -euo pipefail

SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates
MIRROR="${TOKENPOOL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CACHE="${TOKENPOOL_CACHE:-$HOME/.cache/tokenpool}"
KEY="$(printf '%s\n' "$SUITE" "$PACKAGES" "$MIRROR" "$(sed -n '/^set -euo/,$p' "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-12)"
OUT="$CACHE/images/base-$SUITE-python3.11-$KEY.tar"

log() { echo "[base-rootfs] $*" >&2; }

if [[ -s "$OUT" ]]; then
  echo "$OUT"
  exit 0
fi
command -v debootstrap >/dev/null || { log "ERROR: debootstrap missing (hack/cluster/host-packages.sh installs it)"; exit 1; }
mkdir -p "$CACHE/images"
work="$(mktemp -d "$CACHE/images/.rootfs-XXXXXX")"
trap 'rm -rf "$work"' EXIT
t=$SECONDS
log "debootstrap $SUITE (minbase + $PACKAGES) from $MIRROR (about a minute) ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$MIRROR" \
  | awk '/^I: (Retrieving|Validating|Extracting|Installing|Configuring)/ {n++; if (n % 40 == 0) {print "[base-rootfs]   " n " steps"}} /^(E|W):/ {print}' >&2
# What an image does not need: package caches and lists, documentation, locales.
rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/* \
  "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/locale/* \
  "$work/rootfs"/var/log/*.log "$work/rootfs"/var/cache/debconf/*-old
chroot "$work/rootfs" python3 -c 'import ssl, sys, venv; print("[base-rootfs]   Python", sys.version.split()[0])' >&2
tar -C "$work/rootfs" --numeric-owner -cf "$OUT.partial" .
mv "$OUT.partial" "$OUT"
find "$CACHE/images" -maxdepth 1 -name "base-*.tar" ! -path "$OUT" -delete  # older recipes
log "base root filesystem ready in $((SECONDS - t))s: $(du -h "$OUT" | cut -f1) -> $OUT"
echo "$OUT"
