"""``POST /v1/chat/completions``: pick a token, call the upstream, relay, fail over.

Retry rule: an upstream failure is retried on another token (at most ``max_attempts`` in all) as
long as nothing was sent to the client. A stream is committed at its first piece of text (or its
end), so an account problem announced at the start of a 200 stream ("Request blocked") still
fails over; after that, a failure ends the stream with an error event and ``[DONE]``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from tokenpool.contract.compiled import UserRoute

from . import openai_format as fmt
from .balancer import Lease, NoCapacity, NoUpstream
from .errors import ApiError
from .providers.base import Piece, UpstreamFailure
from .responses import JSON, RelayStream
from .schemas import ChatRequest
from .services import Services
from .settings import ModelSpec


@dataclass
class Attempts:
    """The state of one client request across upstream attempts."""

    svc: Services
    user: UserRoute
    request: ChatRequest
    model: ModelSpec
    request_id: str
    log: dict[str, Any]
    tried: set[str] = field(default_factory=set)
    count: int = 0
    last_failure: UpstreamFailure | None = None

    def failed(self, lease: Lease, failure: UpstreamFailure, started: float) -> None:
        name = lease.upstream.name
        health = self.svc.health
        if failure.verdict == "unhealthy":
            health.unhealthy(name, failure.reason)
        elif failure.verdict == "cooldown":
            health.cooldown(name, failure.reason, failure.retry_after)
        self.last_failure = failure
        self.svc.usage.record(self.user.user, name, "error", latency_s=time.perf_counter() - started)
        self.svc.metrics.attempt(name, failure.reason)
        lease.release()

    def exhausted(self) -> ApiError:
        reason = self.last_failure.reason if self.last_failure else "Unavailable"
        return ApiError(502, f"the upstream failed ({reason}) on every token tried", "upstream_error")

    async def open(self) -> tuple[Lease, AsyncIterator[Piece], list[Piece], float]:
        """Acquire a token and read up to the first text (or the end), failing over as needed."""
        settings = self.svc.settings
        provider = self.svc.providers[self.model.provider]
        while self.count < settings.max_attempts:
            try:
                lease = await self.svc.balancer.acquire(
                    self.user, self.model.provider, self.tried, settings.slot_wait_seconds
                )
            except NoUpstream as exc:
                if self.last_failure is not None:
                    raise self.exhausted() from None
                if not exc.allocated:
                    raise ApiError(
                        403, "no upstream token for this model is allocated to you", "no_allocated_tokens"
                    ) from None
                raise ApiError(
                    503,
                    "all your upstream tokens are resting; retry later",
                    "upstreams_unavailable",
                    retry_after=exc.retry_after,
                ) from None
            except NoCapacity as exc:
                raise ApiError(
                    429,
                    "all your upstream tokens are busy; retry later",
                    "rate_limit_exceeded",
                    retry_after=exc.retry_after,
                ) from None
            self.count += 1
            self.tried.add(lease.upstream.name)
            self.log["upstream"] = lease.upstream.name
            self.log["retries"] = self.count - 1
            started = time.perf_counter()
            pieces = provider.stream(lease.upstream, self.request, self.model, self.request_id)
            head: list[Piece] = []
            try:
                async for piece in pieces:
                    head.append(piece)
                    if piece.text or piece.finish_reason:
                        break
                return lease, pieces, head, started
            except UpstreamFailure as failure:
                self.failed(lease, failure, started)
                await _close(pieces)
            except BaseException:  # BadRequest from the conversion, cancellation: not the token's fault
                lease.release()
                await _close(pieces)
                raise
        raise self.exhausted()

    def succeeded(self, lease: Lease, started: float, prompt: int, completion: int) -> None:
        name = lease.upstream.name
        self.svc.health.success(name)
        self.svc.usage.record(
            self.user.user, name, "success", prompt, completion, time.perf_counter() - started
        )
        self.svc.metrics.attempt(name, "Success")
        lease.release()


async def _close(pieces: AsyncIterator[Piece]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        await aclose()


def _counts(a: Attempts, text_parts: list[str], pieces: list[Piece]) -> tuple[int, int]:
    prompt = next((p.prompt_tokens for p in pieces if p.prompt_tokens is not None), None)
    completion = next((p.completion_tokens for p in pieces if p.completion_tokens is not None), None)
    if prompt is None:
        prompt = fmt.estimate_prompt_tokens(a.request.messages)
    if completion is None:
        completion = fmt.estimate_tokens("".join(text_parts))
    return prompt, completion


async def complete(a: Attempts) -> Response:
    """Non-streaming: the whole answer is gathered first, so any failure can fail over."""
    while True:
        lease, pieces, head, started = await a.open()
        collected = list(head)
        try:
            async for piece in pieces:
                collected.append(piece)
        except UpstreamFailure as failure:
            a.failed(lease, failure, started)
            continue
        except BaseException:
            lease.release()
            raise
        finally:
            await _close(pieces)
        text = [p.text for p in collected if p.text]
        finish = next((p.finish_reason for p in reversed(collected) if p.finish_reason), "stop")
        prompt, completion = _counts(a, text, collected)
        a.succeeded(lease, started, prompt, completion)
        body = fmt.completion(fmt.completion_id(), a.request.model, "".join(text), finish, prompt, completion)
        return JSON(body)


async def stream(a: Attempts) -> Response:
    """Streaming: committed once the first piece arrived; later failures end the stream."""
    lease, pieces, head, started = await a.open()
    writer = fmt.ChunkWriter(fmt.completion_id(), a.request.model)
    text: list[str] = []
    counted: list[Piece] = []  # pieces carrying upstream token counts
    outcome: dict[str, bool] = {"ok": False, "closed": False}

    async def relay() -> AsyncGenerator[bytes, None]:
        finish: str | None = None
        try:
            async for piece in _chain(head, pieces):
                if piece.prompt_tokens is not None or piece.completion_tokens is not None:
                    counted.append(piece)
                if piece.text:
                    text.append(piece.text)
                    yield writer.content(piece.text)
                if piece.finish_reason:
                    finish = piece.finish_reason
        except UpstreamFailure as failure:
            a.failed(lease, failure, started)
            a.log["error"] = f"stream failed: {failure.reason}"
            yield writer.error(f"the upstream stream failed ({failure.reason})")
            yield writer.DONE
            return
        outcome["ok"] = True
        yield writer.finish(finish or "stop")
        if a.request.include_usage:
            yield writer.usage(*_counts(a, text, counted))
        yield writer.DONE

    async def close() -> None:
        """Runs once the response is over, however it ended (done, failed, client gone)."""
        if outcome["closed"]:
            return
        outcome["closed"] = True
        await _close(pieces)
        if outcome["ok"]:
            a.succeeded(lease, started, *_counts(a, text, counted))
        else:
            if not a.log.get("error"):
                a.log["error"] = "client disconnected"
            lease.release()
        a.svc.usage.release(a.user)

    return RelayStream(
        relay(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}, on_close=close
    )


async def _chain(head: list[Piece], rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    for piece in head:
        yield piece
    if head and head[-1].finish_reason:
        return
    async for piece in rest:
        yield piece
