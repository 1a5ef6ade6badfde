"""Root conftest: loads every fixture module ``tests/support/*_fixtures.py``.

Each area of the code base (control plane, operator, proxy, ...) keeps its fixtures in its own
module there, so adding fixtures never means editing this file.
"""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.support.{p.stem}" for p in (Path(__file__).parent / "support").glob("*_fixtures.py")
)
