"""Probes: small upstream calls that carry no user text, to learn how an account is doing.

The operator's scheduled checks of unhealthy tokens use :func:`probe` (docs/operator.md,
"Health checks"). Every kind is an async function ``(session, route, user_agent) -> Signal |
None`` (None: the account answered normally) registered in :data:`PROBES`; ``validity`` is the
cheap one: Augment's ``find-missing`` with an empty body, an OpenAI-compatible ``GET models``.
Other kinds are added the same way and chosen by name; the account's standing (plan, expiry,
credits), which answers a document rather than a verdict, is :mod:`tokenpool.upstream.standing`.

A notice in a probe's answer is the account's own (no user wrote the request): it is turned into
the verdict it stands for.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable

import aiohttp

from tokenpool.contract.compiled import UpstreamRoute

from .signals import Signal, classify_http, notice_verdict

ProbeKind = Callable[[aiohttp.ClientSession, UpstreamRoute, str], Awaitable[Signal | None]]
_SESSION_NS = uuid.UUID("3f0b1a53-3c5e-4d43-9a53-6b0e9e3f1c11")


def _judge(status: int, body: str, retry_after: str | None) -> Signal | None:
    if status == 200:
        return None
    signal = classify_http(status, body, retry_after)
    if signal.verdict == "notice":
        return Signal(notice_verdict(signal.reason), signal.reason, status)
    return signal


def augment_headers(route: UpstreamRoute, user_agent: str) -> dict[str, str]:
    """The headers of a probe of an Augment account (as the IDE extension sends them)."""
    return {
        "Authorization": f"Bearer {route.token}",
        "User-Agent": user_agent,
        "Content-Type": "application/json",
        "x-api-version": "2",
        "x-request-id": str(uuid.UUID(bytes=os.urandom(16), version=4)),
        "x-request-session-id": str(uuid.uuid5(_SESSION_NS, route.name)),
    }


async def validity(session: aiohttp.ClientSession, route: UpstreamRoute, user_agent: str) -> Signal | None:
    headers = {"Authorization": f"Bearer {route.token}", "User-Agent": user_agent}
    if route.provider == "Augment":
        headers = augment_headers(route, user_agent)
        call = session.post(route.endpoint + "find-missing", data=b"{}", headers=headers)
    else:
        call = session.get(route.endpoint.rstrip("/") + "/models", headers=headers)
    async with call as resp:
        body = (await resp.content.read(4096)).decode("utf-8", "replace") if resp.status != 200 else ""
        return _judge(resp.status, body, resp.headers.get("Retry-After"))


PROBES: dict[str, ProbeKind] = {"validity": validity}


async def probe(
    session: aiohttp.ClientSession, route: UpstreamRoute, user_agent: str, kind: str = "validity"
) -> Signal | None:
    """Run one probe; transport trouble is a transient signal, never an exception."""
    try:
        return await PROBES[kind](session, route, user_agent)
    except aiohttp.ServerTimeoutError:
        return Signal("cooldown", "Timeout")
    except TimeoutError:
        return Signal("cooldown", "Timeout")
    except aiohttp.ClientError:
        return Signal("cooldown", "ConnectError")
