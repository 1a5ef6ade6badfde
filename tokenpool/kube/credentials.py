"""Where the Kubernetes API server is and how to authenticate to it, found like kubectl finds it.

Order: an explicit kubeconfig path, else ``$KUBECONFIG`` (colon-separated files, first definition
of a name wins, as kubectl merges them), else the in-cluster service account, else
``~/.kube/config``. From a kubeconfig: the context (given, else current), its cluster (server,
CA file or data, ``insecure-skip-tls-verify``, ``tls-server-name``) and user (``token``,
``tokenFile``, client certificate and key as files or data, basic auth, or an ``exec`` credential
plugin). Bearer tokens are re-read when they can change: the in-cluster token file (projected
tokens rotate) and ``tokenFile`` every minute, exec credentials before their expiry.

Nothing here logs or raises with a credential in the message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_S = 60.0
EXEC_EARLY_S = 60.0  # refresh exec credentials this long before they expire


class ConfigError(RuntimeError):
    """No usable cluster configuration; the message says what is missing (never a secret)."""


@dataclass
class TokenSource:
    """A bearer token that may change: static, from a file, or from an exec plugin."""

    static: str | None = None
    path: Path | None = None
    exec_spec: dict[str, Any] | None = None
    _cached: str | None = field(default=None, repr=False)
    _valid_until: float = 0.0
    expires_at: datetime | None = None

    def current(self) -> str | None:
        """The token now (blocking: a file read or an exec run when the cached one is stale)."""
        if self.static is not None:
            return self.static
        if self._cached is not None and time.monotonic() < self._valid_until:
            return self._cached
        if self.path is not None:
            try:
                self._cached = self.path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the token file {self.path}: {exc.strerror}") from None
            self._valid_until = time.monotonic() + TOKEN_REREAD_S
        elif self.exec_spec is not None:
            self._cached, expiry = run_exec_plugin(self.exec_spec)
            self.expires_at = expiry
            lifetime = (expiry - datetime.now(UTC)).total_seconds() - EXEC_EARLY_S if expiry else 3600.0
            self._valid_until = time.monotonic() + max(0.0, lifetime)
        return self._cached

    def stale(self) -> bool:
        return self.static is None and not (self._cached is not None and time.monotonic() < self._valid_until)

    def invalidate(self) -> None:
        """The API server refused the token (401): read or run the source again next time."""
        self._valid_until = 0.0


@dataclass
class ClusterConfig:
    """One API server and one identity on it."""

    server: str
    namespace: str = "default"
    ca_data: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    tls_server_name: str | None = None
    client_cert: bytes | None = field(default=None, repr=False)
    client_key: bytes | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: TokenSource | None = field(default=None, repr=False)

    async def authorization(self) -> str | None:
        """The ``Authorization`` header value (exec plugins and file reads off the event loop)."""
        if self.token is not None:
            value = (
                self.token.current()
                if not self.token.stale()
                else await asyncio.to_thread(self.token.current)
            )
            return f"Bearer {value}" if value else None
        if self.username is not None:
            pair = f"{self.username}:{self.password or ''}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        return None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS for the server: its CA (else the system's), the client certificate if any."""
        if not self.server.startswith("https"):
            return False
        ctx = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            _load_client_pair(ctx, self.client_cert, self.client_key)
        return ctx


def _load_client_pair(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``ssl`` loads a key pair only from files: private temporary ones, removed at once."""
    with tempfile.TemporaryDirectory(prefix="tokenpool-kube-") as tmp:
        cert_path, key_path = Path(tmp) / "client.crt", Path(tmp) / "client.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(str(cert_path), str(key_path))


def run_exec_plugin(spec: dict[str, Any]) -> tuple[str | None, datetime | None]:
    """Run a client-go credential plugin; its token and expiry (ExecCredential ``status``)."""
    command = spec.get("command")
    if not command:
        raise ConfigError("the kubeconfig's exec plugin has no command")
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in spec.get("env") or [] if "name" in e})
    api_version = spec.get("apiVersion", "client.authentication.k8s.io/v1")
    info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    try:
        done = subprocess.run(
            [command, *(spec.get("args") or [])], env=env, capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"the kubeconfig's exec plugin {command!r} could not run: {exc}") from None
    if done.returncode != 0:
        raise ConfigError(f"the kubeconfig's exec plugin {command!r} exited with {done.returncode}")
    try:
        status = json.loads(done.stdout).get("status") or {}
    except ValueError:
        raise ConfigError(f"the kubeconfig's exec plugin {command!r} printed no ExecCredential") from None
    expiry = status.get("expirationTimestamp")
    when = datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None
    return status.get("token"), when


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _file_or_data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return _b64(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key])
        try:
            return (path if path.is_absolute() else base / path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {key} {path}: {exc.strerror}") from None
    return None


def _merged(paths: list[Path]) -> tuple[dict[str, Any], Path]:
    """Merge kubeconfig files like kubectl: the first file defining a name (or current-context) wins."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    base: Path | None = None
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from None
        base = base or path.parent
        merged["current-context"] = merged["current-context"] or doc.get("current-context")
        for kind, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in doc.get(kind) or []:
                entry = dict(item.get(inner) or {})
                entry["_base"] = path.parent
                merged[kind].setdefault(item.get("name"), entry)
    if base is None:
        raise ConfigError(f"cannot load kubeconfig: no file at {', '.join(map(str, paths))}")
    return merged, base


def from_kubeconfig(paths: list[Path], context: str | None = None) -> ClusterConfig:
    doc, _ = _merged(paths)
    name = context or doc["current-context"]
    if not name:
        raise ConfigError("the kubeconfig has no current-context: pass a context")
    ctx = doc["contexts"].get(name)
    if ctx is None:
        raise ConfigError(f"context {name!r} is not in the kubeconfig")
    cluster = doc["clusters"].get(ctx.get("cluster"))
    if cluster is None or not cluster.get("server"):
        raise ConfigError(f"context {name!r} names cluster {ctx.get('cluster')!r}, which has no server")
    user = doc["users"].get(ctx.get("user")) or {}
    if user.get("auth-provider"):
        raise ConfigError("kubeconfig auth-provider plugins are not supported: use an exec credential plugin")
    token: TokenSource | None = None
    if user.get("token"):
        token = TokenSource(static=str(user["token"]))
    elif user.get("tokenFile"):
        token = TokenSource(path=Path(user["tokenFile"]))
    elif user.get("exec"):
        token = TokenSource(exec_spec=user["exec"])
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        namespace=str(ctx.get("namespace") or "default"),
        ca_data=_file_or_data(cluster, "certificate-authority", cluster["_base"]),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        client_cert=_file_or_data(user, "client-certificate", user.get("_base", Path("."))),
        client_key=_file_or_data(user, "client-key", user.get("_base", Path("."))),
        username=user.get("username"),
        password=user.get("password"),
        token=token,
    )


def in_cluster(directory: Path = IN_CLUSTER_DIR) -> ClusterConfig:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("not running in a cluster (KUBERNETES_SERVICE_HOST is not set)")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    namespace = "default"
    with contextlib.suppress(OSError):
        namespace = (directory / "namespace").read_text().strip() or namespace
    return ClusterConfig(
        server=f"https://{host}:{port}",
        namespace=namespace,
        ca_data=(directory / "ca.crt").read_bytes() if (directory / "ca.crt").exists() else None,
        token=TokenSource(path=directory / "token"),
    )


def load(kubeconfig: str | None = None, context: str | None = None) -> ClusterConfig:
    """The cluster to talk to, in kubectl's order (module docstring)."""
    if kubeconfig:
        return from_kubeconfig([Path(kubeconfig).expanduser()], context)
    env = os.environ.get("KUBECONFIG")
    if env:
        return from_kubeconfig([Path(p).expanduser() for p in env.split(os.pathsep) if p], context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not context:
        return in_cluster()
    return from_kubeconfig([Path.home() / ".kube" / "config"], context)
