"""Migration from the original Cloudflare Worker system: a D1 SQL dump → tokenpool manifests.

The input is what ``wrangler d1 export <db> --output dump.sql`` writes for the multi-user
edition of augment2api: ``CREATE TABLE`` and ``INSERT`` statements for ``users``, ``tokens`` and
``user_token_allocations`` (plus tables we do not need: usage stats, admins, sessions, ...).
The dump is loaded into an in-memory SQLite database with Python's ``sqlite3`` (SQLite parses
it, not us); statements on SQLite's internal tables (``sqlite_sequence``), which a plain import
rejects, are skipped. A dump is data, not a program: while it loads, SQLite's authorizer admits
only what an export contains (creating tables and indexes, inserting rows, transactions, the
``defer_foreign_keys`` pragma, plain scalar functions such as ``replace``/``char``); anything
else (``ATTACH``, triggers, views, updates, other pragmas) stops the migration with an error that
names it.

The mapping keeps what users of the old system rely on:

* every user keeps their personal token: a Secret holding it plus ``personalTokenSecretRef``;
* every upstream token becomes an UpstreamToken with a credential Secret (never inline);
* active allocations become TokenAllocations, one per (user, priority) tier, keeping priority;
  revoked ones are dropped.

Names are sanitised to DNS-1123 labels; what cannot be carried over is reported as a warning
rather than silently dropped.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tokenpool.cli.sqlite_guard import data_only_authorizer
from tokenpool.contract import compiled as contract

ANNOTATION_D1_ID = "tokenpool.io/d1-id"
ANNOTATION_D1_CREATED_AT = "tokenpool.io/d1-created-at"
ANNOTATION_D1_USAGE_COUNT = "tokenpool.io/d1-usage-count"
LABEL_MIGRATED = "tokenpool.io/migrated-from"
MIGRATED_FROM = "d1"
MAX_NAME = 63  # a DNS-1123 label: user and token names also end up in label values
# The Secret holding a migrated personal token: not `<user>-personal-token`, which the operator owns.
_SECRET_SUFFIX = "-d1-personal-token"  # noqa: S105 - a name, not a secret
# What the CRDs and the operator accept; values outside are reported, not applied to fail there.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_BYO_TOKEN = re.compile(r"^[\x21-\x7e]{16,512}$")
_MAX_DESCRIPTION = 1024
_INTERNAL_TABLE = re.compile(
    r"^(?:CREATE\s+TABLE(?:\s+IF\s+NOT\s+EXISTS)?|INSERT(?:\s+OR\s+\w+)?\s+INTO|DELETE\s+FROM)"
    r"\s+[\"`\[]?(?:sqlite_|_cf_)",
    re.I,
)
_LEADING_COMMENTS = re.compile(r"^(?:\s*--[^\n]*\n|\s+)*")


class MigrationError(ValueError):
    """The dump cannot be migrated (not SQL, or not the augment2api schema)."""


@dataclass
class Migration:
    """The manifests to apply (in order) and what the operator of the migration should know."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    users: dict[int, str] = field(default_factory=dict)  # old id -> new name
    tokens: dict[int, str] = field(default_factory=dict)


def load_dump(sql: str) -> sqlite3.Connection:
    """Load a D1 export into an in-memory SQLite database, statement by statement."""
    # Autocommit: the dump's own BEGIN TRANSACTION / COMMIT (sqlite3 .dump style) then just work.
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.row_factory = sqlite3.Row
    refused: list[str] = []
    db.set_authorizer(data_only_authorizer(refused))
    # Grow the candidate one ';' at a time: the first time SQLite calls it complete, it is exactly
    # one statement (a ';' inside a string or a trigger body does not complete it).
    statement = ""
    for piece in re.split(r"(?<=;)", sql):
        statement += piece
        if not sqlite3.complete_statement(statement):
            continue
        if not _INTERNAL_TABLE.match(_LEADING_COMMENTS.sub("", statement)):
            try:
                db.execute(statement)
            except sqlite3.Error as exc:
                if refused:
                    raise MigrationError(
                        f"the dump may only create tables and insert rows; refused {refused[0]} in: "
                        f"{statement.strip()[:120]}"
                    ) from None
                raise MigrationError(f"cannot load the dump: {exc} in: {statement.strip()[:120]}") from exc
        statement = ""
    if _LEADING_COMMENTS.sub("", statement).strip():
        raise MigrationError(f"the dump ends inside a statement: {statement.strip()[:120]}")
    db.set_authorizer(None)  # loaded: the migration's own reads are not the dump's
    return db


def dns1123(value: str | None) -> str:
    """Lowercase, runs of other characters → '-', trimmed to a valid DNS-1123 label ('' if none)."""
    name = re.sub(r"[^a-z0-9]+", "-", (value or "").lower()).strip("-")
    return name[: MAX_NAME - len(_SECRET_SUFFIX)].rstrip("-")


def _rows(db: sqlite3.Connection, table: str, required: bool) -> list[dict[str, Any]]:
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (table,)).fetchone()
    if not exists:
        if required:
            raise MigrationError(
                f"the dump has no table {table!r}: is it an export of the augment2api D1 database?"
            )
        return []
    return [dict(r) for r in db.execute(f'SELECT * FROM "{table}" ORDER BY id')]  # noqa: S608 - fixed table names


def _get(row: dict[str, Any], key: str, default: Any = None) -> Any:
    """A column's value; ``default`` when the column is NULL or absent (older schema versions)."""
    value = row.get(key)
    return default if value is None else value


def _unique_user_name(base: str, uid: int, taken: set[str]) -> str:
    """``base``, else ``user-<id>``; on a clash ``<name>-<id>``, then ``user-<id>-<n>``."""
    name = base or f"user-{uid}"
    if name in taken:
        name = f"{name}-{uid}"
    n = 2
    while name in taken:
        name, n = f"user-{uid}-{n}", n + 1
    taken.add(name)
    return name


def _meta(name: str, namespace: str | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {LABEL_MIGRATED: MIGRATED_FROM}
    if annotations:
        meta["annotations"] = annotations
    return meta


def _secret(name: str, value: str, namespace: str | None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, namespace),
        "type": "Opaque",
        "stringData": {contract.DEFAULT_CREDENTIAL_KEY: value},
    }


def _endpoint(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    return url if url.endswith("/") else url + "/"


def _migrate_tokens(db: sqlite3.Connection, ns: str | None, out: Migration) -> list[dict[str, Any]]:
    secrets: list[dict[str, Any]] = []
    objs: list[dict[str, Any]] = []
    for row in _rows(db, "tokens", required=True):
        tid = int(row["id"])
        if not _get(row, "token") or not _get(row, "tenant_url"):
            out.warnings.append(f"token id {tid}: no token or tenant_url, skipped")
            continue
        name = f"augment-{tid}"  # ids are unique: so are these names
        status = _get(row, "status", "active")
        annotations = {
            ANNOTATION_D1_ID: str(tid),
            ANNOTATION_D1_USAGE_COUNT: str(_get(row, "usage_count", 0)),
        }
        if _get(row, "created_at"):
            annotations[ANNOTATION_D1_CREATED_AT] = str(row["created_at"])
        spec: dict[str, Any] = {
            "provider": "Augment",
            "endpoint": _endpoint(str(row["tenant_url"])),
            "credentialSecretRef": {"name": f"{name}-credential", "key": contract.DEFAULT_CREDENTIAL_KEY},
        }
        if status != "active":
            spec["suspended"] = True
            out.warnings.append(f"token id {tid} ({name}) was {status!r}: migrated as suspended")
        if _get(row, "remark"):
            spec["description"] = str(row["remark"])[:_MAX_DESCRIPTION]
        secrets.append(_secret(f"{name}-credential", str(row["token"]), ns))
        objs.append(
            {
                "apiVersion": contract.API_VERSION,
                "kind": contract.KIND_UPSTREAM,
                "metadata": _meta(name, ns, annotations),
                "spec": spec,
            }
        )
        out.tokens[tid] = name
    return secrets + objs


def _active_allocations(db: sqlite3.Connection, out: Migration) -> dict[int, dict[int, list[str]]]:
    """user id -> priority -> token names, for active allocations whose user and token exist."""
    grants: dict[int, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for row in _rows(db, "user_token_allocations", required=False):
        uid, tid = int(row["user_id"]), int(row["token_id"])
        if _get(row, "status", "active") != "active":
            continue
        if uid not in out.users or tid not in out.tokens:
            out.warnings.append(
                f"allocation id {row['id']}: user {uid} or token {tid} does not exist, skipped"
            )
            continue
        grants[uid][int(_get(row, "priority", 1))].append(out.tokens[tid])
    return grants


def _migrate_users(db: sqlite3.Connection, ns: str | None, out: Migration) -> list[dict[str, Any]]:
    secrets: list[dict[str, Any]] = []
    objs: list[dict[str, Any]] = []
    taken: set[str] = set()
    rows = _rows(db, "users", required=True)
    for row in rows:
        uid = int(row["id"])
        username = _get(row, "username", "")
        name = _unique_user_name(dns1123(username), uid, taken)
        if username and name != username:
            out.warnings.append(
                f"user id {uid}: name {username!r} is not a valid resource name, now {name!r}"
            )
        out.users[uid] = name
    grants = _active_allocations(db, out)
    for row in rows:
        uid = int(row["id"])
        name = out.users[uid]
        allocated = sum(len(t) for t in grants.get(uid, {}).values())
        quota = int(_get(row, "token_quota", 0))
        if allocated > quota:
            out.warnings.append(
                f"user {name}: {allocated} active allocations exceed token_quota {quota}; "
                f"quota raised to {allocated}"
            )
            quota = allocated
        spec: dict[str, Any] = {
            "displayName": str(_get(row, "username", name)),
            "role": "User",
            "tokenQuota": quota,
        }
        old_token = str(_get(row, "personal_token", ""))
        if _BYO_TOKEN.match(old_token):
            secret_name = f"{name}{_SECRET_SUFFIX}"
            spec["personalTokenSecretRef"] = {"name": secret_name, "key": contract.PERSONAL_TOKEN_KEY}
            secrets.append(_secret(secret_name, old_token, ns))
        else:
            out.warnings.append(
                f"user {name}: old personal token is not 16-512 printable characters; "
                "the operator will generate a new one"
            )
        email = str(_get(row, "email", ""))
        if _EMAIL.match(email):
            spec["email"] = email
        elif email:
            out.warnings.append(f"user {name}: e-mail {email!r} is not valid, left out")
        status = _get(row, "status", "active")
        if status != "active":
            spec["suspended"] = True
            out.warnings.append(f"user {name} was {status!r}: migrated as suspended")
        annotations = {ANNOTATION_D1_ID: str(uid)}
        if _get(row, "created_at"):
            annotations[ANNOTATION_D1_CREATED_AT] = str(row["created_at"])
        objs.append(
            {
                "apiVersion": contract.API_VERSION,
                "kind": contract.KIND_USER,
                "metadata": _meta(name, ns, annotations),
                "spec": spec,
            }
        )
    allocations = [
        {
            "apiVersion": contract.API_VERSION,
            "kind": contract.KIND_ALLOCATION,
            "metadata": _meta(f"{out.users[uid]}-p{priority}", ns),
            "spec": {"user": out.users[uid], "tokens": sorted(tokens), "priority": priority},
        }
        for uid, tiers in sorted(grants.items())
        for priority, tokens in sorted(tiers.items())
    ]
    return secrets + objs + allocations


def migrate(sql: str, namespace: str | None = None) -> Migration:
    """Convert the text of a D1 dump into manifests: Secrets first, then the resources using them."""
    db = load_dump(sql)
    out = Migration()
    token_docs = _migrate_tokens(db, namespace, out)
    user_docs = _migrate_users(db, namespace, out)
    out.manifests = token_docs + user_docs
    return out
