"""The demo of `tokenpool dev`: examples/ pointed at the fake upstream, and what to print.

The manifests in examples/ are meant to be applied as they are to a real cluster, so they name
real Augment tenant URLs. For the demo the UpstreamTokens' endpoints are rewritten, in memory
only, to the local fake upstream (one path prefix per tenant, so tokens stay distinguishable).
"""

from __future__ import annotations

import copy
import json
import shlex
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tokenpool.contract import compiled as contract

DEMO_LABEL = "tokenpool.io/dev-demo"


def point_at_fake(docs: list[dict[str, Any]], fake_url: str) -> list[dict[str, Any]]:
    """Copies of ``docs`` with every UpstreamToken's endpoint on ``fake_url`` and a demo label."""
    out = []
    for doc in docs:
        doc = copy.deepcopy(doc)
        if doc.get("kind") == contract.KIND_UPSTREAM:
            spec = doc.setdefault("spec", {})
            tenant = (urlsplit(spec.get("endpoint", "")).hostname or "tenant").split(".")[0]
            spec["endpoint"] = f"{fake_url.rstrip('/')}/{tenant}/"
            spec["provider"] = "Augment"
        if doc.get("kind") in (contract.KIND_UPSTREAM, contract.KIND_USER, contract.KIND_ALLOCATION):
            doc.setdefault("metadata", {}).setdefault("labels", {})[DEMO_LABEL] = "true"
        out.append(doc)
    return out


def demo_users(docs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(name, role) of the PoolUsers in ``docs``: admins first, then users, in file order."""
    users = [
        (d["metadata"]["name"], (d.get("spec") or {}).get("role") or "User")
        for d in docs
        if d.get("kind") == contract.KIND_USER
    ]
    return sorted(users, key=lambda u: u[1] != "Admin")


def http_json(url: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url`` (optionally with a Bearer token): (status, parsed JSON or None)."""
    request = urllib.request.Request(url)  # noqa: S310 - our own local proxy URL
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


@dataclass
class Instructions:
    proxy_url: str
    namespace: str
    kubeconfig: str
    tokens: list[tuple[str, str, str]]  # (name, role, personal token)
    model: str
    logs: str
    demo: bool
    console_url: str = ""

    def user_token(self) -> str:
        users = [t for _, role, t in self.tokens if role != "Admin"] or [t for *_, t in self.tokens]
        return users[0]

    def python_snippet(self) -> str:
        return "\n".join(
            [
                "from openai import OpenAI",
                "",
                f'client = OpenAI(base_url="{self.proxy_url}/v1", api_key="{self.user_token()}")',
                "stream = client.chat.completions.create(",
                f'    model="{self.model}",',
                '    messages=[{"role": "user", "content": "Say hello to tokenpool"}],',
                "    stream=True,",
                ")",
                "for chunk in stream:",
                "    if chunk.choices and chunk.choices[0].delta.content:",
                '        print(chunk.choices[0].delta.content, end="", flush=True)',
                "print()",
            ]
        )

    def render(self) -> str:
        q = shlex.quote
        rule = "=" * 78
        cli, python, kubectl = (_local_command(n) for n in ("tokenpool", "python", "kubectl"))
        lines = [rule, f"tokenpool is running. Proxy URL: {self.proxy_url}", rule, ""]
        if not self.tokens:
            lines += [
                "No demo users (real upstream tokens are configured). Create a user with:",
                f"  {cli} users create alice -n {self.namespace}",
            ]
        else:
            width = max(len(name) for name, _, _ in self.tokens)
            lines.append("Personal tokens (the plugin's and the OpenAI clients' credential):")
            lines += [f"  {name:<{width}}  {role:<5}  {token}" for name, role, token in self.tokens]
            pt = self.user_token()
            lines += [
                "",
                "Who am I (the IDE plugin's first call):",
                "```bash",
                f"curl -s {q(self.proxy_url + '/api/user/info?token=' + pt)}",
                "```",
                "",
                "My upstream tokens, least used first (the plugin sends the token as a Bearer header):",
                "```bash",
                f"curl -s {q(self.proxy_url + '/api/tokens')} -H {q('Authorization: Bearer ' + pt)}",
                "```",
                "",
                f"A streamed chat completion with the OpenAI SDK (save as chat.py, run: {python} chat.py):",
                "```python",
                self.python_snippet(),
                "```",
            ]
        if self.demo:
            lines += ["", "The upstream is the local fake Augment server: its answers are canned."]
        if self.console_url:
            admins = [(name, token) for name, role, token in self.tokens if role == "Admin"]
            lines += [
                "",
                f"Console (dashboard, users, tokens, statistics; docs/console.md): {self.console_url}",
            ]
            if admins:
                lines.append(
                    f"  log in as the demo admin {admins[0][0]!r} with its personal token: {admins[0][1]}"
                )
            lines.append("  users log in with their own personal token to see their usage and rotate it")
        lines += [
            "",
            f"Manage the pool (namespace {self.namespace}; docs/cli.md):",
            f"  export KUBECONFIG={self.kubeconfig}",
            f"  {cli} users list -n {self.namespace}      # or: {kubectl} get poolusers -n {self.namespace}",
            f"Logs: {self.logs}",
            "Press Ctrl-C to stop everything.",
            rule,
        ]
        return "\n".join(lines)


def _local_command(name: str) -> str:
    """How to call the venv's ``name`` from the current directory (e.g. ``.venv/bin/tokenpool``);
    plain ``name`` when the venv has no such program."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        return name
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
