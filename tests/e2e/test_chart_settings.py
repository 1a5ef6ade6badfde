"""Chart values → container env → the components' settings classes, end to end.

A renamed setting on either side would otherwise be ignored silently (pydantic-settings skips
unknown variables), and the values a platform admin sets would never reach the process.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_settings import BaseSettings
from tokenpool_operator.settings import OperatorSettings
from tokenpool_proxy.settings import ProxySettings

from tests.support.helm import Manifest, container, one

NAMESPACE = "tokenpool"  # what helm.template renders into
COMPONENTS: dict[str, tuple[str, type[BaseSettings]]] = {
    "operator": ("TOKENPOOL_OPERATOR_", OperatorSettings),
    "proxy": ("TOKENPOOL_PROXY_", ProxySettings),
}


def _settings_from(deployment: Manifest, component: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The component's settings as the container would load them from its env."""
    prefix, cls = COMPONENTS[component]
    fields = set(cls.model_fields)
    for var in container(deployment)["env"]:
        name = var["name"]
        if not name.startswith(prefix):
            continue
        assert name[len(prefix) :].lower() in fields, f"{name} is no {cls.__name__} field"
        if "value" in var:
            monkeypatch.setenv(name, var["value"])
        else:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}, name
            monkeypatch.setenv(name, NAMESPACE)
    return cls()


@pytest.mark.parametrize("component", ["operator", "proxy"])
def test_every_env_var_is_a_setting_and_loads(
    default_render: list[Manifest], component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_from(one(default_render, "Deployment", component), component, monkeypatch)


def test_values_reach_the_operator(
    all_features_render: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = one(all_features_render, "Deployment", "operator")
    settings = _settings_from(deployment, "operator", monkeypatch)
    assert settings.namespaces == [NAMESPACE], "watches its own namespace, where its Role is"
    assert (settings.default_quota, settings.max_quota) == (5, 20)
    assert (settings.log_format, settings.log_level) == ("text", "DEBUG")
    assert settings.liveness_port == container(deployment)["ports"][0]["containerPort"]


def test_values_reach_the_proxy(all_features_render: list[Manifest], monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = one(all_features_render, "Deployment", "proxy")
    settings = _settings_from(deployment, "proxy", monkeypatch)
    assert settings.namespace == NAMESPACE
    assert settings.port == container(deployment)["ports"][0]["containerPort"]
    assert settings.usage_flush_interval_seconds == 5
    assert settings.upstream_user_agent.startswith("Augment.vscode-augment/0.500.0")
    assert [m.id for m in settings.models] == ["augment-chat", "claude-agent", "gpt-4o-mini"]
    agent = settings.model("claude-agent")
    assert (agent.provider, agent.upstream_model, agent.augment_mode()) == (
        "Augment",
        "claude-sonnet-4",
        "AGENT",
    )
    assert settings.model("gpt-4o-mini").provider == "OpenAI"
    assert [m.id for m in settings.anthropic_models] == ["claude-sonnet-4-5", "claude-direct"]
    claude = settings.anthropic_model("claude-sonnet-4-5")
    assert (claude.provider, claude.upstream_model, claude.augment_mode()) == (
        "Augment",
        "claude-sonnet-4",
        "AGENT",
    )
    assert settings.anthropic_model("claude-direct").provider == "Anthropic"
    assert (settings.log_format, settings.log_level) == ("text", "DEBUG")
