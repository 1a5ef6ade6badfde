"""The one path of every console write to a custom resource: authorize, refuse GitOps-managed
objects (with the change to commit instead), write as the right identity, fold the answer into
the mirror, record an Event."""

from __future__ import annotations

from typing import Any

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeError, cr_path

from . import gitops, problems
from .backend import Backend
from .callers import Caller

# plural -> (kind, the mirror's name for it)
KINDS = {
    contract.PLURAL_USER: (contract.KIND_USER, "users"),
    contract.PLURAL_UPSTREAM: (contract.KIND_UPSTREAM, "tokens"),
    contract.PLURAL_ALLOCATION: (contract.KIND_ALLOCATION, "allocations"),
}


def row(b: Backend, ns: str, plural: str, name: str) -> Any:
    pool = b.mirror.pool(ns)
    found = getattr(pool, KINDS[plural][1]).get(name)
    if found is None:
        raise problems.not_found(f"{KINDS[plural][0]} {name!r}")
    return found


def refuse_gitops(found: Any, plural: str, patch: dict[str, Any] | None) -> None:
    """409 for an object a GitOps tool owns, carrying the YAML to commit (None: a deletion)."""
    tool = found.meta.gitops
    if not tool:
        return
    kind = KINDS[plural][0]
    if patch is None:
        message = f"{kind} {found.name!r} is managed by {tool}: remove it from Git instead"
        raise problems.Problem(409, "ManagedByGitOps", message, tool=tool)
    change = gitops.change_to_commit(contract.API_VERSION, kind, found.name, found.meta.namespace, patch)
    message = f"{kind} {found.name!r} is managed by {tool}: commit this change to Git instead"
    raise problems.Problem(409, "ManagedByGitOps", message, tool=tool, change=change)


async def patch(
    b: Backend,
    caller: Caller,
    ns: str,
    plural: str,
    name: str,
    body: dict[str, Any],
    reason: str,
    message: str,
    spec_change: bool = True,
) -> dict[str, Any]:
    """Merge-patch ``body`` into an object. ``spec_change=False`` (an annotation that asks for
    something, e.g. a rotation) is allowed on GitOps-managed objects: controllers leave fields
    they do not own alone."""
    await b.access.check(caller, ns, "patch", plural, name)
    found = row(b, ns, plural, name)
    if spec_change:
        refuse_gitops(found, plural, body)
    what = f"{KINDS[plural][0]} {name!r}"
    try:
        obj = await b.access.writer(caller).merge_patch(cr_path(ns, plural, name), body)
    except KubeError as exc:
        raise problems.from_kube(exc, what) from exc
    if obj is None:
        raise problems.not_found(what)
    b.mirror.observe(KINDS[plural][1], obj)
    await b.access.record(caller, obj, reason, message)
    return obj


async def create(
    b: Backend,
    caller: Caller,
    ns: str,
    plural: str,
    name: str,
    metadata: dict[str, Any],
    spec: dict[str, Any],
    reason: str,
) -> dict[str, Any]:
    await b.access.check(caller, ns, "create", plural)
    kind = KINDS[plural][0]
    body = {
        "apiVersion": contract.API_VERSION,
        "kind": kind,
        "metadata": {**metadata, "name": name, "namespace": ns},
        "spec": spec,
    }
    try:
        obj = await b.access.writer(caller).create(cr_path(ns, plural), body)
    except KubeError as exc:
        raise problems.from_kube(exc, f"{kind} {name!r}") from exc
    assert obj is not None
    await created(b, caller, plural, obj, reason, f"{kind} created")
    return obj


async def created(
    b: Backend, caller: Caller, plural: str, obj: dict[str, Any], reason: str, message: str
) -> None:
    """After a create made elsewhere (an account with its Secret): the answer folded into the
    mirror, an Event naming the person."""
    b.mirror.observe(KINDS[plural][1], obj)
    await b.access.record(caller, obj, reason, message)


async def delete(b: Backend, caller: Caller, ns: str, plural: str, name: str, reason: str) -> None:
    await b.access.check(caller, ns, "delete", plural, name)
    found = row(b, ns, plural, name)
    refuse_gitops(found, plural, None)
    kind = KINDS[plural][0]
    try:
        await b.access.writer(caller).delete(cr_path(ns, plural, name))
    except KubeError as exc:
        raise problems.from_kube(exc, f"{kind} {name!r}") from exc
    b.mirror.forget(KINDS[plural][1], ns, name)
    obj = {
        "apiVersion": contract.API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": found.meta.uid},
    }
    await b.access.record(caller, obj, reason, f"{kind} deleted")
