"""The chart's RBAC applied to a real API server: each identity can do what it needs, and no more.

The rendered ServiceAccounts, Roles, ClusterRoles and bindings are applied for real into a test
namespace; the authorizer is then asked (SubjectAccessReview) and, for the proxy, real requests
are made with a TokenRequest token of its ServiceAccount.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import kubernetes
import pytest
from kubernetes.client.rest import ApiException

from tests.support.kube_identities import bind, can
from tests.support.rbac import Access, Identities, service_account_can
from tokenpool.contract import compiled as contract

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TP = contract.GROUP
OTHER = "kube-system"  # "another namespace": exists on every API server


def _access(verb: str, resource: str, where: str | None, ns: str) -> Access:
    """``resource`` is ``[group:]plural[/subresource]``; ``where``: "ns", "other" or None (cluster)."""
    group, _, rest = resource.rpartition(":")
    plural, _, sub = rest.partition("/")
    namespace = {"ns": ns, "other": OTHER, None: None}[where]
    return Access(verb, plural, group, sub, namespace)


PROXY_ALLOWED = [
    *[(v, "secrets", "ns") for v in ("get", "list", "watch")],
    *[(v, f"{TP}:{r}", "ns") for v in ("get", "list", "watch") for r in ("poolusers", "upstreamtokens")],
    ("patch", f"{TP}:poolusers/status", "ns"),
    ("patch", f"{TP}:upstreamtokens/status", "ns"),
]
PROXY_DENIED = [
    # Secrets: no writes at all, no reads outside its namespace.
    *[(v, "secrets", "ns") for v in ("create", "update", "patch", "delete", "deletecollection")],
    *[(v, "secrets", "other") for v in ("get", "list", "watch")],
    ("list", "secrets", None),
    # CRs: never the spec, never create/delete, never another namespace's status.
    *[
        (v, f"{TP}:{r}", "ns")
        for v in ("create", "update", "patch", "delete")
        for r in ("poolusers", "upstreamtokens")
    ],
    ("patch", f"{TP}:tokenallocations/status", "ns"),
    ("update", f"{TP}:poolusers/status", "ns"),
    ("update", f"{TP}:tokenallocations", "ns"),
    ("patch", f"{TP}:poolusers/status", "other"),
    ("list", f"{TP}:poolusers", None),
    # Nothing else in the namespace or the cluster.
    # Routes are Secrets: ConfigMaps are none of its business.
    *[(v, "configmaps", "ns") for v in ("get", "list", "watch", "create", "update", "patch", "delete")],
    ("list", "configmaps", "other"),
    ("create", "pods", "ns"),
    ("create", "pods/exec", "ns"),
    ("create", "serviceaccounts/token", "ns"),
    ("list", "namespaces", None),
    ("create", "rbac.authorization.k8s.io:rolebindings", "ns"),
    ("create", "events", "ns"),
]
OPERATOR_ALLOWED = [
    *[
        (v, f"{TP}:{r}", "ns")
        for v in ("get", "list", "watch")
        for r in ("poolusers", "upstreamtokens", "tokenallocations")
    ],
    *[("patch", f"{TP}:{r}/status", "ns") for r in ("poolusers", "upstreamtokens", "tokenallocations")],
    *[
        (v, r, "ns")
        for v in ("get", "list", "watch", "create", "update", "delete")
        for r in ("secrets", "configmaps")
    ],
    ("create", "events", "ns"),
    ("list", "apiextensions.k8s.io:customresourcedefinitions", None),
    ("watch", "apiextensions.k8s.io:customresourcedefinitions", None),
    ("list", "namespaces", None),
    ("watch", "namespaces", None),
]
OPERATOR_DENIED = [
    *[(v, "secrets", "other") for v in ("get", "list", "create")],
    ("list", "secrets", None),
    ("list", "configmaps", "other"),
    # Specs are the admins': the operator reads them and writes only status.
    *[
        (v, f"{TP}:{r}", "ns")
        for v in ("create", "update", "patch", "delete")
        for r in ("poolusers", "tokenallocations")
    ],
    ("update", f"{TP}:poolusers/status", "ns"),
    ("patch", f"{TP}:poolusers", "other"),
    ("create", "apiextensions.k8s.io:customresourcedefinitions", None),
    ("delete", "apiextensions.k8s.io:customresourcedefinitions", None),
    ("update", "apiextensions.k8s.io:customresourcedefinitions", None),
    ("create", "pods", "ns"),
    ("create", "serviceaccounts/token", "ns"),
    ("create", "rbac.authorization.k8s.io:roles", "ns"),
    ("list", "nodes", None),
    *[(v, "namespaces", None) for v in ("create", "update", "patch", "delete")],
]


CRS = ("poolusers", "upstreamtokens", "tokenallocations")
CONSOLE_ALLOWED = [
    *[(v, f"{TP}:{r}", "ns") for v in ("get", "list", "watch", "create", "patch", "delete") for r in CRS],
    *[(v, "secrets", "ns") for v in ("get", "create", "patch")],
    ("create", "configmaps", "ns"),
    ("create", "events", "ns"),
    ("create", "authentication.k8s.io:tokenreviews", None),
    ("create", "authorization.k8s.io:subjectaccessreviews", None),
    ("impersonate", "users", None),
    ("impersonate", "groups", None),
    ("impersonate", "serviceaccounts", "other"),
]
CONSOLE_DENIED = [
    # Secrets: only by name, never listed, watched, replaced or deleted; none elsewhere.
    *[(v, "secrets", "ns") for v in ("list", "watch", "update", "delete", "deletecollection")],
    *[(v, "secrets", "other") for v in ("get", "create")],
    # The custom resources: only in its namespace, never their status or a replace.
    *[(v, f"{TP}:{r}", "other") for v in ("get", "list", "create", "patch", "delete") for r in CRS],
    *[("patch", f"{TP}:{r}/status", "ns") for r in CRS],
    ("update", f"{TP}:poolusers", "ns"),
    ("deletecollection", f"{TP}:poolusers", "ns"),
    # ConfigMaps: no reads (but its invitations by name), no edits; logins use PoolUser status.
    *[(v, "configmaps", "ns") for v in ("get", "list", "watch", "update", "patch", "delete")],
    ("list", "configmaps", "other"),
    ("create", "pods", "ns"),
    ("create", "serviceaccounts/token", "ns"),
    ("create", "rbac.authorization.k8s.io:rolebindings", "ns"),
    ("list", "namespaces", None),
    ("create", "apiextensions.k8s.io:customresourcedefinitions", None),
]


def _check(
    api: kubernetes.client.ApiClient, ids: Identities, sa: str, table: Sequence[tuple[str, str, str | None]]
) -> list[str]:
    """The entries of ``table`` whose answer differs from what the name of the table says."""
    return [
        str(a)
        for v, r, w in table
        if not service_account_can(api, ids.namespace, sa, a := _access(v, r, w, ids.namespace))
    ]


def _allowed(
    api: kubernetes.client.ApiClient, ids: Identities, sa: str, table: Sequence[tuple[str, str, str | None]]
) -> list[str]:
    return [
        str(a)
        for v, r, w in table
        if service_account_can(api, ids.namespace, sa, a := _access(v, r, w, ids.namespace))
    ]


def test_proxy_can_read_routes_and_patch_status(
    kube_api: kubernetes.client.ApiClient, chart_rbac: Identities
) -> None:
    assert _check(kube_api, chart_rbac, chart_rbac.proxy, PROXY_ALLOWED) == []


def test_proxy_can_do_nothing_else(kube_api: kubernetes.client.ApiClient, chart_rbac: Identities) -> None:
    assert _allowed(kube_api, chart_rbac, chart_rbac.proxy, PROXY_DENIED) == []


def test_operator_can_manage_its_resources(
    kube_api: kubernetes.client.ApiClient, chart_rbac: Identities
) -> None:
    assert _check(kube_api, chart_rbac, chart_rbac.operator, OPERATOR_ALLOWED) == []


def test_operator_can_do_nothing_else(kube_api: kubernetes.client.ApiClient, chart_rbac: Identities) -> None:
    assert _allowed(kube_api, chart_rbac, chart_rbac.operator, OPERATOR_DENIED) == []


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_proxy_token_really_is_confined(
    kube_api: kubernetes.client.ApiClient,
    chart_rbac: Identities,
    sa_api_client: Callable[[str, str], kubernetes.client.ApiClient],
) -> None:
    """Real requests with the proxy ServiceAccount's TokenRequest token, not just the authorizer's word."""
    ns = chart_rbac.namespace
    admin_crs = kubernetes.client.CustomObjectsApi(kube_api)
    user: Any = admin_crs.create_namespaced_custom_object(
        TP,
        contract.VERSION,
        ns,
        contract.PLURAL_USER,
        {
            "apiVersion": contract.API_VERSION,
            "kind": contract.KIND_USER,
            "metadata": {"name": "alice"},
            "spec": {},
        },
    )
    as_proxy = sa_api_client(ns, chart_rbac.proxy)
    core = kubernetes.client.CoreV1Api(as_proxy)
    crs = kubernetes.client.CustomObjectsApi(as_proxy)
    secret = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="stolen"), string_data={"a": "b"}
    )

    # Routes are Secrets only: ConfigMaps (which many more people may create) are not even read.
    assert _status(lambda: core.list_namespaced_config_map(ns, label_selector=contract.LABEL_ROUTE)) == 403
    assert _status(lambda: core.list_namespaced_secret(ns, label_selector=contract.LABEL_ROUTE)) == 200
    assert _status(lambda: core.create_namespaced_secret(ns, secret)) == 403
    assert _status(lambda: core.list_namespaced_secret(OTHER)) == 403
    assert _status(lambda: core.list_secret_for_all_namespaces()) == 403
    spec_patch = {"spec": {"role": "Admin"}}
    assert (
        _status(
            lambda: crs.patch_namespaced_custom_object(
                TP, contract.VERSION, ns, contract.PLURAL_USER, "alice", spec_patch
            )
        )
        == 403
    )
    status_patch = {"status": {"usage": {"total": {"requests": 1}}}}
    assert (
        _status(
            lambda: crs.patch_namespaced_custom_object_status(
                TP, contract.VERSION, ns, contract.PLURAL_USER, "alice", status_patch
            )
        )
        == 200
    )
    after: Any = admin_crs.get_namespaced_custom_object(
        TP, contract.VERSION, ns, contract.PLURAL_USER, "alice"
    )
    assert after["spec"] == user["spec"], "the spec must be unchanged"


def test_console_can_do_its_job(kube_api: kubernetes.client.ApiClient, chart_rbac: Identities) -> None:
    assert _check(kube_api, chart_rbac, chart_rbac.console, CONSOLE_ALLOWED) == []


def test_console_can_do_nothing_else(kube_api: kubernetes.client.ApiClient, chart_rbac: Identities) -> None:
    assert _allowed(kube_api, chart_rbac, chart_rbac.console, CONSOLE_DENIED) == []


def test_console_reads_only_its_own_configmap_by_name(
    kube_api: kubernetes.client.ApiClient, chart_rbac: Identities
) -> None:
    ns = chart_rbac.namespace
    mine = Access("get", "configmaps", "", "", ns, "tokenpool-console-invitations")
    other = Access("update", "configmaps", "", "", ns, "tokenpool-user-alice")
    assert service_account_can(kube_api, ns, chart_rbac.console, mine)
    assert not service_account_can(kube_api, ns, chart_rbac.console, other)


def test_pool_roles_for_people(kube_api: kubernetes.client.ApiClient, chart_rbac: Identities) -> None:
    """The admin/viewer ClusterRoles, bound in the namespace, give people what the console's
    Kubernetes login checks for (docs/console.md)."""
    ns = chart_rbac.namespace
    bind(kube_api, ns, "pat", chart_rbac.pool_admin_role)
    bind(kube_api, ns, "val", chart_rbac.pool_viewer_role)
    pat, val = f"system:serviceaccount:{ns}:pat", f"system:serviceaccount:{ns}:val"
    for verb in ("list", "create", "patch", "delete"):
        assert can(kube_api, pat, ns, verb, "poolusers", TP)
    assert can(kube_api, pat, ns, "get", "secrets", "")
    assert not can(kube_api, pat, OTHER, "list", "poolusers", TP)
    assert can(kube_api, val, ns, "list", "upstreamtokens", TP)
    assert not can(kube_api, val, ns, "patch", "poolusers", TP)
    assert not can(kube_api, val, ns, "get", "secrets", "")
