"""The operator's cache: reverse lookups stay right through updates and deletions."""

from __future__ import annotations

import time

from tokenpool_operator.cache import Cache


def body(name: str, **spec: object) -> dict:
    return {"metadata": {"namespace": "ns", "name": name}, "spec": spec}


def test_reverse_lookups_follow_updates_and_deletes() -> None:
    cache = Cache()
    cache.put("allocation", body("a1", user="alice", tokens=["t1", "t2"]))
    cache.put("allocation", body("a2", user="alice", tokens=["t1"]))
    assert cache.namers[("ns", "t1")] == {"alice"} and cache.allocation_user("ns", "a1") == "alice"
    assert sorted(a["metadata"]["name"] for a in cache.user_allocations("ns", "alice")) == ["a1", "a2"]
    cache.drop("allocation", "ns", "a1")
    assert cache.namers == {("ns", "t1"): {"alice"}}  # a2 still names t1; nobody names t2
    cache.drop("allocation", "ns", "a2")
    assert cache.namers == {} and cache.by_user == {}

    cache.put("token", body("t1", credentialSecretRef={"name": "cred-a"}))
    cache.put("token", body("t1", credentialSecretRef={"name": "cred-b"}))  # moved to another Secret
    assert cache.token_secrets == {("ns", "cred-b"): {"t1"}}
    cache.put("user", body("bob", personalTokenSecretRef={"name": "bob-pt"}))
    assert cache.user_secrets == {("ns", "bob-pt"): {"bob"}}
    cache.put("user", body("bob"))
    assert cache.user_secrets == {}


def test_ghosts_are_only_objects_missing_from_a_listing_and_not_updated_since() -> None:
    cache = Cache()
    cache.put("user", body("gone"))
    cache.put("user", body("kept"))
    since = time.monotonic()
    cache.put("user", body("new"))  # created after the listing started: not a ghost
    assert cache.ghosts("user", {("ns", "kept")}, since) == [("ns", "gone")]
