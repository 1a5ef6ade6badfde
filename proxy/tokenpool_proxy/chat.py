"""The chat path of both client APIs (``/v1/chat/completions``, ``/v1/messages``): pick a token,
call the upstream, relay, fail over. What differs between the APIs is a :class:`Dialect`: how
pieces of the answer are written as a stream, how a whole answer looks, how prompts are counted.

Retry rule: an upstream failure is retried on another token (at most ``max_attempts`` in all) as
long as nothing was sent to the client. A stream is committed at its first piece of the answer
(text, a tool call, or its end); after that, a failure ends the stream with an error event. Two
failures are never retried elsewhere: the upstream refusing *the request* (400/404/413/422: the
client's 4xx) and an account notice (the same prompt must not walk across the pool's accounts).
A notice is confirmed by a probe first (notice_check.py); if the probe does not confirm it, a
notice that was a whole 200 answer is relayed as the answer it was.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.responses import Response

from tokenpool.contract.compiled import UserRoute

from .balancer import Lease, NoCapacity, NoUpstream
from .errors import ApiError
from .messages_schema import MessagesRequest
from .openai_format import TextTally
from .providers.base import FinishReason, Piece, UpstreamFailure
from .responses import JSON, RelayStream
from .schemas import ChatRequest
from .services import Services
from .settings import ModelSpec


class StreamWriter(Protocol):
    def content(self, text: str) -> bytes: ...

    def other(self, piece: Piece) -> bytes:
        """Tool calls, or an upstream event of the client's own dialect (may be ``b""``)."""
        ...

    def end(self, finish: FinishReason, prompt: int, completion: int) -> bytes: ...

    def fail(self, message: str) -> bytes: ...


class Dialect(Protocol):
    def writer(self, request: Any) -> StreamWriter: ...

    def answer(
        self, request: Any, pieces: list[Piece], finish: FinishReason, prompt: int, completion: int
    ) -> dict[str, Any]: ...

    def prompt_tokens(self, request: Any) -> int: ...


@dataclass
class Attempts:
    """The state of one client request across upstream attempts."""

    svc: Services
    user: UserRoute
    request: ChatRequest | MessagesRequest
    model: ModelSpec
    request_id: str
    log: dict[str, Any]
    # The upstream request, prepared (validated, converted) before any token was leased.
    prepared: bytes = b""
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

    def abandoned(self, lease: Lease, started: float) -> None:
        """The client left (or the request was cancelled) during this attempt: it still counts."""
        name = lease.upstream.name
        self.svc.usage.record(self.user.user, name, "error", latency_s=time.perf_counter() - started)
        self.svc.metrics.attempt(name, "ClientClosed")
        lease.release()

    async def refused(self, lease: Lease, failure: UpstreamFailure, started: float) -> tuple[Piece, ...]:
        """A failure never tried on another token. A request the upstream rejects is the client's
        error. A notice is confirmed by a probe: confirmed, the verdict applies and the client
        gets 502; not confirmed, a whole-answer notice is returned to be relayed as the answer."""
        if failure.verdict == "reject":
            self.failed(lease, failure, started)
            status = failure.status or 400
            code = (
                "upstream_deadline_exceeded" if failure.reason == "DeadlineExceeded" else "upstream_rejected"
            )
            raise ApiError(status, f"the upstream refused the request (HTTP {status})", code)
        provider = self.svc.providers[self.model.provider]
        confirmed = await self.svc.notices.confirm(provider, lease.upstream, self.model)
        if confirmed is None and failure.pieces:
            return failure.pieces
        self.failed(lease, confirmed or UpstreamFailure("fail", failure.reason, failure.message), started)
        what = "an account notice" if confirmed is not None else "a notice about this request"
        raise ApiError(
            502,
            f"the upstream answered with {what} ({failure.reason}); it is not retried on another token",
            "upstream_notice",
        )

    def overdue(self, started: float) -> UpstreamFailure | None:
        """The overall deadline of an upstream call (checked per piece: no timer per request)."""
        if time.perf_counter() - started > self.svc.settings.upstream_deadline_seconds:
            return UpstreamFailure("reject", "DeadlineExceeded", "upstream deadline exceeded", 504)
        return None

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
            pieces = provider.stream(lease.upstream, self.request, self.model, self.request_id, self.prepared)
            head: list[Piece] = []
            try:
                async for piece in pieces:
                    head.append(piece)
                    if (late := self.overdue(started)) is not None:
                        raise late
                    if piece.commits:
                        break
                return lease, pieces, head, started
            except UpstreamFailure as failure:
                await _close(pieces)
                if failure.verdict in ("reject", "notice"):
                    answer = await self.refused(lease, failure, started)
                    return lease, _nothing(), list(answer), started
                self.failed(lease, failure, started)
            except BaseException:  # cancellation (the client left): not the token's fault
                self.abandoned(lease, started)
                await _close(pieces)
                raise
        raise self.exhausted()

    def succeeded(self, lease: Lease, started: float, counted: Counted) -> None:
        name = lease.upstream.name
        prompt, completion, credits = counted
        self.svc.health.success(name)
        latency = time.perf_counter() - started
        self.svc.usage.record(self.user.user, name, "success", prompt, completion, latency, credits=credits)
        self.svc.metrics.attempt(name, "Success")
        lease.release()


async def _nothing() -> AsyncIterator[Piece]:
    return
    yield  # an async generator that ends at once


async def _close(pieces: AsyncIterator[Piece]) -> None:
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        await aclose()


Counted = tuple[int, int, float]  # prompt tokens, completion tokens, credits


def _counts(a: Attempts, dialect: Dialect, text: TextTally, pieces: list[Piece]) -> Counted:
    """The upstream's own figures (its last report) where it gave them, else the estimates (no
    estimate of credits: 0 where the upstream did not price the answer)."""
    prompt = completion = None
    credits = 0.0
    for p in pieces:
        if p.prompt_tokens is not None:
            prompt = p.prompt_tokens
        if p.completion_tokens is not None:
            completion = p.completion_tokens
        if p.credits is not None:
            credits = p.credits
    if prompt is None:
        prompt = dialect.prompt_tokens(a.request)
    if completion is None:
        completion = text.tokens()
    return prompt, completion, credits


def _answer_text(piece: Piece, into: TextTally) -> None:
    """The words of a piece (text, tool calls' names and arguments), for the completion estimate."""
    if piece.text:
        into.add(piece.text)
    for call in piece.tool_calls:
        into.add(call.name or "")
        into.add(call.arguments)


async def complete(a: Attempts, dialect: Dialect) -> Response:
    """Non-streaming: the whole answer is gathered first, so any failure can fail over."""
    limit = a.svc.settings.max_answer_bytes
    while True:
        lease, pieces, head, started = await a.open()
        collected = list(head)
        size = sum(len(p.text) for p in collected)
        try:
            async for piece in pieces:
                collected.append(piece)
                if (late := a.overdue(started)) is not None:
                    raise late
                size += len(piece.text) + sum(len(c.arguments) for c in piece.tool_calls)
                if size > limit:  # gathered whole before answering: bounded, never without end
                    a.failed(lease, UpstreamFailure("fail", "AnswerTooLarge", "answer too large"), started)
                    raise ApiError(
                        502, f"the answer is larger than {limit} characters; stream it", "answer_too_large"
                    )
        except UpstreamFailure as failure:
            if failure.verdict == "reject":  # e.g. the deadline: not retried elsewhere
                await a.refused(lease, failure, started)
            a.failed(lease, failure, started)
            continue
        except ApiError:
            raise
        except BaseException:
            a.abandoned(lease, started)
            raise
        finally:
            await _close(pieces)
        text = TextTally()
        for p in collected:
            _answer_text(p, text)
        finish: FinishReason = next((p.finish_reason for p in reversed(collected) if p.finish_reason), "stop")
        counted = _counts(a, dialect, text, collected)
        a.succeeded(lease, started, counted)
        return JSON(dialect.answer(a.request, collected, finish, counted[0], counted[1]))


async def stream(a: Attempts, dialect: Dialect) -> Response:
    """Streaming: committed once the first piece arrived; later failures end the stream."""
    lease, pieces, head, started = await a.open()
    writer = dialect.writer(a.request)
    text = TextTally()  # the answer's token estimate; the answer itself is not kept
    counted: list[Piece] = []  # pieces carrying the upstream's token counts or credits
    outcome: dict[str, Any] = {"ok": False, "closed": False, "counts": None, "failed": False}
    finish: list[FinishReason] = []

    deadline = started + a.svc.settings.upstream_deadline_seconds
    clock = time.perf_counter

    def event(piece: Piece) -> bytes:
        """What the client gets for one piece (``b""``: nothing)."""
        if clock() > deadline and (late := a.overdue(started)) is not None:
            raise late
        if not (piece.prompt_tokens is None and piece.completion_tokens is None and piece.credits is None):
            counted.append(piece)
        if piece.finish_reason:
            finish.append(piece.finish_reason)
        if piece.event is None and not piece.tool_calls:
            if piece.text:
                text.add(piece.text)
                return writer.content(piece.text)
            return b""
        _answer_text(piece, text)
        return writer.other(piece)

    async def relay() -> AsyncGenerator[bytes, None]:
        try:
            # The pieces read while choosing the token, then the rest straight from the upstream
            # (no generator in between: one fewer per relayed chunk).
            for piece in head:
                if out := event(piece):
                    yield out
            if not (head and head[-1].finish_reason):
                async for piece in pieces:
                    if out := event(piece):
                        yield out
        except UpstreamFailure as failure:
            outcome["failed"] = True
            a.failed(lease, failure, started)
            a.log["error"] = f"stream failed: {failure.reason}"
            yield writer.fail(f"the upstream stream failed ({failure.reason})")
            return
        outcome["ok"] = True
        outcome["counts"] = counts = _counts(a, dialect, text, counted)
        if out := writer.end(finish[-1] if finish else "stop", counts[0], counts[1]):
            yield out

    async def close() -> None:
        """Runs once the response is over, however it ended (done, failed, client gone)."""
        if outcome["closed"]:
            return
        outcome["closed"] = True
        await _close(pieces)
        if outcome["ok"]:
            a.succeeded(lease, started, outcome["counts"])
        elif not outcome["failed"]:
            if not a.log.get("error"):
                a.log["error"] = "client disconnected"
            a.abandoned(lease, started)  # counted: an attempt the client walked away from
        a.svc.usage.release(a.user)

    return RelayStream(
        relay(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}, on_close=close
    )
