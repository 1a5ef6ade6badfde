"""Request bodies of the JSON API (and of the pages' forms, which are parsed into the same models).

Validation here gives a clear 422 before the API server is asked; the CRDs' own schema and CEL
rules still apply to whatever is written.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from tokenpool.contract.compiled import Provider

# A DNS-1123 label: object names here end up in label values (at most 63 characters).
NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
EMAIL = r"^[^@\s]+@[^@\s]+$"
LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )


class LimitsIn(_Body):
    requests_per_day: int = Field(default=0, ge=0, le=10**9)
    requests_per_minute: int = Field(default=0, ge=0, le=10**9)
    max_concurrent_requests: int = Field(default=0, ge=0, le=10**6)


class UserCreate(_Body):
    name: str = Field(pattern=NAME, description="PoolUser name (lowercase letters, digits, '-').")
    display_name: str = Field(default="", max_length=256)
    email: str = Field(default="", max_length=254)
    role: Literal["User", "Admin"] = "User"
    token_quota: int | None = Field(default=None, ge=0, le=1000)
    limits: LimitsIn | None = None

    @model_validator(mode="after")
    def _email(self) -> UserCreate:
        _check_email(self.email)
        return self


class UserEdit(_Body):
    display_name: str | None = Field(default=None, max_length=256)
    email: str | None = Field(default=None, max_length=254)
    role: Literal["User", "Admin"] | None = None
    token_quota: int | None = Field(default=None, ge=0, le=1000)
    limits: LimitsIn | None = None

    @model_validator(mode="after")
    def _email(self) -> UserEdit:
        _check_email(self.email or "")
        return self


def _check_email(email: str) -> None:
    if email and not re.match(EMAIL, email):
        raise ValueError("email must look like name@example.com")


class _AccountFields(_Body):
    """What every way of adding an upstream account asks besides the credential."""

    name: str = Field(pattern=NAME)
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)
    max_concurrency: int = Field(default=1, ge=1, le=1000)
    min_interval_seconds: int = Field(default=0, ge=0, le=86400)
    max_allocations: int = Field(default=0, ge=0, le=10**6)
    description: str = Field(default="", max_length=1024)

    @model_validator(mode="after")
    def _labels(self) -> _AccountFields:
        for key, value in self.labels.items():
            if not re.match(LABEL_KEY, key) or len(key) > 317 or not re.match(LABEL_VALUE, value):
                raise ValueError(f"label {key}={value} is not a valid Kubernetes label")
        return self


class TokenCreate(_AccountFields):
    provider: Provider = "Augment"
    endpoint: str = Field(min_length=8, max_length=2048)
    credential: str = Field(
        min_length=1, max_length=8192, repr=False, description="Stored in a Secret; never shown again."
    )

    @model_validator(mode="after")
    def _credential(self) -> TokenCreate:
        if any(c.isspace() for c in self.credential.strip()) or not self.credential.strip():
            raise ValueError("the credential must be one token without spaces")
        return self


class SignInFinish(_AccountFields):
    login_id: str = Field(min_length=8, max_length=128, description="From oauth/start.")
    answer: str | dict[str, Any] = Field(
        repr=False,
        description='What the sign-in page shows: {"code", "state", "tenant_url"} (as text or as JSON).',
    )

    @property
    def answer_text(self) -> str:
        return self.answer if isinstance(self.answer, str) else json.dumps(self.answer)

    @model_validator(mode="after")
    def _answer_size(self) -> SignInFinish:
        if len(self.answer_text) > 8192:
            raise ValueError("the sign-in answer is longer than any the sign-in page shows")
        return self


class AllocationCreate(_Body):
    name: str | None = Field(default=None, pattern=NAME)
    user: str = Field(pattern=NAME)
    tokens: list[str] | None = Field(default=None, max_length=100)
    selector: dict[str, str] | None = Field(default=None, max_length=32, description="matchLabels")
    count: int | None = Field(default=None, ge=1, le=1000)
    priority: int = Field(default=1, ge=0, le=1000)

    @model_validator(mode="after")
    def _one_way(self) -> AllocationCreate:
        check_grant(self.tokens, self.selector, self.count)
        return self


class BulkAssign(_Body):
    users: list[str] = Field(min_length=1, max_length=1000)
    tokens: list[str] | None = Field(default=None, max_length=100)
    selector: dict[str, str] | None = Field(default=None, max_length=32)
    count: int | None = Field(default=None, ge=1, le=1000)
    priority: int = Field(default=1, ge=0, le=1000)

    @model_validator(mode="after")
    def _one_way(self) -> BulkAssign:
        check_grant(self.tokens, self.selector, self.count)
        return self


def check_grant(tokens: list[str] | None, selector: dict[str, str] | None, count: int | None) -> None:
    if bool(tokens) == bool(selector):
        raise ValueError("give either tokens (names) or a selector with a count, not both")
    if selector and not count:
        raise ValueError("a selector needs a count (how many matching tokens)")
    if tokens and count:
        raise ValueError("count is only allowed with a selector")


class LoginIn(_Body):
    token: str = Field(min_length=1, max_length=16384, repr=False)
    namespace: str | None = None


class JoinIn(_Body):
    name: str = Field(min_length=1, max_length=128)
    email: str = Field(max_length=254, pattern=EMAIL)
    invitation: str = Field(default="", max_length=128, repr=False)


class ClaimIn(_Body):
    request: str = Field(pattern=NAME)
    claim: str = Field(min_length=16, max_length=128, repr=False)


class InvitationCreate(_Body):
    uses: int = Field(default=1, ge=1, le=1000)
    valid_days: int = Field(default=7, ge=1, le=365)
    note: str = Field(default="", max_length=256)
