"""The operator's health checks of unhealthy UpstreamTokens (docs/operator.md, "Health checks").

Why the operator runs them: it is one replica (the chart's Deployment is ``Recreate``), so "at
most one probe per token per interval" holds by construction, also across restarts (the schedule
lives in ``status.check.nextAt``); it already reads every credential (the compiled route Secrets
are in its cache); and proxy replicas stay on the request path only.

Decisions are pure (:mod:`tokenpool_operator.check_plan`); this module keeps the schedule in
memory, runs due checks with bounded concurrency, and writes the result. Clearing a verdict is a
merge patch with the object's ``resourceVersion`` as precondition, and only when no failure newer
than the probe's start was written meanwhile: a check never erases fresher evidence.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from tokenpool.contract import compiled as c
from tokenpool.contract.status_fields import Check, Health, parse_rfc3339, rfc3339
from tokenpool.kube.client import MERGE_PATCH, KubeClient, KubeError, cr_path
from tokenpool.upstream.probe import probe
from tokenpool_operator import check_plan as plan
from tokenpool_operator.token_schedule import Body, Key, TokenSchedule

log = logging.getLogger(__name__)


def _jitter() -> float:
    return random.random()  # noqa: S311 - spreading checks in time, not cryptography


def _docs(body: Body) -> tuple[Health | None, Check]:
    status = body.get("status") or {}
    try:
        health = Health.model_validate(status["health"]) if status.get("health") else None
    except ValidationError:
        health = None
    try:
        check = Check.model_validate(status.get("check") or {})
    except ValidationError:
        check = Check()
    return health, check


class HealthChecker(TokenSchedule):
    what = "health check"

    def __init__(
        self,
        kube: KubeClient,
        writer: Any,
        tokens: dict[Key, Body],
        policy: plan.CheckPolicy,
        concurrency: int = 4,
        timeout_s: float = 15.0,
        user_agent: str = "tokenpool-operator",
        tick_s: float = 0.5,
    ) -> None:
        super().__init__(kube, writer, tokens, concurrency, timeout_s, user_agent, tick_s, policy.base_s)
        self.policy = policy
        self._requests: dict[Key, str] = {}
        self._publish: set[Key] = set()
        self.checks = 0

    # -- schedule (from every watch event of an UpstreamToken) ---------------------------------
    def observe(self, body: Body, now: datetime | None = None) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        now = now or datetime.now(UTC)
        health, check = _docs(body)
        request = plan.requested(meta.get("annotations"), check)
        if request is not None:
            self._requests[key] = request
        else:
            self._requests.pop(key, None)
        if key in self._running:
            return
        due = plan.next_due(health, check, bool(spec.get("suspended")), self.policy, now, _jitter())
        if due is None:
            self._due.pop(key, None)
            if check.next_at is not None:
                self._publish.add(key)  # nothing scheduled any more: clear what kubectl shows
            return
        planned = check.next_at and parse_rfc3339(check.next_at)
        if key not in self._due or (planned and planned != self._due[key]):
            self._due[key] = planned or due
        if check.next_at != rfc3339(self._due[key]):
            self._publish.add(key)

    def forget(self, ns: str, name: str) -> None:
        for table in (self._due, self._requests):
            table.pop((ns, name), None)
        self._publish.discard((ns, name))

    def next_at(self, key: Key) -> datetime | None:
        return self._due.get(key)

    # -- the runs ---------------------------------------------------------------------------
    async def before_tick(self) -> None:
        for key in list(self._publish):
            self._publish.discard(key)
            await self._write_schedule(key)

    def due_now(self, now: datetime) -> list[Key]:
        due = super().due_now(now)
        return due + [k for k in self._requests if k not in due]

    async def run_one(self, session: aiohttp.ClientSession, key: Key) -> None:
        ns, name = key
        request = self._requests.pop(key, None)
        route = self.route(ns, name)
        started = datetime.now(UTC)
        if route is None:
            result = "NoCredential"  # nothing compiled to check (credential problem, see Ready)
        else:
            self.checks += 1
            signal = await probe(session, route, self.user_agent)
            result = "Healthy" if signal is None else signal.reason
        log.info("health check of %s/%s: %s", ns, name, result)
        await self._record(key, result, started, request)

    async def _record(self, key: Key, result: str, started: datetime, request: str | None) -> None:
        ns, name = key
        path = cr_path(ns, c.PLURAL_UPSTREAM, name, "status")
        for _ in range(5):
            body = await self.kube.get(cr_path(ns, c.PLURAL_UPSTREAM, name))
            if body is None:
                self._due.pop(key, None)
                return
            health, check = _docs(body)
            unhealthy = health is not None and health.state == "Unhealthy"
            failed_at = health.last_error_at if health is not None else None
            fresher = failed_at is not None and parse_rfc3339(failed_at) > started
            now = datetime.now(UTC)
            clears = result == "Healthy" and unhealthy and not fresher
            still_unhealthy = unhealthy and not clears
            new_check = plan.after_check(check, result, now, self.policy, request, _jitter(), still_unhealthy)
            status: Body = {"check": new_check.model_dump(by_alias=True, mode="json")}
            if clears and health is not None:
                status["health"] = plan.cleared(health, now).model_dump(by_alias=True, mode="json")
            patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, "status": status}
            try:
                await self.kube.request("PATCH", path, patch, MERGE_PATCH)
            except KubeError as exc:
                if exc.status == 409:
                    continue  # written meanwhile (a proxy flush): decide again on what is there now
                raise
            if new_check.next_at:
                self._due[key] = parse_rfc3339(new_check.next_at)
            else:
                self._due.pop(key, None)
            if clears:
                await self.writer.event(
                    body, "Normal", "Recovered", "a health check passed; the token is back in traffic"
                )
            elif request is not None and result != "Healthy":
                await self.writer.event(
                    body, "Warning", "CheckFailed", f"the requested health check failed: {result}"
                )
            return

    async def _write_schedule(self, key: Key) -> None:
        ns, name = key
        at = self._due.get(key)
        patch = {"status": {"check": {"nextAt": rfc3339(at) if at is not None else None}}}
        try:
            await self.kube.merge_patch(cr_path(ns, c.PLURAL_UPSTREAM, name, "status"), patch)
        except KubeError as exc:
            log.warning("could not write the next check of %s/%s: %s", ns, name, exc.reason)
