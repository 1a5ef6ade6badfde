"""metav1.Condition lists as plain dicts: set one condition without churning the others.

``lastTransitionTime`` changes only when a condition's status changes, so re-reconciling an
object that did not change produces byte-identical conditions and therefore no status patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Condition = dict[str, Any]


@dataclass(frozen=True)
class Cond:
    """A condition the reconcile functions want; :func:`merge` turns it into the wire shape."""

    type: str
    ok: bool
    reason: str
    message: str = ""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: list[Condition] | None, type_: str) -> Condition | None:
    for cond in conditions or ():
        if cond.get("type") == type_:
            return cond
    return None


def is_true(conditions: list[Condition] | None, type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.get("status") == "True"


def merge(old: list[Condition] | None, wanted: list[Cond], generation: int, now: str) -> list[Condition]:
    """The new conditions list: ``wanted`` in order, keeping old transition times when the status
    did not change. Conditions of other types are dropped (the operator owns the whole list)."""
    result = []
    for want in wanted:
        status = "True" if want.ok else "False"
        prev = find(old, want.type)
        since = prev["lastTransitionTime"] if prev and prev.get("status") == status else now
        result.append(
            {
                "type": want.type,
                "status": status,
                "reason": want.reason,
                "message": want.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return result


def ready(parts: list[Cond], ok_message: str) -> Cond:
    """The summary ``Ready`` condition: the first failing part decides, else True."""
    for part in parts:
        if not part.ok:
            return Cond("Ready", False, part.reason, part.message)
    return Cond("Ready", True, "Ready", ok_message)
