"""Where tests leave what a person may want to look at afterwards (screenshots, tables):
``$TOKENPOOL_ARTIFACTS`` or ``.artifacts/`` in the checkout (not committed)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def artifact_dir(*parts: str) -> Path:
    path = Path(os.environ.get("TOKENPOOL_ARTIFACTS") or REPO / ".artifacts").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
