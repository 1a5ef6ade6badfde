"""The pages' urlencoded forms turned into the JSON API's request models (one validation)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from . import problems


def int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise problems.invalid(f"{value!r} is not a whole number") from None


def names(value: str | None) -> list[str]:
    """``"a, b c"`` → ``["a", "b", "c"]``."""
    return [n for n in (value or "").replace(",", " ").split() if n]


def labels(value: str | None) -> dict[str, str]:
    """``"k=v, k2=v2"`` → ``{"k": "v", "k2": "v2"}``."""
    out = {}
    for part in names(value):
        key, sep, val = part.partition("=")
        if not sep or not key:
            raise problems.invalid(f"labels are key=value, got {part!r}")
        out[key] = val
    return out


def limits(form: dict[str, str]) -> dict[str, int] | None:
    keys = {
        "requests_per_day": "requestsPerDay",
        "requests_per_minute": "requestsPerMinute",
        "max_concurrent_requests": "maxConcurrentRequests",
    }
    values = {alias: int_or_none(form.get(key)) for key, alias in keys.items()}
    if all(v is None for v in values.values()):
        return None
    return {k: v or 0 for k, v in values.items()}


def model(cls: Any, data: dict[str, Any]) -> Any:
    """``cls.model_validate(data)`` with a 422 that names the field."""
    try:
        return cls.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "invalid"))
        raise problems.invalid(f"{field}: {message}" if field else message) from None
