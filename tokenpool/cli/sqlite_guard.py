"""SQLite's authorizer for loading a data export: a dump is data, not a program.

While a dump loads, only what an export contains is admitted: creating tables and indexes,
inserting rows, transactions, the ``defer_foreign_keys`` pragma and plain scalar functions
(``replace``, ``char``...). ``ATTACH`` (reading or writing other files), triggers, views, updates,
other pragmas and any other function are refused; the first refusal is recorded so the migration
can name it in its error.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# What loading an export may do (sqlite3 authorizer action codes). Creating a table writes the
# schema table, so inserts/updates of sqlite_master are part of CREATE TABLE / CREATE INDEX.
_ALLOWED_ACTIONS = {
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_TRANSACTION,
    sqlite3.SQLITE_SAVEPOINT,
    sqlite3.SQLITE_REINDEX,  # part of CREATE INDEX
}
_SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master"}
_ALLOWED_PRAGMAS = {"defer_foreign_keys", "foreign_keys"}
_ALLOWED_FUNCTIONS = {"replace", "char", "unistr", "unhex", "hex", "lower", "upper", "coalesce", "ifnull"}
_ACTION_KINDS = ("INDEX", "TABLE", "TRIGGER", "VIEW")
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{n}"): n.replace("_", " ")
    for n in (
        *("ALTER_TABLE", "ANALYZE", "ATTACH", "DETACH", "DELETE", "FUNCTION", "INSERT", "PRAGMA"),
        *("READ", "RECURSIVE", "REINDEX", "SAVEPOINT", "SELECT", "TRANSACTION", "UPDATE"),
        *(
            f"{verb}_{temp}{kind}"
            for verb in ("CREATE", "DROP")
            for temp in ("", "TEMP_")
            for kind in _ACTION_KINDS
        ),
        *("CREATE_VTABLE", "DROP_VTABLE"),
    )
    if hasattr(sqlite3, f"SQLITE_{n}")
}


def data_only_authorizer(refused: list[str]) -> Any:
    """An authorizer that admits only what a data export needs; the first refusal is recorded."""

    def authorize(
        action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
    ) -> int:
        ok = (
            action in _ALLOWED_ACTIONS
            or (action == sqlite3.SQLITE_UPDATE and arg1 in _SCHEMA_TABLES)
            or (action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _ALLOWED_PRAGMAS)
            or (action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _ALLOWED_FUNCTIONS)
        )
        if ok:
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, str(action))
        detail = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        refused.append(f"{what} {detail}" if detail else what)
        return sqlite3.SQLITE_DENY

    return authorize
