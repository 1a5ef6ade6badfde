"""``status.account`` of an UpstreamToken: the upstream account's standing, and what follows.

Shape (camelCase on the wire)::

    account:
      plan: "Developer"                  # the subscription's plan name
      active: true                       # false: the subscription is inactive (ended)
      expiresAt: RFC 3339 UTC            # the subscription's end date
      depleted: false                    # the upstream says the balance is used up
      creditsRemaining: 740
      creditsTotal: 1000
      defaultModel: "claude-sonnet-4"
      checkedAt: RFC 3339 UTC            # when the standing was last read
      nextCheckAt: RFC 3339 UTC
      unknown: ["credits"]               # what the upstream did not answer this time
      refusals: 0                        # readings in a row the upstream refused (401/403)
      request: "…"                       # the tokenpool.io/check-now value last handled

A field the upstream did not answer keeps its last known value and is listed in ``unknown``: an
endpoint switched off upstream makes the standing unknown, never the account bad.

Two verdicts follow from the standing, both pure functions here so the operator (which writes
it and acts on it) and the console (which shows it) agree:
* :func:`retirement`: the account is spent (``Depleted``), its subscription ended (``Expired``),
  or the upstream refused two standing readings in a row (``Refused``: expired or banned, as the
  upstream answers both with 401/403): it is not routed to, selector allocations replace it, and
  it is re-checked at its next billing point or daily, not at the pace of health probes.
* :func:`renewal_due`: still usable, but within the configured margin of running out or expiring.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tokenpool.contract.status_fields import parse_rfc3339

Retirement = Literal["Depleted", "Expired", "Refused"]
DAILY = timedelta(days=1)
# A first refusal is confirmed this much later before the account is retired.
REFUSAL_RECHECK = timedelta(minutes=5)
REFUSALS_TO_RETIRE = 2


class AccountStatus(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)

    plan: str | None = None
    active: bool | None = None
    expires_at: str | None = None
    depleted: bool | None = None
    credits_remaining: int | None = Field(default=None, ge=0)
    credits_total: int | None = Field(default=None, ge=0)
    default_model: str | None = None
    checked_at: str | None = None
    next_check_at: str | None = None
    unknown: list[str] = []
    refusals: int = Field(default=0, ge=0)
    request: str | None = None

    def expires(self) -> datetime | None:
        try:
            return parse_rfc3339(self.expires_at) if self.expires_at else None
        except ValueError:
            return None

    def merged_over(self, previous: AccountStatus | None) -> AccountStatus:
        """This reading, with the last known value of every field it could not read."""
        if previous is None:
            return self
        keep = {
            name: getattr(previous, name)
            for group in self.unknown
            for name in UNKNOWN_GROUPS.get(group, ())
            if getattr(self, name) is None
        }
        return self.model_copy(update=keep)


# What each ``unknown`` entry stands for: one per upstream endpoint read.
UNKNOWN_GROUPS = {
    "subscription": ("plan", "active", "expires_at", "depleted"),
    "credits": ("credits_remaining", "credits_total"),
    "models": ("default_model",),
}


def retirement(account: AccountStatus | None, now: datetime) -> tuple[Retirement, str] | None:
    """Why the account must not be routed to, or None."""
    if account is None:
        return None
    if account.refusals >= REFUSALS_TO_RETIRE:
        return "Refused", f"the upstream refused the account's last {account.refusals} standing checks"
    if account.active is False:
        return "Expired", "the upstream subscription is inactive"
    expires = account.expires()
    if expires is not None and expires <= now:
        return "Expired", f"the upstream subscription ended at {account.expires_at}"
    if account.depleted:
        return "Depleted", "the upstream says the account's balance is used up"
    if account.credits_remaining == 0 and account.credits_total:
        return "Depleted", f"no credits left of {account.credits_total}"
    return None


def renewal_due(
    account: AccountStatus | None, now: datetime, days_margin: float, credits_margin: int
) -> tuple[str, str] | None:
    """Within the margin of expiring (``ExpiresSoon``) or running out (``CreditsLow``), or None."""
    if account is None or retirement(account, now) is not None:
        return None
    expires = account.expires()
    if expires is not None and expires - now <= timedelta(days=days_margin):
        days = max(0.0, (expires - now).total_seconds() / 86400)
        return "ExpiresSoon", f"the upstream subscription ends at {account.expires_at} (in {days:.1f} days)"
    remaining = account.credits_remaining
    if remaining is not None and remaining <= credits_margin:
        return "CreditsLow", f"{remaining} credits left of {account.credits_total or '?'}"
    return None


def next_check(account: AccountStatus, now: datetime, interval: timedelta) -> datetime:
    """A usable account: ``interval`` from now, or its subscription's end if that comes first (so
    the verdict changes when the account does). A first refusal: confirmed soon. A retired one: at
    its next billing point (the subscription's end, when still ahead) or in a day, whichever comes
    first."""
    expires = account.expires()
    if retirement(account, now) is None:
        if account.refusals:
            return now + min(interval, REFUSAL_RECHECK)
        if expires is not None and now < expires < now + interval:
            return expires
        return now + interval
    if expires is not None and now < expires < now + DAILY:
        return expires
    return now + DAILY
