"""Confirming an account notice before it becomes a verdict (docs/proxy.md, "Health").

A notice ("Request blocked…", "Your account has been suspended…") may be the upstream speaking
about the account, or the model repeating what a user asked it to say. Before any verdict the
proxy sends the same token a probe that carries no user text: a fixed one-line chat request.
If the probe gets a notice (or a 401) too, the account is what the notice says and the verdict
follows from the probe's answer; if the probe is answered normally, the notice was about that
one request and nothing changes for anyone else.

Bounded: one probe per token in flight (concurrent suspicions share it), and after a probe that
cleared a token, notices on it are taken as answers for ``ttl_s`` without probing again, so a
user repeating the trick costs at most one probe per token per ``ttl_s`` per replica.
"""

from __future__ import annotations

import asyncio
import time

from tokenpool.contract.compiled import UpstreamRoute
from tokenpool.upstream.signals import notice_verdict

from .providers.base import ChatProvider, UpstreamFailure
from .schemas import ChatMessage, ChatRequest
from .settings import ModelSpec

PROBE_PROMPT = "Reply with the single word OK."


class NoticeChecker:
    def __init__(
        self, ttl_s: float = 60.0, timeout_s: float = 15.0, blocked_cooldown_s: float = 600.0
    ) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.blocked_cooldown_s = blocked_cooldown_s
        self._cleared: dict[tuple[str, str], float] = {}  # (token name, credential) → monotonic time
        self._inflight: dict[tuple[str, str], asyncio.Future[UpstreamFailure | None]] = {}
        self.probes = 0  # probes sent (tests and metrics read it)

    async def confirm(
        self, provider: ChatProvider, upstream: UpstreamRoute, model: ModelSpec
    ) -> UpstreamFailure | None:
        """The failure the account really has (a verdict to apply), or None: not confirmed."""
        key = (upstream.name, upstream.token)
        now = time.monotonic()
        cleared = self._cleared.get(key)
        if cleared is not None and now - cleared < self.ttl_s:
            return None
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._probe(provider, upstream, model))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(pending)

    async def _probe(
        self, provider: ChatProvider, upstream: UpstreamRoute, model: ModelSpec
    ) -> UpstreamFailure | None:
        self.probes += 1
        request = ChatRequest(model=model.id, messages=[ChatMessage(role="user", content=PROBE_PROMPT)])
        body = provider.prepare(request, model)
        try:
            async with asyncio.timeout(self.timeout_s):
                async for _ in provider.stream(upstream, request, model, "notice-check", body):
                    pass
        except UpstreamFailure as failure:
            if failure.verdict == "notice":  # the account itself answers with the notice
                verdict = notice_verdict(failure.reason)
                seconds = self.blocked_cooldown_s if verdict == "cooldown" else None
                return UpstreamFailure(
                    verdict, failure.reason, "confirmed by a probe", failure.status, seconds
                )
            if failure.verdict in ("unhealthy", "cooldown"):
                return failure  # the upstream's own signal about the account
            return None
        except TimeoutError:
            return UpstreamFailure("cooldown", "Timeout", "the confirmation probe timed out")
        self._remember_cleared((upstream.name, upstream.token))
        return None

    def _remember_cleared(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        for old in [k for k, at in self._cleared.items() if now - at >= self.ttl_s]:
            del self._cleared[old]  # bounded by the tokens probed within one ttl
        self._cleared[key] = now
