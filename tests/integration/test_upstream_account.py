"""The one definition of "create the credential Secret and the UpstreamToken"
(tokenpool/accounts/upstream_account.py), which the CLI's sign-in and the console's ways of adding
an account all end in, against the real API server: as an admin, and as an identity allowed to
create the two objects but not to patch or delete Secrets (what then stays behind, and what the
caller is told)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import kubernetes
import pytest

from tests.support.kube_identities import bind
from tests.support.tokenpool_objects import Pool
from tokenpool.accounts.upstream_account import LABEL_CREDENTIAL_FOR, CreateError, create_upstream_token
from tokenpool.contract import compiled as c
from tokenpool.kube.client import KubeClient

pytestmark = pytest.mark.integration
SPEC = {"provider": "Augment", "endpoint": "https://d3.api.augmentcode.com/", "maxConcurrency": 2}
VALUE = "access-token-0123456789-value"


@pytest.fixture
def creator_only(
    kube_api: kubernetes.client.ApiClient, namespace: str, sa_kubeconfig: Callable[[str, str], str]
) -> Iterator[str]:
    """A kubeconfig of a ServiceAccount that may create Secrets and UpstreamTokens, nothing else."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(kube_api)
    role = f"create-only-{namespace}"[:63]
    rbac.create_cluster_role(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
                {"apiGroups": [c.GROUP], "resources": [c.PLURAL_UPSTREAM], "verbs": ["create"]},
            ],
        }
    )
    try:
        bind(kube_api, namespace, "creator", role)
        yield sa_kubeconfig(namespace, "creator")
    finally:
        rbac.delete_cluster_role(role)


async def test_secret_token_and_owner_as_an_admin(
    kube_client: KubeClient, namespace: str, pool: Pool
) -> None:
    created = await create_upstream_token(
        kube_client, namespace, "acct-a", SPEC, VALUE, {"pool": "gold"}, managed_by="tool-x"
    )
    assert created.owner_error is None and created.secret_name == "acct-a-credential"
    token = pool.get(c.KIND_UPSTREAM, "acct-a")
    assert token["metadata"]["uid"] == created.token["metadata"]["uid"]
    assert token["metadata"]["labels"] == {"pool": "gold"}
    assert token["spec"]["credentialSecretRef"] == {"name": "acct-a-credential", "key": "token"}
    assert token["spec"]["maxConcurrency"] == 2 and token["spec"]["endpoint"] == SPEC["endpoint"]
    secret = pool.secret("acct-a-credential")
    assert secret is not None and pool.secret_value("acct-a-credential") == VALUE
    assert secret.metadata.labels == {LABEL_CREDENTIAL_FOR: "acct-a", c.LABEL_MANAGED_BY: "tool-x"}
    assert [(o.kind, o.name, o.uid) for o in secret.metadata.owner_references] == [
        (c.KIND_UPSTREAM, "acct-a", token["metadata"]["uid"])
    ]


async def test_failures_name_the_object_and_clean_up_what_they_may(
    kube_client: KubeClient, namespace: str, pool: Pool
) -> None:
    pool.credential("busy-credential")
    with pytest.raises(CreateError) as secret_taken:
        await create_upstream_token(kube_client, namespace, "busy", SPEC, VALUE)
    assert (secret_taken.value.what, secret_taken.value.error.status) == (
        f"Secret {namespace}/busy-credential",
        409,
    )
    pool.credential("other")
    pool.token("dup", secret="other")
    with pytest.raises(CreateError) as token_taken:
        await create_upstream_token(kube_client, namespace, "dup", SPEC, VALUE)
    assert (token_taken.value.what, token_taken.value.error.status) == (f"UpstreamToken {namespace}/dup", 409)
    assert pool.secret("dup-credential") is None, "the Secret made for it was removed again"
    bad = {**SPEC, "endpoint": "ftp://nowhere/"}
    with pytest.raises(CreateError) as invalid:
        await create_upstream_token(kube_client, namespace, "bad", bad, VALUE)
    assert invalid.value.error.status == 422 and VALUE not in str(invalid.value)
    assert pool.secret("bad-credential") is None


async def test_an_identity_that_may_only_create(creator_only: str, namespace: str, pool: Pool) -> None:
    async with KubeClient.from_environment(creator_only) as kube:
        created = await create_upstream_token(kube, namespace, "mine", SPEC, VALUE)
        # The token works; only the clean-up on delete is lost, and the caller is told.
        assert created.owner_error is not None and created.owner_error.status == 403
        secret = pool.secret("mine-credential")
        assert secret is not None and not secret.metadata.owner_references
        assert pool.get(c.KIND_UPSTREAM, "mine")["spec"]["credentialSecretRef"]["name"] == "mine-credential"
        pool.credential("x")
        pool.token("taken", secret="x")
        with pytest.raises(CreateError) as taken:
            await create_upstream_token(kube, namespace, "taken", SPEC, VALUE)
        assert taken.value.error.status == 409
        # Best effort: this identity may not delete the Secret it made, so it stays.
        assert pool.secret("taken-credential") is not None
