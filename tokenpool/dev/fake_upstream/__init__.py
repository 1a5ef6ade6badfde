"""A fake upstream: a real HTTP server speaking the three upstream dialects the proxy uses.

``python -m tokenpool.dev.fake_upstream --port N`` runs it (:mod:`.server` documents the control
API and the Augment dialect; one module per other dialect).
"""

from .server import DEFAULTS, main, make_app

__all__ = ["DEFAULTS", "main", "make_app"]
