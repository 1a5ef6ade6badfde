"""What every upstream provider offers the chat path, and how failures are described.

A provider turns one validated chat request into an async stream of :class:`Piece` from one
upstream token, and reports trouble as :class:`UpstreamFailure` carrying the pool action
(docs/augment-protocol.md, "Errors and what the pool does").
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp

from tokenpool.contract.compiled import UpstreamRoute
from tokenpool.upstream.signals import Signal, Verdict, parse_retry_after

from ..messages_schema import MessagesRequest
from ..schemas import ChatRequest
from ..settings import ModelSpec

__all__ = [
    "ChatProvider",
    "Piece",
    "ToolCall",
    "UpstreamFailure",
    "Verdict",
    "parse_retry_after",
    "split_lines",
    "transport_failures",
]
# OpenAI's finish reasons plus the two Anthropic ones that have no OpenAI twin; each client
# dialect maps them onto its own words (openai_format.py, anthropic_format.py).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "stop_sequence", "pause_turn"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call, or a piece of one: the first piece of call ``index`` carries its ``id`` and
    ``name``, later pieces (OpenAI-compatible upstreams stream the arguments) only more
    ``arguments`` text. Augment sends each call whole."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class UpstreamEvent:
    """One server-sent event of an upstream that speaks the client's own dialect (Anthropic
    pass-through), relayed as it came: ``raw`` is the event's bytes, ``data`` its parsed JSON."""

    name: str
    data: dict[str, Any]
    raw: bytes


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x on the hot path
class Piece:
    """A piece of an answer; never changed once made."""

    text: str = ""
    finish_reason: FinishReason | None = None
    # Token counts when the upstream reports them (OpenAI-compatible upstreams); else estimated.
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    event: UpstreamEvent | None = None
    # Other answer content (a thinking block): sending it commits the stream like text does.
    content: bool = False
    # What the upstream says the answer cost, in its own unit, where it says (``usage.cost``).
    credits: float | None = None

    @property
    def commits(self) -> bool:
        """Does relaying this piece send part of the answer (after which there is no failover)?"""
        return bool(self.text or self.tool_calls or self.finish_reason or self.content)


class UpstreamFailure(Exception):
    """An upstream attempt failed; ``verdict`` says what the pool does with the token."""

    def __init__(
        self,
        verdict: Verdict,
        reason: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        pieces: tuple[Piece, ...] = (),
    ) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.reason = reason  # CamelCase, e.g. Unauthorized, RateLimited (as status.health reasons)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        # A notice inside a 200 answer: the whole answer, relayed as such if no probe confirms it.
        self.pieces = pieces

    @classmethod
    def of(cls, signal: Signal, message: str, retry_after: float | None = None) -> UpstreamFailure:
        return cls(signal.verdict, signal.reason, message, signal.status, retry_after or signal.retry_after)


class ChatProvider(Protocol):
    """``request`` is the client's request as validated by its route: an OpenAI chat request or
    an Anthropic Messages request. A provider converts it (Augment) or forwards it (the
    pass-through providers, each only behind the route of its own dialect)."""

    def prepare(self, request: ChatRequest | MessagesRequest, model: ModelSpec) -> bytes:
        """The upstream request body, validated and converted before any token is leased
        (raises :class:`~tokenpool_proxy.schemas.BadRequest`)."""
        ...

    def stream(
        self,
        upstream: UpstreamRoute,
        request: ChatRequest | MessagesRequest,
        model: ModelSpec,
        request_id: str,
        body: bytes,
    ) -> AsyncIterator[Piece]: ...


# The longest line of an answer the proxy reads (as much as aiohttp's ``readline`` allowed: twice
# its 256 KiB read buffer). A longer one breaks the stream (MalformedAnswer) and bounds its memory.
MAX_LINE_BYTES = 2**19


class LineTooLong(ValueError):
    """A line of the answer longer than :data:`MAX_LINE_BYTES`."""


def split_lines(data: bytes, tail: bytes) -> tuple[list[bytes], bytes]:
    """The lines (without their ``\n``) in what arrived from the upstream, after the unfinished
    line ``tail`` before it; returns them and the new unfinished line. ``data=b""`` (the end of
    the body): the unfinished line is the last line.

    Providers read what arrived (``readany``) and split it here rather than calling ``readline``
    per line: one read and one task wake-up per arrival however many lines it holds, and no
    search-and-copy loop per line in aiohttp's reader (relay CPU per chunk, bench/README.md
    "Open streams").
    """
    if not data:
        return ([tail] if tail else []), b""
    if tail:
        data = tail + data
    lines = data.split(b"\n")
    tail = lines.pop()
    if len(data) > MAX_LINE_BYTES and max(len(line) for line in (*lines, tail)) > MAX_LINE_BYTES:
        raise LineTooLong(f"a line longer than {MAX_LINE_BYTES} bytes")
    return lines, tail


@contextlib.contextmanager
def transport_failures() -> Iterator[None]:
    """aiohttp's transport errors as the pool's cool-down failures: the same for every provider."""
    try:
        yield
    except TimeoutError:  # no byte for read_timeout_seconds, or no connection
        raise UpstreamFailure("cooldown", "Timeout", "upstream timed out") from None
    except ValueError:  # LineTooLong: a line longer than any answer line should be
        raise UpstreamFailure("cooldown", "MalformedAnswer", "upstream sent an oversized line") from None
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamFailure("cooldown", "ConnectError", f"upstream stream broke: {exc}") from None
    except aiohttp.ClientConnectionError as exc:
        raise UpstreamFailure("cooldown", "ConnectError", f"upstream connection failed: {exc}") from None
