"""Kubernetes identities for console tests: ServiceAccounts with real TokenRequest tokens, bound
(or not) to a ClusterRole in a namespace."""

from __future__ import annotations

import kubernetes
from kubernetes.client.rest import ApiException


def service_account_token(
    api: kubernetes.client.ApiClient, namespace: str, name: str, seconds: int = 3600
) -> str:
    """Create the ServiceAccount if needed; a fresh token for it (audience: the API server)."""
    core = kubernetes.client.CoreV1Api(api)
    try:
        core.create_namespaced_service_account(
            namespace, kubernetes.client.V1ServiceAccount(metadata=kubernetes.client.V1ObjectMeta(name=name))
        )
    except ApiException as exc:
        if exc.status != 409:
            raise
    request = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    status = core.create_namespaced_service_account_token(name, namespace, request).status
    assert status is not None and status.token
    return str(status.token)


def bind(api: kubernetes.client.ApiClient, namespace: str, sa: str, cluster_role: str) -> str:
    """RoleBinding of ``cluster_role`` to ServiceAccount ``sa`` in ``namespace``; its name."""
    name = f"{sa}-{cluster_role}"[:63]
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
    }
    kubernetes.client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(namespace, body)
    return name


def unbind(api: kubernetes.client.ApiClient, namespace: str, name: str) -> None:
    kubernetes.client.RbacAuthorizationV1Api(api).delete_namespaced_role_binding(name, namespace)


def can(
    api: kubernetes.client.ApiClient, user: str, namespace: str, verb: str, resource: str, group: str
) -> bool:
    review = kubernetes.client.V1SubjectAccessReview(
        spec=kubernetes.client.V1SubjectAccessReviewSpec(
            user=user,
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                verb=verb, group=group, resource=resource, namespace=namespace
            ),
        )
    )
    result = kubernetes.client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(result.status and result.status.allowed)
