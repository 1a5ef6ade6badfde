"""The chart as helm renders it: lint, defaults, every optional feature, schema, security.

These need the helm binary only; test_chart_apiserver.py sends the same renderings to a real
kube-apiserver.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helm import (
    ALL_FEATURES_VALUES,
    CHART,
    KUBE_VERSION,
    Helm,
    HelmError,
    Manifest,
    by_kind,
    container,
    env_of,
    one,
    parse_manifests,
    source_crds,
)

OPTIONAL_KINDS = {"HorizontalPodAutoscaler", "Ingress", "ServiceMonitor", "PodMonitor", "NetworkPolicy"}
RBAC_KINDS = {"Role", "ClusterRole"}


@pytest.mark.parametrize("values", [None, ALL_FEATURES_VALUES], ids=["defaults", "all-features"])
def test_helm_lint_is_clean(helm: Helm, values: Path | None) -> None:
    args = ["lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART)] + (
        ["--values", str(values)] if values else []
    )
    out = helm.run(*args)
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


def test_defaults_render_the_core_objects_only(default_render: list[Manifest]) -> None:
    kinds = {m["kind"] for m in default_render}
    assert kinds == {
        "CustomResourceDefinition",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    assert not kinds & OPTIONAL_KINDS


def test_operator_is_a_single_recreated_replica_with_liveness(default_render: list[Manifest]) -> None:
    op = one(default_render, "Deployment", "operator")
    assert op["spec"]["replicas"] == 1
    assert op["spec"]["strategy"] == {"type": "Recreate"}
    c = container(op)
    assert c["args"] == ["operator"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert (
        op["spec"]["template"]["spec"]["serviceAccountName"]
        == one(default_render, "ServiceAccount", "operator")["metadata"]["name"]
    )


def test_proxy_defaults_two_replicas_probes_pdb_and_service(default_render: list[Manifest]) -> None:
    px = one(default_render, "Deployment", "proxy")
    assert px["spec"]["replicas"] == 2
    c = container(px)
    assert c["args"] == ["proxy"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "ops"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "ops"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "ops": 9090}
    selector = px["spec"]["selector"]["matchLabels"]
    assert one(default_render, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    svc = one(default_render, "Service", "proxy")
    assert svc["spec"]["selector"] == selector
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    assert (
        px["spec"]["template"]["spec"]["serviceAccountName"]
        == one(default_render, "ServiceAccount", "proxy")["metadata"]["name"]
    )


def test_single_proxy_replica_gets_no_pdb(helm: Helm) -> None:
    rendered = helm.template(set_values={"proxy.replicas": "1"})
    assert one(rendered, "Deployment", "proxy")["spec"]["replicas"] == 1
    assert by_kind(rendered, "PodDisruptionBudget") == []


def test_all_features_render_every_optional_object(all_features_render: list[Manifest]) -> None:
    kinds = {m["kind"] for m in all_features_render}
    assert kinds >= OPTIONAL_KINDS | {"PodDisruptionBudget"}
    assert len(by_kind(all_features_render, "NetworkPolicy")) == 3

    px = one(all_features_render, "Deployment", "proxy")
    assert "replicas" not in px["spec"], "the HPA owns the replica count"
    hpa = one(all_features_render, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == px["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)

    ing = one(all_features_render, "Ingress", "proxy")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["rules"][0]["host"] == "tokenpool.example.com"
    assert ing["spec"]["tls"] == [{"hosts": ["tokenpool.example.com"], "secretName": "tokenpool-tls"}]

    sm = one(all_features_render, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    # Metrics are scraped on the operations port; the Ingress routes only to the public one.
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    svc_ports = {
        p["name"]: p["targetPort"] for p in one(all_features_render, "Service", "proxy")["spec"]["ports"]
    }
    assert svc_ports == {"http": "http", "metrics": "ops"}
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] == {"name": "http"}
    pm = one(all_features_render, "PodMonitor")  # the operator: no Service, metrics on its health port
    assert pm["metadata"]["labels"]["release"] == "prometheus"
    assert pm["spec"]["podMetricsEndpoints"] == [{"port": "health", "path": "/metrics", "interval": "15s"}]
    op_pod = one(all_features_render, "Deployment", "operator")["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= op_pod.items()

    image = container(px)["image"]
    assert image == "registry.example.com/tokenpool/tokenpool@sha256:" + "0123456789abcdef" * 4
    assert container(one(all_features_render, "Deployment", "operator"))["image"] == image
    pod = px["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert env_of(px)["EXTRA_PROXY_SETTING"] == {
        "configMapKeyRef": {"name": "extra", "key": "value", "optional": True}
    }
    assert all(m["metadata"]["labels"]["team"] == "platform" for m in all_features_render)


def test_proxy_network_policy_admits_only_the_proxy_port(all_features_render: list[Manifest]) -> None:
    px = one(all_features_render, "NetworkPolicy", "proxy")
    rule, metrics = px["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert len(rule["from"]) == 2
    # The operations port only for the scrapers (its ServiceMonitor is on in these values).
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert metrics["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    egress_ports = {p["port"] for r in px["spec"]["egress"] for p in r["ports"]}
    assert egress_ports == {53, 443, 6443}
    op = one(all_features_render, "NetworkPolicy", "operator")
    [rule] = op["spec"]["ingress"]  # with its PodMonitor on: only the health (metrics) port
    assert rule["ports"] == [{"protocol": "TCP", "port": 8081}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_operator_admits_no_ingress_without_its_pod_monitor(helm: Helm) -> None:
    op = one(helm.template(set_values={"networkPolicy.enabled": "true"}), "NetworkPolicy", "operator")
    assert op["spec"]["ingress"] == []


def test_crds_come_from_the_repository_and_are_kept(default_render: list[Manifest]) -> None:
    rendered = {c["metadata"]["name"]: c for c in by_kind(default_render, "CustomResourceDefinition")}
    sources = {c["metadata"]["name"]: c for c in source_crds()}
    assert sources, "crds/ holds no CustomResourceDefinition"
    assert rendered.keys() == sources.keys()
    for name, crd in rendered.items():
        assert crd["spec"] == sources[name]["spec"], f"{name} drifted from crds/"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_crds_can_be_left_out_or_not_kept(helm: Helm) -> None:
    assert by_kind(helm.template(set_values={"crds.enabled": "false"}), "CustomResourceDefinition") == []
    unkept = by_kind(helm.template(set_values={"crds.keep": "false"}), "CustomResourceDefinition")
    assert unkept
    assert all("helm.sh/resource-policy" not in c["metadata"].get("annotations", {}) for c in unkept)


@pytest.mark.parametrize("component", ["operator", "proxy", "console"])
def test_pods_are_locked_down(default_render: list[Manifest], component: str) -> None:
    dep = one(default_render, "Deployment", component)
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(dep)["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(dep)["resources"]["requests"]


@pytest.mark.parametrize("render", ["default_render", "all_features_render"])
def test_rbac_has_no_wildcards(request: pytest.FixtureRequest, render: str) -> None:
    manifests: list[Manifest] = request.getfixturevalue(render)
    roles = [m for m in manifests if m["kind"] in RBAC_KINDS]
    # Roles of operator, proxy, console; ClusterRoles of operator, console, and the pool's admin
    # and viewer roles for people.
    assert len(roles) == 7
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: wildcard in {key}"
            assert "nonResourceURLs" not in rule


def test_proxy_role_reads_routes_and_patches_only_status(default_render: list[Manifest]) -> None:
    rules = one(default_render, "Role", "proxy")["rules"]
    grants = {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    writes = {(g, r, v) for g, r, v in grants if v not in {"get", "list", "watch"}}
    assert writes == {
        ("tokenpool.io", "poolusers/status", "patch"),
        ("tokenpool.io", "upstreamtokens/status", "patch"),
    }
    assert {r for g, r, v in grants if g == ""} == {"secrets"}  # routes are Secrets only


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("proxy:\n  replicas: two\n", "at '/proxy/replicas': got string, want integer"),
        ("proxy:\n  replica: 3\n", "at '/proxy': additional properties 'replica' not allowed"),
        ("logging:\n  format: xml\n", "at '/logging/format': value must be one of 'json', 'text'"),
        ("image:\n  digest: latest\n", "at '/image/digest': 'latest' does not match pattern"),
        ("operator:\n  maxTokenQuota: 0\n", "at '/operator/maxTokenQuota': minimum: got 0, want 1"),
        ("proxy:\n  models: [{name: gpt}]\n", "at '/proxy/models/0': missing property 'id'"),
    ],
    ids=["wrong-type", "unknown-key", "bad-enum", "bad-digest", "below-minimum", "bad-model"],
)
def test_schema_violations_are_rejected_clearly(
    helm: Helm, tmp_path: Path, values: str, message: str
) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text(values)
    with pytest.raises(HelmError) as err:
        helm.template(bad)
    assert "values don't meet the specifications of the schema" in err.value.stderr
    assert message in err.value.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            {"proxy.ingress.enabled": "true", "proxy.ingress.tls.enabled": "true"},
            "proxy.ingress.tls.enabled requires proxy.ingress.host",
        ),
        (
            {
                "proxy.autoscaling.enabled": "true",
                "proxy.autoscaling.minReplicas": "5",
                "proxy.autoscaling.maxReplicas": "3",
            },
            "proxy.autoscaling.minReplicas must not exceed proxy.autoscaling.maxReplicas",
        ),
        (
            {"operator.defaultTokenQuota": "11"},
            "operator.defaultTokenQuota must not exceed operator.maxTokenQuota",
        ),
        (
            {"proxy.serviceAccount.create": "false"},
            "proxy.serviceAccount.name is required when proxy.serviceAccount.create=false",
        ),
    ],
    ids=["tls-without-host", "hpa-min-above-max", "quota-default-above-max", "sa-without-name"],
)
def test_inconsistent_values_are_refused_with_the_reason(
    helm: Helm, sets: dict[str, str], message: str
) -> None:
    with pytest.raises(HelmError) as err:
        helm.template(set_values=sets)
    assert message in err.value.stderr


def test_existing_service_accounts_can_be_used(helm: Helm) -> None:
    rendered = helm.template(
        set_values={
            "operator.serviceAccount.create": "false",
            "operator.serviceAccount.name": "platform-operator",
            "proxy.serviceAccount.create": "false",
            "proxy.serviceAccount.name": "platform-proxy",
            "console.serviceAccount.create": "false",
            "console.serviceAccount.name": "platform-console",
        }
    )
    assert by_kind(rendered, "ServiceAccount") == []
    assert (
        one(rendered, "Deployment", "proxy")["spec"]["template"]["spec"]["serviceAccountName"]
        == "platform-proxy"
    )
    binding = one(rendered, "RoleBinding", "operator")
    assert binding["subjects"][0]["name"] == "platform-operator"


def test_packaged_chart_carries_the_crds_themselves(helm: Helm, tmp_path: Path) -> None:
    """`helm package` follows the files/crds symlink: the archive renders without the repository."""
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    [archive] = tmp_path.glob("tokenpool-*.tgz")
    out = helm.run("template", "tp", str(archive), "--kube-version", KUBE_VERSION)
    names = {m["metadata"]["name"] for m in by_kind(parse_manifests(out.stdout), "CustomResourceDefinition")}
    assert names == {c["metadata"]["name"] for c in source_crds()}
