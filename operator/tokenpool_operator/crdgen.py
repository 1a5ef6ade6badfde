"""The CRDs of tokenpool.io/v1alpha1, generated from this one source into ``crds/*.yaml``.

The YAML files are the API contract (applied by tests, the chart and users); they are committed,
and a unit test checks that they equal what this module generates, so the two never drift.
Run ``python -m tokenpool_operator.crdgen`` after editing this file.

Cross-field rules are CEL (``x-kubernetes-validations``) with messages written for a person;
limits that depend on operator settings (the maximum token quota) are checked by the operator.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from tokenpool.contract import compiled as c

Schema = dict[str, Any]
CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
DNS_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _int(minimum: int = 0, maximum: int | None = None, default: int | None = None, desc: str = "") -> Schema:
    s: Schema = {"type": "integer", "format": "int64", "minimum": minimum}
    if maximum is not None:
        s["maximum"] = maximum
    if default is not None:
        s["default"] = default
    if desc:
        s["description"] = desc
    return s


def _str(desc: str = "", max_length: int = 253, ext: Schema | None = None, **extra: Any) -> Schema:
    s: Schema = {"type": "string", "maxLength": max_length, **extra, **(ext or {})}
    if desc:
        s["description"] = desc
    return s


def _bool(desc: str) -> Schema:
    return {"type": "boolean", "default": False, "description": desc}


def _obj(
    props: Schema, required: list[str] | None = None, desc: str = "", ext: Schema | None = None
) -> Schema:
    s: Schema = {"type": "object", "properties": props, **(ext or {})}
    if required:
        s["required"] = required
    if desc:
        s["description"] = desc
    return s


def _secret_ref(desc: str) -> Schema:
    return _obj(
        {
            "name": _str("Secret name in the same namespace.", minLength=1, pattern=DNS_NAME_PATTERN),
            "key": _str("Key inside the Secret.", default=c.DEFAULT_CREDENTIAL_KEY, minLength=1),
        },
        ["name"],
        desc,
    )


CONDITIONS: Schema = {
    "type": "array",
    "description": "Conditions written by the operator (metav1.Condition); Ready is the summary.",
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
    "items": _obj(
        {
            "type": _str(max_length=316),
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": _str(max_length=1024),
            "message": _str(max_length=32768),
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": _int(),
        },
        ["type", "status", "lastTransitionTime", "reason", "message"],
    ),
}

_COUNTS: Schema = {
    "requests": _int(),
    "successes": _int(),
    "errors": _int(),
    "promptTokens": _int(),
    "completionTokens": _int(),
    "credits": {"type": "number", "minimum": 0},
}
_DAY = _obj({"date": _str(max_length=10), **_COUNTS})


def _usage(per_upstream: bool) -> Schema:
    """status.usage, written by the proxy (shapes: tokenpool/contract/status_fields.py). Unknown
    fields are kept so that a newer proxy never has its additions pruned by an older CRD."""
    props: Schema = {
        "total": _obj(dict(_COUNTS)),
        "today": _DAY,
        "minute": _obj({"start": _str(max_length=32), "requests": _int()}),
        "lastUsedAt": _str(max_length=64),
        "daily": {"type": "array", "maxItems": 62, "items": _DAY},
    }
    if per_upstream:
        props["todayByUpstream"] = {
            "type": "array",
            "maxItems": 1000,
            "items": _obj({"name": _str(), **_COUNTS}),
        }
    return _obj(
        props,
        desc="Usage counters, written by the proxy.",
        ext={"x-kubernetes-preserve-unknown-fields": True},
    )


HEALTH: Schema = _obj(
    {
        "state": {"type": "string", "enum": ["Healthy", "CoolingDown", "Unhealthy"]},
        "reason": _str(max_length=128),
        "lastError": _str(max_length=128),
        "lastErrorAt": _str(max_length=64),
        "cooldownUntil": _str(max_length=64),
        "consecutiveFailures": _int(),
        "clearedAt": _str(max_length=64),
    },
    desc="What the proxy last saw of the upstream (written by the proxy; the operator's checks and "
    "admins clear it to re-enable).",
    ext={"x-kubernetes-preserve-unknown-fields": True},
)

CHECK: Schema = _obj(
    {
        "nextAt": _str(max_length=64, desc="When the next scheduled check of an Unhealthy token is due."),
        "lastAt": _str(max_length=64),
        "lastResult": _str(max_length=128),
        "failures": _int(desc="Failed checks in a row (the backoff grows with them)."),
        "request": _str(max_length=253, desc="The last tokenpool.io/check-now value handled."),
    },
    desc="The operator's re-checks of an unhealthy token (written by the operator).",
    ext={"x-kubernetes-preserve-unknown-fields": True},
)

ACCOUNT: Schema = _obj(
    {
        "plan": _str(max_length=128, desc="The upstream subscription's plan."),
        "active": {"type": "boolean", "description": "False: the subscription is inactive (ended)."},
        "expiresAt": _str(max_length=64, desc="When the subscription ends."),
        "depleted": {"type": "boolean", "description": "The upstream says the balance is used up."},
        "creditsRemaining": _int(),
        "creditsTotal": _int(),
        "defaultModel": _str(max_length=253),
        "checkedAt": _str(max_length=64),
        "nextCheckAt": _str(max_length=64),
        "unknown": {
            "type": "array",
            "maxItems": 8,
            "items": _str(max_length=32),
            "description": "What the upstream did not answer at the last reading (the value shown is "
            "the last known one).",
        },
        "refusals": _int(desc="Readings in a row the upstream refused (401/403)."),
        "request": _str(max_length=253, desc="The last tokenpool.io/check-now value handled."),
    },
    desc="The upstream account's standing, read by the operator (Augment tokens).",
    ext={"x-kubernetes-preserve-unknown-fields": True},
)

_LIMITS = _obj(
    {
        "requestsPerDay": _int(default=0, desc="0 = unlimited."),
        "requestsPerMinute": _int(default=0, desc="0 = unlimited."),
        "maxConcurrentRequests": _int(default=0, desc="0 = unlimited."),
    },
    desc="Per-user rate limits enforced by the proxy.",
)

USER_SPEC = _obj(
    {
        "displayName": _str("Human-readable name.", max_length=256),
        "email": _str(
            "Contact address.",
            max_length=254,
            ext={
                "x-kubernetes-validations": [
                    {
                        "rule": r"self.matches('^[^@\\s]+@[^@\\s]+$')",
                        "message": "email must look like name@example.com",
                    }
                ]
            },
        ),
        "role": {"type": "string", "enum": ["User", "Admin"], "default": "User"},
        "tokenQuota": _int(
            desc="How many upstream tokens may be allocated; default and maximum come from the "
            "operator settings (3 and 10 unless configured)."
        ),
        "limits": _LIMITS,
        "suspended": _bool("A suspended user is refused by the proxy."),
        "personalTokenSecretRef": _secret_ref(
            "Bring an existing personal token (e.g. a migrated user) instead of a generated one."
        ),
    }
)

_SELECTOR = _obj(
    {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "matchExpressions": {
            "type": "array",
            "maxItems": 32,
            "items": _obj(
                {
                    "key": _str(max_length=317, minLength=1),
                    "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "maxItems": 64, "items": _str(max_length=63)},
                },
                ["key", "operator"],
                ext={
                    "x-kubernetes-validations": [
                        {
                            "rule": "(self.operator in ['In', 'NotIn'])"
                            " == (has(self.values) && size(self.values) > 0)",
                            "message": "values must be non-empty for In and NotIn,"
                            " and absent for Exists and DoesNotExist",
                        }
                    ]
                },
            ),
        },
    },
    desc="Label selector over UpstreamTokens in the namespace.",
    ext={"x-kubernetes-map-type": "atomic"},
)

ALLOCATION_SPEC = _obj(
    {
        "user": _str(
            "PoolUser name.",
            minLength=1,
            pattern=DNS_NAME_PATTERN,
            ext={
                "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "user cannot be changed; create a new allocation"}
                ]
            },
        ),
        "tokens": {
            "type": "array",
            "description": "UpstreamToken names to grant (exclusive with selector).",
            "maxItems": 100,
            "x-kubernetes-list-type": "set",
            "items": _str(minLength=1),
        },
        "selector": _SELECTOR,
        "count": {"type": "integer", "format": "int64", "description": "How many tokens the selector picks."},
        "priority": _int(maximum=1000, default=1, desc="Lower is preferred by the proxy."),
        "suspended": _bool("A suspended allocation grants nothing."),
    },
    ["user"],
    ext={
        "x-kubernetes-validations": [
            {
                "rule": "has(self.tokens) != has(self.selector)",
                "message": "exactly one of tokens or selector must be set",
            },
            {
                "rule": "!has(self.tokens) || size(self.tokens) > 0",
                "message": "tokens must name at least one UpstreamToken",
            },
            {"rule": "!has(self.selector) || has(self.count)", "message": "count is required with selector"},
            {
                "rule": "!has(self.count) || has(self.selector)",
                "message": "count is only allowed with selector",
            },
            {"rule": "!has(self.count) || self.count >= 1", "message": "count must be at least 1"},
        ]
    },
)

UPSTREAM_SPEC = _obj(
    {
        "provider": {
            "type": "string",
            "enum": ["Augment", "OpenAI", "Anthropic"],
            "default": "Augment",
            "description": "Upstream protocol: Augment, OpenAI-compatible or Anthropic-compatible.",
        },
        "endpoint": _str(
            "Augment tenant URL (https, ending with /), OpenAI-compatible base URL (joined with "
            "/chat/completions) or Anthropic-compatible base URL (joined with /v1/messages).",
            max_length=2048,
            ext={
                "x-kubernetes-validations": [
                    {
                        "rule": r"self.matches('^https?://[^/\\s?#]+(/[^\\s?#]*)?$')",
                        "message": "endpoint must be an absolute http(s) URL without query or fragment",
                    },
                    {
                        "rule": r"self.startsWith('https://') || self.matches('^http://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]+)?(/.*)?$')",
                        "message": "endpoint must use https (plain http is only allowed for localhost)",
                    },
                ]
            },
        ),
        "credentialSecretRef": _secret_ref("Secret holding the upstream access token (never inline)."),
        "maxConcurrency": _int(1, 1000, 1, "Concurrent requests the proxy sends with this token."),
        "minIntervalSeconds": _int(0, 86400, 0, "Minimum seconds between two requests with this token."),
        "maxAllocations": _int(
            default=0, desc="How many allocations may hold it: 0 = unlimited, 1 = exclusive."
        ),
        "suspended": _bool("A suspended token receives no traffic and is not picked by selectors."),
        "description": _str("Free text for admins.", max_length=1024),
    },
    ["endpoint", "credentialSecretRef"],
    ext={
        "x-kubernetes-validations": [
            {
                "rule": "self.provider != 'Augment' || self.endpoint.endsWith('/')",
                "message": "an Augment endpoint is the tenant URL and must end with '/' "
                "(e.g. https://d5.api.augmentcode.com/)",
            },
        ]
    },
)


def _ready_columns() -> list[Schema]:
    return [
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
    ]


AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
MESSAGE = {
    "name": "Message",
    "type": "string",
    "priority": 1,
    "jsonPath": '.status.conditions[?(@.type=="Ready")].message',
}


def crd(kind: str, plural: str, short: str, spec: Schema, status: Schema, columns: list[Schema]) -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{c.GROUP}"},
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["tokenpool"],
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [*columns, *_ready_columns(), AGE, MESSAGE],
                    "schema": {
                        "openAPIV3Schema": _obj(
                            {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": status,
                            },
                            ["spec"],
                        )
                    },
                }
            ],
        },
    }


def _status(props: Schema) -> Schema:
    return _obj({"observedGeneration": _int(), "conditions": CONDITIONS, **props})


def all_crds() -> dict[str, Schema]:
    """File name → CRD document."""
    return {
        "poolusers.yaml": crd(
            c.KIND_USER,
            c.PLURAL_USER,
            "pu",
            USER_SPEC,
            _status(
                {
                    "personalTokenSecretName": _str(),
                    "personalTokenSha256": _str(
                        max_length=64,
                        desc="sha256 of the personal token (logins look it up); never the token.",
                    ),
                    "allocatedTokens": _int(desc="Upstream tokens currently granted."),
                    "usage": _usage(per_upstream=True),
                }
            ),
            [
                {"name": "Role", "type": "string", "jsonPath": ".spec.role"},
                {"name": "Quota", "type": "integer", "jsonPath": ".spec.tokenQuota"},
                {"name": "Tokens", "type": "integer", "jsonPath": ".status.allocatedTokens"},
                {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspended"},
            ],
        ),
        "upstreamtokens.yaml": crd(
            c.KIND_UPSTREAM,
            c.PLURAL_UPSTREAM,
            "ut",
            UPSTREAM_SPEC,
            _status(
                {
                    "allocations": _int(desc="Allocations currently holding this token."),
                    "usage": _usage(per_upstream=False),
                    "health": HEALTH,
                    "check": CHECK,
                    "account": ACCOUNT,
                }
            ),
            [
                {"name": "Provider", "type": "string", "jsonPath": ".spec.provider"},
                {"name": "Endpoint", "type": "string", "priority": 1, "jsonPath": ".spec.endpoint"},
                {
                    "name": "Healthy",
                    "type": "string",
                    "jsonPath": '.status.conditions[?(@.type=="Healthy")].status',
                },
                {"name": "Allocations", "type": "integer", "jsonPath": ".status.allocations"},
                {"name": "Suspended", "type": "boolean", "jsonPath": ".spec.suspended"},
                {"name": "Next Check", "type": "string", "jsonPath": ".status.check.nextAt"},
                {"name": "Credits", "type": "integer", "jsonPath": ".status.account.creditsRemaining"},
                {"name": "Expires", "type": "string", "jsonPath": ".status.account.expiresAt"},
            ],
        ),
        "tokenallocations.yaml": crd(
            c.KIND_ALLOCATION,
            c.PLURAL_ALLOCATION,
            "ta",
            ALLOCATION_SPEC,
            _status({"tokens": {"type": "array", "items": _str(), "description": "Granted token names."}}),
            [
                {"name": "User", "type": "string", "jsonPath": ".spec.user"},
                {"name": "Priority", "type": "integer", "jsonPath": ".spec.priority"},
                {"name": "Tokens", "type": "string", "jsonPath": ".status.tokens"},
            ],
        ),
    }


def render(doc: Schema) -> str:
    header = "# Generated by operator/tokenpool_operator/crdgen.py; do not edit by hand.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, width=120)


def main(out: Path = CRD_DIR) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, doc in all_crds().items():
        (out / name).write_text(render(doc))
        print(out / name, file=sys.stderr)


if __name__ == "__main__":
    main()
