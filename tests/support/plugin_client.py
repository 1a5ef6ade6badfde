"""A client that behaves exactly like the "Token池" IntelliJ plugin: validate the personal token,
list the pool, pick the first (least used) token, and delete it after injecting it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class PluginClient:
    base_url: str
    personal_token: str

    def validate(self) -> dict[str, Any] | None:
        """``GET /api/user/info?token=``; the plugin checks only for ``"status":"success"``."""
        r = httpx.get(f"{self.base_url}/api/user/info", params={"token": self.personal_token}, timeout=10)
        return r.json() if '"status":"success"' in r.text.replace(" ", "") else None

    def list_tokens(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.base_url}/api/tokens", headers=self._auth(), timeout=10)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success" and body["total_count"] == len(body["tokens"])
        tokens: list[dict[str, Any]] = body["tokens"]
        return tokens

    def pick_and_use(self) -> dict[str, Any] | None:
        """Take the first token (the plugin injects token + tenant_url), then delete it."""
        tokens = self.list_tokens()
        if not tokens:
            return None
        chosen = tokens[0]
        r = httpx.delete(f"{self.base_url}/api/tokens/{chosen['token']}", headers=self._auth(), timeout=10)
        assert r.json() == {"status": "success"}, r.text
        return chosen

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.personal_token}"}
