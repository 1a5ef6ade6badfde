"""The reconcilers: read indexes, call the pure functions, write only what changed.

Work items are ``("user", ns, name)`` — a PoolUser with all its TokenAllocations (the quota is per
user, so they are decided together) — and ``("token", ns, name)`` — an UpstreamToken with its
credential, health and allocation count. Each is idempotent and level-based: it recomputes
everything from the current state, so create, update, resume and the resync share it.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any, cast

from tokenpool.contract import compiled as c
from tokenpool.kube.client import KubeClient, KubeError, core_path
from tokenpool_operator import allocations as alloc_mod
from tokenpool_operator import route_guard, token_events, upstreams, users
from tokenpool_operator.account_metrics import AccountGauges
from tokenpool_operator.cache import Cache
from tokenpool_operator.check_plan import CheckPolicy
from tokenpool_operator.checker import HealthChecker
from tokenpool_operator.conditions import Cond, find, merge, now_rfc3339, ready
from tokenpool_operator.reconcile_metrics import OperatorMetrics
from tokenpool_operator.settings import OperatorSettings
from tokenpool_operator.standing_checker import StandingChecker
from tokenpool_operator.state import State
from tokenpool_operator.views import allocation_view, token_view
from tokenpool_operator.workqueue import WorkQueue
from tokenpool_operator.writer import Writer

log = logging.getLogger(__name__)
PRIORITY = {"token": 0, "user": 1, "count": 2, "reject": 3}
Body = dict[str, Any]


class Reconciler:
    def __init__(self, settings: OperatorSettings, kube: KubeClient, state: State, cache: Cache) -> None:
        self.settings = settings
        self.metrics = OperatorMetrics()
        self.writer = Writer(kube, self.metrics)
        self.kube = kube
        self.state = state
        self.cache = cache
        # Tokens first: users' decisions depend on the tokens' eligibility and counts.
        self.queue = WorkQueue(
            self._dispatch,
            settings.workers,
            priority=lambda key: PRIORITY[key[0]],  # type: ignore[index]
            metrics=self.metrics,
            kind=lambda key: key[0],  # type: ignore[index]
        )
        self.checker = HealthChecker(
            kube,
            self.writer,
            cache.tokens,
            CheckPolicy(settings.check_base_seconds, settings.check_max_seconds),
            settings.check_concurrency,
            settings.check_timeout_seconds,
            settings.check_user_agent,
        )
        self.standing = StandingChecker(
            kube,
            self.writer,
            cache.tokens,
            settings.standing_interval_seconds,
            settings.standing_first_delay_seconds,
            settings.standing_concurrency,
            settings.check_timeout_seconds,
            settings.check_user_agent,
        )
        self.margins = upstreams.RenewalMargins(settings.renewal_margin_days, settings.renewal_margin_credits)
        self.metrics.registry.register(AccountGauges(cache.tokens))

    async def _dispatch(self, key: Hashable) -> None:
        kind, ns, name = cast(tuple[str, str, str], key)
        if kind == "user":
            await self.sync_user(ns, name)
        elif kind == "reject":
            await route_guard.reject(self.kube, self.writer, self.cache, ns, name)
        elif kind == "count":
            await self.sync_count(ns, name)
        else:
            await self.sync_token(ns, name)

    def user(self, ns: str, name: str) -> None:
        self.queue.add(("user", ns, name))

    def token(self, ns: str, name: str) -> None:
        self.queue.add(("token", ns, name))

    def count(self, ns: str, name: str) -> None:
        self.queue.add(("count", ns, name))

    # ---- events from the watch (and listings) -------------------------------------------------

    def observed(self, kind: str, body: Body) -> None:
        """An object as the API has it now: cache it, and enqueue what it affects if it changed."""
        self.cache.put(kind, body)
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        if kind == "user":
            fingerprint: Any = (meta.get("generation"), users.rotation_request(meta))
        elif kind == "allocation":
            self.state.book.seed((ns, name), (body.get("status") or {}).get("tokens") or ())
            fingerprint = meta.get("generation")
        else:
            self.state.put_token(ns, token_view(body, self.state.eligible.get((ns, name))))
            self.checker.observe(body)
            self.standing.observe(body)
            status = body.get("status") or {}
            fingerprint = (
                meta.get("generation"),
                dict(meta.get("labels") or {}),
                repr(status.get("health")),
                repr(status.get("account")),
            )
        if self.state.changed(kind, ns, name, fingerprint):
            if kind == "token":
                self.token(ns, name)
            else:
                self.user(ns, name if kind == "user" else (body.get("spec") or {}).get("user", ""))

    def deleted(self, kind: str, ns: str, name: str) -> None:
        self.state.forget(kind, ns, name)
        if kind == "user":
            self.cache.drop_user(ns, name)
            self.writer.drop_status(c.PLURAL_USER, ns, name)
            self.user(ns, name)  # its allocations now report UserNotFound; its route goes
        elif kind == "allocation":
            old = self.cache.drop_allocation(ns, name)
            self.writer.drop_status(c.PLURAL_ALLOCATION, ns, name)
            for token in self.state.book.release((ns, name)) if (ns, name) in self.state.book else ():
                self.count(ns, token)
                self.token_users(ns, token)  # freed capacity
            if old is not None:
                self.user(ns, old["spec"].get("user", ""))
        else:
            self.cache.drop_token(ns, name)
            self.state.drop_token(ns, name)
            self.checker.forget(ns, name)
            self.standing.forget(ns, name)
            self.writer.drop_status(c.PLURAL_UPSTREAM, ns, name)
            self.token(ns, name)  # deletes its route
            self.token_users(ns, name)

    # ---- users and their allocations -------------------------------------------------------

    async def sync_user(self, ns: str, name: str) -> None:
        body = self.cache.users.get((ns, name))
        allocs = self.cache.user_allocations(ns, name)
        grants = self._decide(ns, name, body, allocs)
        for a in allocs:
            await self._allocation_status(a, grants[a["metadata"]["name"]])
        if body is None:  # deleted: its route goes at once (the garbage collector may be slower)
            await self.writer.delete("secrets", ns, c.user_route_name(name))
            for other in self.state.claim_token(ns, name, None):
                self.user(ns, other)
            return
        await self._user(body, allocs, grants)

    def _decide(
        self, ns: str, user: str, body: Body | None, allocs: list[Body]
    ) -> dict[str, alloc_mod.Grant]:
        """Decide grants and record them in the book, synchronously (no await): two decisions
        never interleave, so capacity and least-allocated counts are always current."""
        book = self.state.book
        views = [allocation_view(a) for a in allocs]
        own = [(ns, v.name) for v in views]
        quota = None
        if body is not None:
            quota, _ = users.effective_quota(
                body.get("spec") or {}, self.settings.default_quota, self.settings.max_quota
            )
        before = {v.name: book.held((ns, v.name)) for v in views}
        grants = alloc_mod.resolve_user(
            views,
            quota,
            self.state.tokens.get(ns, {}),
            lambda token: book.count((ns, token), excluding=own),
            before,
            self.state.candidates(ns),
        )
        released = False
        for v in views:
            granted = grants[v.name].tokens
            book.assign((ns, v.name), granted)
            reason = grants[v.name].conditions[0].reason
            book.mark_short(
                (ns, v.name), reason in ("InsufficientTokens", "TokenNotFound", "TokenUnavailable")
            )
            for token in set(before[v.name]) ^ set(granted):
                self.count(ns, token)  # its allocation count changed
            released = released or bool(set(before[v.name]) - set(granted))
        if released:  # freed capacity: allocations still waiting may now get it
            for _, other in book.short(ns):
                owner = self.cache.allocation_user(ns, other)
                if owner is not None and owner != user:
                    self.user(ns, owner)
        return grants

    async def _allocation_status(self, body: Body, grant: alloc_mod.Grant) -> None:
        old = (body.get("status") or {}).get("conditions")
        gen = body["metadata"].get("generation") or 0
        status = {
            "observedGeneration": gen,
            "conditions": merge(old, list(grant.conditions), gen, now_rfc3339()),
            "tokens": list(grant.tokens),
        }
        if await self.writer.patch_status(c.PLURAL_ALLOCATION, body, status):
            was = find(old, "WithinQuota")
            if grant.conditions[1].reason == "QuotaExceeded" and (was or {}).get("reason") != "QuotaExceeded":
                await self.writer.event(body, "Warning", "QuotaExceeded", grant.conditions[0].message)

    async def _user(self, body: Body, allocs: list[Body], grants: dict[str, alloc_mod.Grant]) -> None:
        meta, spec = body["metadata"], body.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        quota, quota_cond = users.effective_quota(spec, self.settings.default_quota, self.settings.max_quota)
        plan, secret_name = await self._personal_token(body)
        token_cond = Cond("PersonalTokenReady", plan.ok, plan.reason, plan.message)
        digest = c.hash_personal_token(plan.token) if plan.token is not None else None
        sharing = self.state.claim_token(ns, name, digest)
        for other in sharing:
            self.user(ns, other)  # they are refused (or free again) too
        if digest is not None and self.state.token_users(ns, digest) - {name}:
            others = sorted(self.state.token_users(ns, digest) - {name})
            token_cond = Cond(
                "PersonalTokenReady",
                False,
                "PersonalTokenConflict",
                f"PoolUser {others[0]!r} has the same personal token; each user needs their own, "
                "both are refused until one changes",
            )
        upstream_list = alloc_mod.route_upstreams([allocation_view(a) for a in allocs], grants)
        if plan.token is not None and token_cond.ok:
            route = users.compile_route(body, plan.token, quota, upstream_list)
            data = {c.USER_ROUTE_KEY: c.dump(route)}
            await self.writer.ensure_compiled("secrets", body, c.user_route_name(name), c.ROUTE_USER, data)
        else:  # fail closed: without a valid, unshared token nobody may authenticate as this user
            await self.writer.delete("secrets", ns, c.user_route_name(name))
        # Routes were ConfigMaps before they moved to Secrets: an upgraded operator removes them.
        await self.writer.delete("configmaps", ns, c.user_route_name(name))
        gen = meta.get("generation") or 0
        conds = [token_cond, quota_cond]
        summary = ready([token_cond], "route compiled")
        status = {
            "observedGeneration": gen,
            "conditions": merge(
                (body.get("status") or {}).get("conditions"), [summary, *conds], gen, now_rfc3339()
            ),
            "personalTokenSecretName": secret_name,
            # What the console's login by personal token looks up (a sha256, never the token):
            # status is the operator's, so a hand-made object cannot claim a user.
            "personalTokenSha256": digest if plan.token is not None and token_cond.ok else "",
            "allocatedTokens": len(upstream_list),
        }
        await self.writer.patch_status(c.PLURAL_USER, body, status)
        if not quota_cond.ok and self.state.changed("quota-warning", ns, name, spec.get("tokenQuota")):
            await self.writer.event(body, "Warning", "QuotaAboveMaximum", quota_cond.message)

    async def _personal_token(self, body: Body) -> tuple[users.TokenPlan, str]:
        meta, spec = body["metadata"], body.get("spec") or {}
        ns = meta["namespace"]
        ref = spec.get("personalTokenSecretRef")
        if ref:
            secret = await self.kube.get(core_path(ns, "secrets", ref["name"]))
            return users.plan_byo(ref, secret), ref["name"]
        secret_name = c.personal_token_secret_name(meta["name"])
        secret = await self.writer.lookup("secrets", ns, secret_name)
        rotate = users.rotation_request(meta)
        plan = users.plan_generated(secret, rotate)
        if plan.action in ("generate", "rotate") and plan.token is not None:
            try:
                await self.writer.write_personal_token(body, plan.token, rotate, secret)
            except KubeError as exc:
                if exc.status == 409:  # someone else wrote it first: derive from what is there
                    secret = await self.kube.get(core_path(ns, "secrets", secret_name))
                    return users.plan_generated(secret, rotate), secret_name
                raise
            verb = "generated" if plan.action == "generate" else "rotated"
            await self.writer.event(
                body, "Normal", plan.reason, f"personal token {verb}; stored in Secret {secret_name!r}"
            )
            log.info("personal token %s for %s/%s", verb, ns, meta["name"])
        return plan, secret_name

    # ---- upstream tokens -------------------------------------------------------------------

    async def sync_token(self, ns: str, name: str) -> None:
        body = self.cache.tokens.get((ns, name))
        if body is None:  # deleted: its route goes at once (the garbage collector may be slower)
            await self.writer.delete("secrets", ns, c.upstream_route_name(name))
            return
        spec = body.get("spec") or {}
        ref = spec.get("credentialSecretRef") or {}
        secret = await self.kube.get(core_path(ns, "secrets", ref.get("name", "")))
        credential = upstreams.resolve_credential(ref, secret)
        result = upstreams.reconcile_upstream(body, credential, self.margins)
        if result.route is not None:
            data = {c.UPSTREAM_ROUTE_KEY: c.dump(result.route)}
            await self.writer.ensure_compiled(
                "secrets", body, c.upstream_route_name(name), c.ROUTE_UPSTREAM, data
            )
        else:
            await self.writer.delete("secrets", ns, c.upstream_route_name(name))
        gen = body["metadata"].get("generation") or 0
        old = (body.get("status") or {}).get("conditions")
        status = {
            "observedGeneration": gen,
            "conditions": merge(old, result.conditions, gen, now_rfc3339()),
            "allocations": self.state.book.count((ns, name)),
        }
        if await self.writer.patch_status(c.PLURAL_UPSTREAM, body, status):
            await token_events.post(self.writer, body, old, result.conditions)
        self.state.eligible[(ns, name)] = result.eligible
        view = token_view(body, result.eligible)
        self.state.put_token(ns, view)
        if self.state.announced.get((ns, name)) != view:
            self.state.announced[(ns, name)] = view
            self.token_users(ns, name)

    async def sync_count(self, ns: str, name: str) -> None:
        """Only ``status.allocations``: grants move far more often than tokens change."""
        body = self.cache.tokens.get((ns, name))
        if body is not None:
            await self.writer.patch_status(
                c.PLURAL_UPSTREAM, body, {"allocations": self.state.book.count((ns, name))}
            )

    def token_users(self, ns: str, token: str) -> None:
        """Enqueue every user a token's change may affect: holders, explicit namers, and users
        whose allocations still wait for tokens."""
        keys = set(self.state.book.holders((ns, token))) | set(self.state.book.short(ns))
        users_ = set(self.cache.namers.get((ns, token), ()))
        for _, alloc_name in keys:
            owner = self.cache.allocation_user(ns, alloc_name)
            if owner is not None:
                users_.add(owner)
        for u in users_:
            self.user(ns, u)

    # ---- route objects the operator did not write (route_guard.py) ----------------------------

    def route_object(self, plural: str, type_: str | None, body: Body) -> None:
        """A Secret or ConfigMap labelled ``tokenpool.io/route`` changed: the operator's own is kept
        current as any owned object; anything else is queued for deletion."""
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        owner = route_guard.owner_of(plural, body, self.cache)
        if type_ == "DELETED":
            self.writer.forget(plural, ns, name)
            if owner is not None:
                (self.user if owner[0] == c.KIND_USER else self.token)(ns, owner[1])
        elif owner is None:
            if not meta.get("deletionTimestamp"):
                self.queue.add(("reject", ns, f"{plural}/{name}"))
        elif self.writer.remember(plural, body):
            (self.user if owner[0] == c.KIND_USER else self.token)(ns, owner[1])
