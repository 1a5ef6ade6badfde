"""The operator's readings of Augment accounts' standing (docs/operator.md, "Account standing").

Every Augment UpstreamToken with a compiled credential (and not suspended) has its standing read
on a schedule kept in ``status.account.nextCheckAt`` (so a restart keeps it): every
``STANDING_INTERVAL_SECONDS`` while usable, at the subscription's end when that comes first, five
minutes after a first refusal, daily (or at the next billing point) once retired. A new value of the
``tokenpool.io/check-now`` annotation (``tokenpool tokens check``) reads it at once. A token never
read is read within ``STANDING_FIRST_DELAY_SECONDS`` of being seen, spread at random so that a
pool of new accounts is not read in one burst. At most ``STANDING_CONCURRENCY`` readings run at
once.

A reading writes ``status.account`` (a merge patch of that field only: the proxy's ``usage`` and
``health`` are untouched); the conditions, their Events and the routing follow in the token's
reconcile (:mod:`tokenpool_operator.upstreams`). Why the operator: the same reasons as its health
checks (:mod:`tokenpool_operator.checker`).
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from pydantic import ValidationError

from tokenpool.contract import compiled as c
from tokenpool.contract.account_status import AccountStatus, next_check
from tokenpool.contract.status_fields import parse_rfc3339, rfc3339
from tokenpool.kube.client import KubeClient, KubeError, cr_path
from tokenpool.upstream.probe import augment_headers
from tokenpool.upstream.standing import read_standing
from tokenpool_operator.token_schedule import Body, Key, TokenSchedule

log = logging.getLogger(__name__)


def account_of(body: Body) -> AccountStatus | None:
    raw = (body.get("status") or {}).get("account")
    if not raw:
        return None
    try:
        return AccountStatus.model_validate(raw)
    except ValidationError:
        return None


def _when(value: str | None) -> datetime | None:
    try:
        return parse_rfc3339(value) if value else None
    except ValueError:
        return None


class StandingChecker(TokenSchedule):
    what = "account standing reading"

    def __init__(
        self,
        kube: KubeClient,
        writer: Any,
        tokens: dict[Key, Body],
        interval_s: float,
        first_delay_s: float,
        concurrency: int = 2,
        timeout_s: float = 15.0,
        user_agent: str = "tokenpool-operator",
        tick_s: float = 0.5,
    ) -> None:
        super().__init__(
            kube, writer, tokens, concurrency, timeout_s, user_agent, tick_s, min(interval_s, 300.0)
        )
        self.interval = timedelta(seconds=interval_s)
        self.first_delay_s = first_delay_s
        self._requests: dict[Key, str] = {}
        self.readings = 0

    def observe(self, body: Body, now: datetime | None = None) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        if spec.get("provider", "Augment") != "Augment" or spec.get("suspended"):
            self._due.pop(key, None)
            return
        if key in self._running:
            return
        account = account_of(body)
        planned = _when(account.next_check_at) if account is not None else None
        request = (meta.get("annotations") or {}).get(c.ANNOTATION_CHECK_NOW)
        if request and request != (account.request if account is not None else None):
            self._requests[key] = request  # "check now" reads the standing too
            self._due[key] = now or datetime.now(UTC)
        elif planned is not None:
            self._due[key] = planned
        elif key not in self._due:
            now = now or datetime.now(UTC)
            spread = random.random() * self.first_delay_s  # noqa: S311 - spreading, not secrets
            self._due[key] = now + timedelta(seconds=spread)

    def forget(self, ns: str, name: str) -> None:
        self._due.pop((ns, name), None)
        self._requests.pop((ns, name), None)

    async def run_one(self, session: aiohttp.ClientSession, key: Key) -> None:
        ns, name = key
        body = self.tokens.get(key)
        route = self.route(ns, name)
        if body is None or route is None:
            self._due.pop(key, None)  # deleted, or no credential compiled: seen again when it is
            return
        self.readings += 1
        reading = await read_standing(session, route.endpoint, augment_headers(route, self.user_agent))
        previous = account_of(body)
        account = reading.account.merged_over(previous)
        refusals = (previous.refusals if previous else 0) + 1 if reading.refused_status else 0
        request = self._requests.pop(key, None) or (previous.request if previous else None)
        now = datetime.now(UTC)
        account = account.model_copy(update={"refusals": refusals, "request": request})
        next_at = next_check(account, now, self.interval)
        account = account.model_copy(update={"next_check_at": rfc3339(next_at)})
        patch = {"status": {"account": account.model_dump(by_alias=True, mode="json", exclude_none=True)}}
        try:
            await self.kube.merge_patch(cr_path(ns, c.PLURAL_UPSTREAM, name, "status"), patch)
        except KubeError as exc:
            if exc.status == 404:
                self._due.pop(key, None)
                return
            raise
        log.info("account standing of %s/%s: %s", ns, name, _summary(account))
        self._due[key] = next_at


def _summary(account: AccountStatus) -> str:
    """For the log: the standing in words, never a credential (there is none in it)."""
    parts = [f"plan={account.plan}", f"expires={account.expires_at}"]
    parts.append(f"credits={account.credits_remaining}/{account.credits_total}")
    if account.unknown:
        parts.append(f"unknown={','.join(account.unknown)}")
    if account.refusals:
        parts.append(f"refusals={account.refusals}")
    return " ".join(parts)
