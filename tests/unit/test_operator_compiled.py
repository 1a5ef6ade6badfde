"""Owned-object bookkeeping: content hashes recomputed from data, resourceVersion ordering."""

from __future__ import annotations

from tokenpool_operator.writer import Writer, _newer, _owned_with, b64

from tokenpool.contract import compiled as c

OWNER = {"kind": "PoolUser", "metadata": {"name": "alice", "namespace": "ns", "uid": "u-1"}}


def compiled(data: dict[str, str], secret: bool = False) -> dict:
    meta = c.compiled_metadata("obj", c.ROUTE_USER, OWNER, data)
    if secret:
        return {
            "kind": "Secret",
            "type": "Opaque",
            "metadata": meta,
            "data": {k: b64(v) for k, v in data.items()},
        }
    return {"kind": "ConfigMap", "metadata": meta, "data": data}


def test_owned_with_recomputes_the_hash_from_the_data() -> None:
    data = {"route.json": '{"user":"alice"}'}
    digest = c.content_hash(data)
    for secret in (False, True):
        obj = compiled(data, secret)
        assert _owned_with(obj, digest, OWNER)
        edited = {**obj, "data": {"route.json": b64("{}") if secret else "{}"}}  # annotation left alone
        assert not _owned_with(edited, digest, OWNER)
    other_owner = {"metadata": {**OWNER["metadata"], "uid": "u-2"}}
    assert not _owned_with(compiled(data), digest, other_owner)


def test_newer_resource_versions() -> None:
    assert _newer("11", "9") and not _newer("9", "11") and not _newer("5", "5")
    assert _newer("abc", "abd") and not _newer("abc", "abc")


def test_remember_ignores_late_watch_events() -> None:
    writer = Writer.__new__(Writer)
    writer._owned = {}
    new = {"metadata": {"namespace": "ns", "name": "x", "resourceVersion": "20"}}
    old = {"metadata": {"namespace": "ns", "name": "x", "resourceVersion": "19"}}
    assert writer.remember("secrets", new)
    assert not writer.remember("secrets", old)
    assert not writer.remember("secrets", new)
    assert writer._owned[("secrets", "ns", "x")] is new
