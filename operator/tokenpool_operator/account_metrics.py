"""Gauges of each upstream account's standing, computed at scrape time from the operator's cache.

The one place where a series is labelled with an object's name (``namespace``, ``token``): the
accounts are what an admin watches here, and they are a bounded, admin-declared set (a pool of
a thousand accounts is a thousand series per gauge). A gauge is absent for an account whose
value is unknown; values are numbers the upstream reported, never credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tokenpool_operator.standing_checker import account_of


class AccountGauges(Collector):
    def __init__(self, tokens: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.tokens = tokens

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "token"]
        credits = GaugeMetricFamily(
            "tokenpool_operator_account_credits_remaining",
            "Credits the upstream reported left on the account at its last standing reading",
            labels=labels,
        )
        days = GaugeMetricFamily(
            "tokenpool_operator_account_days_to_expiry",
            "Days until the upstream subscription ends (negative: ended)",
            labels=labels,
        )
        now = datetime.now(UTC)
        for (ns, name), body in list(self.tokens.items()):
            account = account_of(body)
            if account is None:
                continue
            if account.credits_remaining is not None:
                credits.add_metric([ns, name], account.credits_remaining)
            expires = account.expires()
            if expires is not None:
                days.add_metric([ns, name], round((expires - now).total_seconds() / 86400, 3))
        yield credits
        yield days
