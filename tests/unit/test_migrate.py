"""The D1 → manifests migration on a dump shaped like `wrangler d1 export` output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tokenpool.cli.d1_migration import Migration, MigrationError, dns1123, load_dump, migrate
from tokenpool.cli.main import app
from tokenpool.contract import compiled as contract

DUMP = Path(__file__).parent.parent / "data" / "d1_dump.sql"
ALICE_PT = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
TOKEN_1 = "3f1c9a7e5b2d4f608a1e9c3b7d5f2a4c6e8b0d1f3a5c7e9b2d4f6a8c0e1b3d5f"


@pytest.fixture(scope="module")
def result() -> Migration:
    return migrate(DUMP.read_text(), namespace="team")


def by_kind(m: Migration, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in m.manifests if d["kind"] == kind}


def test_dump_loads_through_sqlite_skipping_internal_tables() -> None:
    db = load_dump(DUMP.read_text())
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 7
    assert db.execute("SELECT remark FROM tokens WHERE id=2").fetchone()[0] == "Bob's trial account"


def test_users_keep_their_personal_tokens_through_secret_refs(result: Migration) -> None:
    users = by_kind(result, contract.KIND_USER)
    secrets = by_kind(result, "Secret")
    assert set(users) == {"alice", "bob-smith", "user-3", "dave", "user-5", "alice-6", "eve"}
    for user in (u for n, u in users.items() if n != "eve"):
        ref = user["spec"]["personalTokenSecretRef"]
        assert ref["name"] in secrets
        assert ref["key"] == contract.PERSONAL_TOKEN_KEY
        # Never the Secret the operator generates and owns.
        assert ref["name"] != contract.personal_token_secret_name(user["metadata"]["name"])
    alice_ref = users["alice"]["spec"]["personalTokenSecretRef"]["name"]
    assert secrets[alice_ref]["stringData"]["token"] == ALICE_PT
    assert users["alice"]["spec"]["email"] == "alice@example.com"
    assert users["alice"]["spec"]["tokenQuota"] == 3
    assert users["alice"]["metadata"]["annotations"]["tokenpool.io/d1-id"] == "1"


def test_values_the_cluster_would_reject_are_left_out_with_a_warning(result: Migration) -> None:
    eve = by_kind(result, contract.KIND_USER)["eve"]["spec"]
    # "pt-eve" is too short for the operator: eve gets a generated token instead.
    assert "personalTokenSecretRef" not in eve
    assert "email" not in eve
    assert any("eve" in w and "generate a new one" in w for w in result.warnings)
    assert any("eve at example" in w for w in result.warnings)


def test_status_maps_to_suspended(result: Migration) -> None:
    users = by_kind(result, contract.KIND_USER)
    tokens = by_kind(result, contract.KIND_UPSTREAM)
    assert users["dave"]["spec"]["suspended"] is True
    assert users["alice-6"]["spec"]["suspended"] is True
    assert "suspended" not in users["alice"]["spec"]
    assert tokens["augment-3"]["spec"]["suspended"] is True  # disabled
    assert tokens["augment-4"]["spec"]["suspended"] is True  # maintenance
    assert "suspended" not in tokens["augment-1"]["spec"]


def test_tokens_become_upstream_tokens_with_credential_secrets(result: Migration) -> None:
    tokens = by_kind(result, contract.KIND_UPSTREAM)
    secrets = by_kind(result, "Secret")
    assert set(tokens) == {"augment-1", "augment-2", "augment-3", "augment-4"}
    t1 = tokens["augment-1"]["spec"]
    assert t1["provider"] == "Augment"
    assert t1["endpoint"] == "https://d5.api.augmentcode.com/"
    assert secrets[t1["credentialSecretRef"]["name"]]["stringData"]["token"] == TOKEN_1
    # The tenant URL without its trailing slash is normalised.
    assert tokens["augment-2"]["spec"]["endpoint"] == "https://d12.api.augmentcode.com/"
    assert tokens["augment-2"]["spec"]["description"] == "Bob's trial account"
    # ';' and '--' inside a string are data, not statement ends or comments.
    assert tokens["augment-4"]["spec"]["description"] == "spare; not assigned yet -- keep"
    # No credential inline anywhere but in Secrets.
    for doc in result.manifests:
        if doc["kind"] != "Secret":
            assert TOKEN_1 not in yaml.safe_dump(doc)


def test_allocations_keep_priority_and_drop_revoked(result: Migration) -> None:
    allocs = {
        (a["spec"]["user"], a["spec"]["priority"]): a["spec"]["tokens"]
        for a in by_kind(result, contract.KIND_ALLOCATION).values()
    }
    assert allocs == {
        ("alice", 1): ["augment-1"],
        ("alice", 2): ["augment-2"],
        ("bob-smith", 1): ["augment-2"],  # augment-3 was revoked
        ("bob-smith", 2): ["augment-1"],
        ("user-3", 1): ["augment-1"],
        ("user-3", 3): ["augment-4"],
        ("dave", 1): ["augment-1"],
    }
    # bob had quota 1 but two active allocations: the quota is raised so nothing is lost.
    assert by_kind(result, contract.KIND_USER)["bob-smith"]["spec"]["tokenQuota"] == 2
    assert any("allocation id 9" in w for w in result.warnings)


def test_names_are_dns1123_and_namespaced(result: Migration) -> None:
    for doc in result.manifests:
        name = doc["metadata"]["name"]
        assert name == dns1123(name) or name.endswith("-credential") or "personal-token" in name
        assert len(name) <= 63
        assert doc["metadata"]["namespace"] == "team"
    assert dns1123("Bob.Smith") == "bob-smith"
    assert dns1123("张三") == ""
    assert dns1123("--A__b--") == "a-b"
    assert len(dns1123("x" * 200)) <= 63


def test_clashing_names_stay_unique() -> None:
    users = "".join(
        f"INSERT INTO users VALUES({i},'{i:02d}{'x' * 30}','{name}');"
        for i, name in enumerate(["alice", "ALICE", "alice-2", "Alice!", "user-5", None], start=1)
    )
    sql = (
        "CREATE TABLE tokens (id INTEGER PRIMARY KEY, token TEXT, tenant_url TEXT);"
        "CREATE TABLE users (id INTEGER PRIMARY KEY, personal_token TEXT, username TEXT);"
        + users.replace("'None'", "NULL")
    )
    names = list(migrate(sql).users.values())
    assert names == ["alice", "alice-2", "alice-2-3", "alice-4", "user-5", "user-6"]
    assert len(set(names)) == len(names)


def test_resources_come_after_the_secrets_they_reference(result: Migration) -> None:
    kinds = [d["kind"] for d in result.manifests]
    assert kinds.index(contract.KIND_UPSTREAM) > kinds.index("Secret")
    assert max(i for i, k in enumerate(kinds) if k == contract.KIND_USER) < kinds.index(
        contract.KIND_ALLOCATION
    )


def test_sqlite_cli_dump_style_gives_the_same_manifests(result: Migration) -> None:
    """`sqlite3 db .dump` (BEGIN TRANSACTION ... COMMIT, bare INSERTs, sqlite_sequence rows)
    of the same data, e.g. from a local `wrangler d1` database, migrates identically."""
    db = load_dump(DUMP.read_text())
    text = "-- exported locally\n" + "\n".join(db.iterdump())
    assert "BEGIN TRANSACTION;" in text and 'INSERT INTO "sqlite_sequence"' in text
    assert migrate(text, namespace="team").manifests == result.manifests


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("CREATE TABLE users (id INTEGER PRIMARY KEY, personal_token TEXT);", "no table 'tokens'"),
        ("this is not sql;", "cannot load the dump"),
        ("CREATE TABLE tokens (id INTEGER", "ends inside a statement"),
        ("ATTACH DATABASE '/etc/passwd' AS p;", "may only create tables and insert rows; refused ATTACH"),
        ("ATTACH DATABASE 'file:x?mode=memory' AS p;", "refused ATTACH"),
        (
            "CREATE TABLE t (a);\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;",
            "refused CREATE TRIGGER",
        ),
        ("CREATE VIEW v AS SELECT 1;", "refused CREATE VIEW"),
        ("PRAGMA writable_schema = 1;", "refused PRAGMA writable_schema"),
        (
            "CREATE TABLE t (a);\nINSERT INTO t VALUES (load_extension('x'));",
            "refused FUNCTION load_extension",
        ),
        ("CREATE TABLE t (a);\nUPDATE t SET a = 1;", "refused UPDATE t"),
    ],
)
def test_bad_dumps_raise_clear_errors(sql: str, message: str) -> None:
    with pytest.raises(MigrationError, match=message):
        migrate(sql)


def test_cli_writes_yaml_file_readable_only_by_owner(tmp_path: Path) -> None:
    out = tmp_path / "migrated.yaml"
    res = CliRunner().invoke(app, ["migrate", str(DUMP), "-o", str(out), "--namespace", "team"])
    assert res.exit_code == 0, res.output
    docs = list(yaml.safe_load_all(out.read_text()))
    assert len(docs) == len(migrate(DUMP.read_text()).manifests)
    assert out.stat().st_mode & 0o077 == 0  # it holds credentials
    assert "user-3" in res.output  # warnings are shown to the person migrating
    assert ALICE_PT not in res.output


def test_cli_prints_to_stdout_and_rejects_bad_dumps(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["migrate", str(DUMP)])
    assert res.exit_code == 0
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    secret = next(d for d in docs if d["kind"] == "Secret")
    # stringData: plain text the person migrating can review before applying.
    assert set(secret["stringData"]) == {"token"}
    bad = tmp_path / "bad.sql"
    bad.write_text("CREATE TABLE unrelated (id INTEGER);")
    res = CliRunner().invoke(app, ["migrate", str(bad)])
    assert res.exit_code == 2
    assert "no table" in res.output
