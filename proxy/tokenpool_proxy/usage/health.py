"""What the balancer learns about upstream tokens, shared through ``UpstreamToken.status.health``.

The balancer reports failures (an error *category*, never an upstream body: bodies can echo
credentials) and successes; this book turns them into a :class:`~tokenpool.status.Health`
document per token, marks it dirty when it changed, and the flusher writes dirty ones (at most
once per interval). In the other direction the flusher feeds every token's ``status.health`` read
from the API server into :meth:`HealthBook.observe`, so a replica stops using a token another
replica found broken within one flush interval, and an admin who clears ``status.health`` clears
it everywhere.

``Unhealthy`` is sticky: a replica never writes a token back to healthy by itself (no traffic
reaches an unhealthy token, so there is nothing to learn); an admin or the operator's re-check
clears it. Cool-downs expire by time: a reader treats ``CoolingDown`` with ``cooldownUntil`` in the
past as healthy.
"""

from __future__ import annotations

from datetime import datetime

from tokenpool.status import UNHEALTHY_CATEGORIES, Health, parse_rfc3339, rfc3339


class HealthBook:
    def __init__(self) -> None:
        self.docs: dict[str, Health] = {}
        self.dirty: set[str] = set()

    def _set(self, name: str, doc: Health) -> None:
        if self.docs.get(name, Health()) != doc:
            self.dirty.add(name)
        self.docs[name] = doc

    def report_failure(
        self, name: str, category: str, at: datetime, cooldown_until: datetime | None = None
    ) -> Health:
        """One failed attempt on ``name``; ``category`` from tokenpool.status ERROR_CATEGORIES."""
        old = self.docs.get(name, Health())
        failures = old.consecutive_failures + 1
        if category in UNHEALTHY_CATEGORIES or old.state == "Unhealthy":
            state, reason, until = "Unhealthy", old.reason if old.state == "Unhealthy" else category, None
        elif cooldown_until is not None and cooldown_until > at:
            state, reason, until = "CoolingDown", category, rfc3339(cooldown_until)
        else:
            state, reason, until = old.state, old.reason, old.cooldown_until
        doc = Health(
            state=state,
            reason=reason,
            last_error=category,
            last_error_at=rfc3339(at),
            cooldown_until=until,
            consecutive_failures=failures,
        )
        self._set(name, doc)
        return doc

    def report_success(self, name: str) -> None:
        old = self.docs.get(name)
        if old is None or old.state == "Unhealthy":
            return
        if old.consecutive_failures or old.state != "Healthy":
            self._set(name, Health(last_error=old.last_error, last_error_at=old.last_error_at))

    def observe(self, name: str, status_health: Health | None) -> None:
        """Adopt what the API server holds, unless this replica has news not yet written."""
        if name not in self.dirty:
            self.docs[name] = status_health or Health()

    def forget(self, name: str) -> None:
        self.docs.pop(name, None)
        self.dirty.discard(name)

    def available(self, name: str, now: datetime) -> bool:
        """May the balancer send traffic to ``name`` as far as shared health knows?"""
        doc = self.docs.get(name)
        if doc is None or doc.state == "Healthy":
            return True
        if doc.state == "Unhealthy":
            return False
        return doc.cooldown_until is None or parse_rfc3339(doc.cooldown_until) <= now

    def take(self) -> dict[str, Health]:
        taken = {name: self.docs[name] for name in self.dirty if name in self.docs}
        self.dirty = set()
        return taken

    def give_back(self, name: str, doc: Health) -> None:
        """The write failed: keep the news dirty unless a newer report replaced it meanwhile."""
        if name not in self.dirty:
            self.docs.setdefault(name, doc)
            self.dirty.add(name)


def merge_health(current: Health | None, local: Health) -> Health:
    """What a replica writes over ``current`` (read just before): its own news, except that it
    never downgrades a token another replica marked ``Unhealthy`` to cooling down."""
    if current is not None and current.state == "Unhealthy" and local.state != "Unhealthy":
        return local.model_copy(
            update={
                "state": "Unhealthy",
                "reason": current.reason,
                "cooldown_until": None,
                "consecutive_failures": max(current.consecutive_failures, local.consecutive_failures),
            }
        )
    return local
