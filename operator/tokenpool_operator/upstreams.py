"""Pure reconcile of an UpstreamToken: credential → compiled route, health → ``Healthy``, the
account's standing → ``AccountActive`` and ``RenewalDue``.

The proxy owns ``status.health``; this module only reads it. ``Healthy`` is False for a token the
proxy marked ``Unhealthy`` (sticky until an admin or a re-check clears ``status.health``) and for a
suspended token. A cool-down stays ``Healthy=True`` with reason ``CoolingDown``: it is transient
and expires on the proxy's own clock, so compiling it as unhealthy would keep a token out of
traffic after its cool-down ended.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tokenpool.contract import compiled as c
from tokenpool.contract.account_status import AccountStatus, renewal_due, retirement
from tokenpool_operator.conditions import Cond, ready

PROVIDERS: tuple[c.Provider, ...] = ("Augment", "OpenAI", "Anthropic")
# Printable ASCII without whitespace: what an HTTP bearer credential may contain.
_CREDENTIAL = re.compile(r"^[\x21-\x7e]{8,4096}$")


@dataclass(frozen=True)
class Credential:
    token: str | None
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.token is not None


def resolve_credential(ref: dict[str, Any], secret: dict[str, Any] | None) -> Credential:
    """The upstream token from the referenced Secret (``secret`` as read from the API, data
    base64-encoded), or why it cannot be used. Messages name the Secret and key, never the value."""
    name, key = ref.get("name", ""), ref.get("key") or c.DEFAULT_CREDENTIAL_KEY
    if secret is None:
        return Credential(None, "CredentialSecretNotFound", f"Secret {name!r} does not exist")
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        string_data = (secret.get("stringData") or {}).get(key)
        if string_data is None:
            return Credential(None, "CredentialKeyNotFound", f"Secret {name!r} has no key {key!r}")
        value = str(string_data)
    else:
        try:
            value = base64.b64decode(raw, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return Credential(
                None, "CredentialMalformed", f"key {key!r} of Secret {name!r} is not UTF-8 text"
            )
    value = value.strip()
    if value.lower().startswith("bearer "):
        value = value[7:].strip()
    if not _CREDENTIAL.match(value):
        return Credential(
            None,
            "CredentialMalformed",
            f"key {key!r} of Secret {name!r} must be 8-4096 printable characters without spaces",
        )
    return Credential(value, "CredentialResolved", f"credential read from Secret {name!r} key {key!r}")


def normalise_endpoint(provider: str, endpoint: str) -> str:
    """Augment endpoints are tenant URLs that paths are appended to (keep the trailing slash);
    OpenAI and Anthropic base URLs are joined with ``/chat/completions`` or ``/v1/messages``
    (drop it)."""
    endpoint = endpoint.strip()
    return endpoint if provider == "Augment" else endpoint.rstrip("/")


def health_condition(spec: dict[str, Any], health: dict[str, Any] | None) -> Cond:
    if spec.get("suspended"):
        return Cond("Healthy", False, "Suspended", "the token is suspended by spec.suspended")
    health = health or {}
    state = health.get("state") or "Healthy"
    reason = health.get("reason") or health.get("lastError") or ""
    if state == "Unhealthy":
        return Cond(
            "Healthy",
            False,
            _camel(reason) or "Unhealthy",
            "the proxy marked the token unhealthy; clear status.health once fixed",
        )
    if state == "CoolingDown":
        until = health.get("cooldownUntil") or "a short while"
        return Cond("Healthy", True, "CoolingDown", f"cooling down until {until} ({reason or 'errors'})")
    return Cond("Healthy", True, "Healthy", "the upstream accepts the token")


def _camel(reason: str) -> str:
    """Condition reasons must be CamelCase identifiers; the proxy already sends categories."""
    cleaned = re.sub(r"[^A-Za-z0-9]", "", reason)
    return cleaned if cleaned[:1].isalpha() else ""


@dataclass(frozen=True)
class RenewalMargins:
    """How close to its end or to running out an account is "due for renewal"."""

    days: float = 7.0
    credits: int = 100


def account_conditions(
    status: dict[str, Any], margins: RenewalMargins, now: datetime
) -> tuple[list[Cond], tuple[str, str] | None]:
    """``AccountActive`` and ``RenewalDue`` from ``status.account`` (none before the first
    reading, and for providers without standing endpoints), and the retirement if any."""
    raw = status.get("account")
    try:
        account = AccountStatus.model_validate(raw) if raw else None
    except ValidationError:
        account = None
    if account is None:
        return [], None
    retired = retirement(account, now)
    if retired is not None:
        active = Cond("AccountActive", False, retired[0], f"{retired[1]}; not routed to")
    else:
        unknown = f" (not answered: {', '.join(account.unknown)})" if account.unknown else ""
        active = Cond("AccountActive", True, "Active", f"the upstream account is active{unknown}")
    due = renewal_due(account, now, margins.days, margins.credits)
    if due is not None:
        renewal = Cond("RenewalDue", True, due[0], due[1])
    else:
        renewal = Cond("RenewalDue", False, "NotDue", "neither expiring nor running out within the margins")
    return [active, renewal], retired


def _not_routable_because(health: Cond, retired: tuple[str, str] | None) -> str:
    if not health.ok:
        return health.reason
    return retired[0] if retired is not None else ""


@dataclass(frozen=True)
class UpstreamResult:
    route: c.UpstreamRoute | None  # None: no compiled Secret may exist
    conditions: list[Cond]
    eligible: bool  # may a selector pick it / keep it


def reconcile_upstream(
    body: dict[str, Any],
    credential: Credential,
    margins: RenewalMargins | None = None,
    now: datetime | None = None,
) -> UpstreamResult:
    spec, status = body.get("spec") or {}, body.get("status") or {}
    health = health_condition(spec, status.get("health"))
    account, retired = account_conditions(status, margins or RenewalMargins(), now or datetime.now(UTC))
    # A retired account (spent, ended, refused) is not routed to, like an unhealthy one, but it is
    # its own verdict: re-checked on the standing schedule, not by health probes.
    routable = health.ok and retired is None
    cred_cond = Cond("CredentialResolved", credential.ok, credential.reason, credential.message)
    summary = ready([cred_cond], "credential resolved and well-formed")
    route = None
    if credential.token is not None:
        provider: c.Provider = next((p for p in PROVIDERS if p == spec.get("provider")), "Augment")
        route = c.UpstreamRoute(
            name=body["metadata"]["name"],
            provider=provider,
            endpoint=normalise_endpoint(provider, spec.get("endpoint", "")),
            token=credential.token,
            maxConcurrency=spec.get("maxConcurrency") or 1,
            minIntervalSeconds=spec.get("minIntervalSeconds") or 0,
            suspended=bool(spec.get("suspended")),
            # Only Unhealthy reaches the route: a cool-down is the proxy's own, short-lived verdict,
            # and a route that changed with every cool-down would churn every replica's watch.
            healthy=routable,
            healthReason=_not_routable_because(health, retired),
        )
    eligible = credential.ok and routable and not spec.get("suspended")
    return UpstreamResult(route, [summary, health, cred_cond, *account], eligible)
