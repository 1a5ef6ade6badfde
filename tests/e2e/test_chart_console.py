"""The console in the chart as helm renders it: its Deployment, its least-privilege RBAC (the
cluster-wide part only with Kubernetes logins), the ClusterRoles for people, Ingress under a
base path. test_chart_rbac.py applies the same RBAC to a real API server."""

from __future__ import annotations

from tests.support.helm import Helm, Manifest, by_kind, container, env_of, one


def _grants(role: Manifest) -> set[tuple[str, str, str, str]]:
    return {
        (g, r, v, ",".join(rule.get("resourceNames", [])))
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_console_is_one_recreated_replica_with_its_settings(default_render: list[Manifest]) -> None:
    dep = one(default_render, "Deployment", "console")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    c = container(dep)
    assert c["args"] == ["console"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = env_of(dep)
    assert env["TOKENPOOL_CONSOLE_NAMESPACES"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["TOKENPOOL_CONSOLE_JOIN"] == "off"
    assert env["TOKENPOOL_CONSOLE_COOKIE_SECURE"] == "true"
    assert (env["TOKENPOOL_CONSOLE_DEFAULT_QUOTA"], env["TOKENPOOL_CONSOLE_MAX_QUOTA"]) == ("3", "10")
    pod = dep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == one(default_render, "ServiceAccount", "console")["metadata"]["name"]
    svc = one(default_render, "Service", "console")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_console_role_is_least_privilege(default_render: list[Manifest]) -> None:
    grants = _grants(one(default_render, "Role", "console"))
    crs = {
        ("tokenpool.io", r, v, "")
        for r in ("poolusers", "upstreamtokens", "tokenallocations")
        for v in ("get", "list", "watch", "create", "patch", "delete")
    }
    assert grants == crs | {
        ("", "secrets", "get", ""),
        ("", "secrets", "create", ""),
        ("", "secrets", "patch", ""),
        ("", "configmaps", "create", ""),
        ("", "configmaps", "get", "tokenpool-console-invitations"),
        ("", "configmaps", "update", "tokenpool-console-invitations"),
        ("", "events", "create", ""),
    }


def test_kubernetes_logins_bring_the_only_cluster_grants(helm: Helm, default_render: list[Manifest]) -> None:
    cluster = _grants(one(default_render, "ClusterRole", "console"))
    assert cluster == {
        ("authentication.k8s.io", "tokenreviews", "create", ""),
        ("authorization.k8s.io", "subjectaccessreviews", "create", ""),
        ("", "users", "impersonate", ""),
        ("", "groups", "impersonate", ""),
        ("", "serviceaccounts", "impersonate", ""),
    }
    off = helm.template(set_values={"console.kubernetesLogin": "false"})
    console_cluster = [m for m in by_kind(off, "ClusterRole") if "console" in m["metadata"]["name"]]
    assert console_cluster == []
    assert by_kind(off, "ClusterRoleBinding") == [one(off, "ClusterRoleBinding", "operator")]
    assert env_of(one(off, "Deployment", "console"))["TOKENPOOL_CONSOLE_KUBERNETES_LOGIN"] == "false"


def test_pool_roles_for_people(helm: Helm) -> None:
    rendered = helm.template(release="tokenpool")
    roles = {m["metadata"]["name"]: _grants(m) for m in by_kind(rendered, "ClusterRole")}
    admin, viewer = roles["tokenpool-admin"], roles["tokenpool-viewer"]
    assert {v for g, _, v, _ in viewer} == {"get", "list", "watch"}
    assert all(g == "tokenpool.io" for g, *_ in viewer)
    assert ("tokenpool.io", "poolusers", "delete", "") in admin
    assert {(r, v) for g, r, v, _ in admin if g == ""} == {
        ("secrets", "get"),
        ("secrets", "create"),
        ("secrets", "patch"),
    }
    none = helm.template(release="tokenpool", set_values={"rbac.poolRoles": "false"})
    assert not {"tokenpool-admin", "tokenpool-viewer"} & {
        m["metadata"]["name"] for m in by_kind(none, "ClusterRole")
    }


def test_console_can_be_left_out(helm: Helm) -> None:
    rendered = helm.template(set_values={"console.enabled": "false"})
    assert [
        m for m in rendered if m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "console"
    ] == []


def test_console_ingress_under_the_proxy_host(all_features_render: list[Manifest]) -> None:
    ing = one(all_features_render, "Ingress", "console")
    [rule] = ing["spec"]["rules"]
    assert rule["host"] == "tokenpool.example.com"
    assert rule["http"]["paths"][0]["path"] == "/console"
    dep = one(all_features_render, "Deployment", "console")
    assert env_of(dep)["TOKENPOOL_CONSOLE_BASE_PATH"] == "/console"
    assert env_of(dep)["TOKENPOOL_CONSOLE_JOIN"] == "invitation"
    np = one(all_features_render, "NetworkPolicy", "console")
    assert np["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8090}]
    assert {p["port"] for r in np["spec"]["egress"] for p in r["ports"]} == {53, 443, 6443}
    upstream = [
        r for r in np["spec"]["egress"] if any("except" in t.get("ipBlock", {}) for t in r.get("to", ()))
    ]
    assert upstream, "the console reaches Augment tenants (sign-in code exchange)"
    assert env_of(dep)["TOKENPOOL_CONSOLE_AUGMENT_TENANT_HOSTS"] == "*.augmentcode.com"
