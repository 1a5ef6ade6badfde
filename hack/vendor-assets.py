#!/usr/bin/env python3
"""Fetch the console's vendored browser assets from the npm registry and check them.

The console serves these files itself (no CDN at run time, no Node at install time); they are
committed under console/tokenpool_console/static/vendor/. This script is how they got there and
how to update them: `npm pack` (the registry's ordinary client) downloads the pinned package and
verifies the registry's integrity hash; the script then checks that hash against the one pinned
here, extracts the one file the console needs and checks its sha256. `--check` only verifies the
committed files (a unit test does the same).

    python hack/vendor-assets.py          # fetch (needs npm) and write the files
    python hack/vendor-assets.py --check  # verify the committed files, offline
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "console" / "tokenpool_console" / "static" / "vendor"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    integrity: str  # the registry's sha512 of the package tarball
    member: str  # file inside the tarball
    target: str  # file name under static/vendor/
    sha256: str  # of the extracted file
    license_member: str = "package/LICENSE"


ASSETS = (
    Asset(
        package="htmx.org",
        version="2.0.11",
        integrity="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA==",
        member="package/dist/htmx.min.js",
        target="htmx.min.js",
        sha256="d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
    ),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check() -> list[str]:
    """Problems with the committed files (empty when all match their pins)."""
    problems = []
    for asset in ASSETS:
        path = VENDOR / asset.target
        if not path.is_file():
            problems.append(f"{path.relative_to(ROOT)} is missing")
        elif sha256(path) != asset.sha256:
            problems.append(f"{path.relative_to(ROOT)} does not match its pinned sha256")
    return problems


def fetch(asset: Asset, workdir: Path) -> None:
    spec = f"{asset.package}@{asset.version}"
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    packed = json.loads(out.stdout)[0]
    if packed["integrity"] != asset.integrity:
        raise SystemExit(f"{spec}: registry integrity {packed['integrity']} differs from the pinned one")
    with tarfile.open(workdir / packed["filename"]) as tar:
        for member, target in (
            (asset.member, asset.target),
            (asset.license_member, f"{asset.target}.LICENSE"),
        ):
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"{spec}: {member} is not a file in the package")
            with source, (VENDOR / target).open("wb") as dest:
                shutil.copyfileobj(source, dest)
    if sha256(VENDOR / asset.target) != asset.sha256:
        raise SystemExit(f"{spec}: {asset.member} does not match the pinned sha256")
    print(f"vendored {spec} -> {(VENDOR / asset.target).relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only verify the committed files")
    args = parser.parse_args()
    if not args.check:
        VENDOR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for asset in ASSETS:
                fetch(asset, Path(tmp))
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
