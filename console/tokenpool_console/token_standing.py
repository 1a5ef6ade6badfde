"""An upstream account's standing as the console shows it: what the operator read into
``status.account`` (plan, expiry, credits; tokenpool/contract/account_status.py) and its two
verdicts, the conditions ``AccountActive`` (False: retired — Depleted, Expired, Refused) and
``RenewalDue`` (True: ExpiresSoon, CreditsLow). The console takes the verdicts from the
conditions rather than re-deciding them: the renewal margins are the operator's settings.
Nothing here asks the upstream (docs/operator.md, "Account standing").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tokenpool.contract.account_status import AccountStatus


@dataclass(frozen=True, slots=True)
class Verdict:
    status: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Standing:
    plan: str
    expires_at: str  # RFC 3339, "" when not known
    credits_remaining: int | None
    credits_total: int | None
    default_model: str
    depleted: bool | None
    checked_at: str
    next_check_at: str
    unknown: tuple[str, ...]  # parts the upstream did not answer at the last reading
    active: Verdict | None  # AccountActive
    renewal: Verdict | None  # RenewalDue

    @property
    def retired(self) -> bool:
        return self.active is not None and not self.active.status

    @property
    def renewal_due(self) -> bool:
        return self.renewal is not None and self.renewal.status

    @property
    def expires_on(self) -> str:
        """The day of the expiry (the table's column), or ""."""
        return self.expires_at[:10]


def _verdict(cond: dict[str, Any]) -> Verdict | None:
    if cond.get("status") not in ("True", "False"):
        return None
    return Verdict(cond["status"] == "True", str(cond.get("reason") or ""), str(cond.get("message") or ""))


def standing_of(
    raw: Any, active_condition: dict[str, Any], renewal_condition: dict[str, Any]
) -> Standing | None:
    """None before the operator's first reading (and for providers without one)."""
    active, renewal = _verdict(active_condition), _verdict(renewal_condition)
    try:
        account = AccountStatus.model_validate(raw) if isinstance(raw, dict) and raw else None
    except ValidationError:
        account = None
    if account is None and active is None:
        return None
    account = account or AccountStatus()
    return Standing(
        plan=account.plan or "",
        expires_at=account.expires_at or "",
        credits_remaining=account.credits_remaining,
        credits_total=account.credits_total,
        default_model=account.default_model or "",
        depleted=account.depleted,
        checked_at=account.checked_at or "",
        next_check_at=account.next_check_at or "",
        unknown=tuple(account.unknown),
        active=active,
        renewal=renewal,
    )


def standing_json(s: Standing | None) -> dict[str, Any] | None:
    """The API's ``account`` of a token (camelCase like status.account; the verdicts as
    ``{status, reason, message}``)."""
    if s is None:
        return None

    def verdict(v: Verdict | None) -> dict[str, Any] | None:
        return None if v is None else {"status": v.status, "reason": v.reason, "message": v.message}

    return {
        "plan": s.plan or None,
        "expiresAt": s.expires_at or None,
        "creditsRemaining": s.credits_remaining,
        "creditsTotal": s.credits_total,
        "defaultModel": s.default_model or None,
        "depleted": s.depleted,
        "checkedAt": s.checked_at or None,
        "nextCheckAt": s.next_check_at or None,
        "unknown": list(s.unknown),
        "retired": s.retired,
        "active": verdict(s.active),
        "renewalDue": verdict(s.renewal),
    }
