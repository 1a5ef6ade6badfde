"""Asking the real API server's authorizer what a ServiceAccount may do (SubjectAccessReview)."""

from __future__ import annotations

from dataclasses import dataclass

import kubernetes


@dataclass(frozen=True)
class Identities:
    """The chart's ServiceAccounts, applied in ``namespace``, and its ClusterRoles for people."""

    namespace: str
    operator: str
    proxy: str
    console: str = ""
    pool_admin_role: str = ""
    pool_viewer_role: str = ""


@dataclass(frozen=True)
class Access:
    """One request a ServiceAccount might make: ``verb`` on ``group/resource[/subresource]``,
    in ``namespace`` (None: cluster-scoped)."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str = ""

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = f" in {self.namespace}" if self.namespace else " (cluster)"
        return f"{self.verb} {self.group or 'core'}/{res}{where}"


def service_account_can(
    api: kubernetes.client.ApiClient, sa_namespace: str, sa_name: str, access: Access
) -> bool:
    """Whether the authorizer allows ``access`` for system:serviceaccount:<ns>:<name>."""
    review = kubernetes.client.V1SubjectAccessReview(
        spec=kubernetes.client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{sa_namespace}:{sa_name}",
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{sa_namespace}",
                "system:authenticated",
            ],
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                verb=access.verb,
                group=access.group,
                resource=access.resource,
                subresource=access.subresource or None,
                namespace=access.namespace,
                name=access.name or None,
            ),
        )
    )
    result = kubernetes.client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(result.status and result.status.allowed)
