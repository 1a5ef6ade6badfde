"""Errors the console answers with: a status, a CamelCase code and a message for a person.

JSON callers get ``{"error": {"code", "message", ...}}``; pages show the message. Nothing here
carries a token, a credential or a request body.
"""

from __future__ import annotations

from typing import Any

from tokenpool.kube.client import KubeError


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def unauthenticated(message: str = "log in first") -> Problem:
    return Problem(401, "Unauthenticated", message)


def forbidden(message: str) -> Problem:
    return Problem(403, "Forbidden", message)


def not_found(what: str) -> Problem:
    return Problem(404, "NotFound", f"{what} not found")


def invalid(message: str, **extra: Any) -> Problem:
    return Problem(422, "Invalid", message, **extra)


def from_kube(exc: KubeError, what: str) -> Problem:
    """The API server's refusal, passed on: its message names objects and fields, never data."""
    if exc.status == 403:
        return Problem(403, "Forbidden", f"the Kubernetes API refused: {exc.message or exc.reason}")
    if exc.status == 409:
        return Problem(409, "Conflict", f"{what} already exists or was changed meanwhile: try again")
    if exc.status == 422:
        return Problem(422, "Invalid", f"{what} was rejected: {exc.message or exc.reason}")
    if exc.status == 404:
        return not_found(what)
    return Problem(502, "KubernetesError", f"{what}: the Kubernetes API answered {exc.status} {exc.reason}")
