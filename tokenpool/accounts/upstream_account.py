"""Creating an upstream account: its credential Secret and the UpstreamToken that names it.

The one definition of the sequence every way of adding an account ends in (the CLI's
``tokenpool tokens login``, the console's "Add an upstream account" box and its sign-in):

1. the Secret ``<name>-credential`` holding the access token (first, so the operator never sees a
   token without its Secret);
2. the UpstreamToken ``<name>`` naming it (on failure the Secret is removed again, best effort:
   the identity may create Secrets without being allowed to delete them);
3. the Secret made owned by the token, so deleting the token deletes its credential (on failure
   the token still works; only that clean-up is lost, which the caller is told).

Each caller passes its own client: the CLI the admin's, the console the writer of the person it
acts for (docs/console.md, "Who may do what"). Errors name the object, never a value: the access
token goes into the Secret and nowhere else.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from tokenpool.contract import compiled as contract
from tokenpool.kube.client import KubeClient, KubeError, core_path, cr_path

CREDENTIAL_SUFFIX = "-credential"
# On the credential Secret: which UpstreamToken it is for, and which tool made it.
LABEL_CREDENTIAL_FOR = "tokenpool.io/credential-for"


def credential_secret_name(token: str) -> str:
    return f"{token}{CREDENTIAL_SUFFIX}"


class CreateError(Exception):
    """Step 1 or 2 failed (nothing is left behind but, at worst, a Secret nobody could delete).
    ``what`` names the object ("Secret ns/name", "UpstreamToken ns/name"); ``error`` is the API
    server's answer."""

    def __init__(self, what: str, error: KubeError) -> None:
        super().__init__(f"{what}: {error.status} {error.reason}")
        self.what, self.error = what, error


@dataclass(frozen=True)
class Created:
    token: dict[str, Any]  # the UpstreamToken as the API server returned it
    secret_name: str
    # Why step 3 was refused (the Secret stays when the token is deleted), or None.
    owner_error: KubeError | None = None


async def create_upstream_token(
    kube: KubeClient,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    credential: str,
    labels: dict[str, str] | None = None,
    managed_by: str = "",
) -> Created:
    """The three steps above. ``spec`` is the UpstreamToken's spec without
    ``credentialSecretRef`` (set here); ``managed_by`` labels the Secret with the tool that made it."""
    secret_name = credential_secret_name(name)
    secret_labels = {LABEL_CREDENTIAL_FOR: name}
    if managed_by:
        secret_labels[contract.LABEL_MANAGED_BY] = managed_by
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name, "namespace": namespace, "labels": secret_labels},
        "stringData": {contract.DEFAULT_CREDENTIAL_KEY: credential},
    }
    token_metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        token_metadata["labels"] = labels
    token = {
        "apiVersion": contract.API_VERSION,
        "kind": contract.KIND_UPSTREAM,
        "metadata": token_metadata,
        "spec": {
            **spec,
            "credentialSecretRef": {"name": secret_name, "key": contract.DEFAULT_CREDENTIAL_KEY},
        },
    }
    secret_what = f"Secret {namespace}/{secret_name}"
    token_what = f"{contract.KIND_UPSTREAM} {namespace}/{name}"
    try:
        if await kube.create(core_path(namespace, "secrets"), secret) is None:
            raise KubeError(404, "NotFound", f"namespace {namespace!r} not found")
    except KubeError as exc:
        raise CreateError(secret_what, exc) from None
    try:
        created = await kube.create(cr_path(namespace, contract.PLURAL_UPSTREAM), token)
        if created is None:
            raise KubeError(404, "NotFound", "the UpstreamToken resource is not served (CRDs installed?)")
    except KubeError as exc:
        with contextlib.suppress(KubeError):
            await kube.delete(core_path(namespace, "secrets", secret_name))
        raise CreateError(token_what, exc) from None
    owner = {
        "apiVersion": contract.API_VERSION,
        "kind": contract.KIND_UPSTREAM,
        "name": name,
        "uid": created["metadata"]["uid"],
    }
    try:
        await kube.merge_patch(
            core_path(namespace, "secrets", secret_name), {"metadata": {"ownerReferences": [owner]}}
        )
    except KubeError as exc:
        return Created(created, secret_name, exc)
    return Created(created, secret_name)
