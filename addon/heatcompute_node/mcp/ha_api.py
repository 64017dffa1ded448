"""Home Assistant's REST and WebSocket API, as the bridge's Home Assistant tools use it.

In the add-on the Supervisor proxies Home Assistant (``http://supervisor/core``, token
from ``SUPERVISOR_TOKEN``); bare nodes get a URL and a long-lived access token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import os
from typing import Any

import aiohttp

from .tools import ToolError

SUPERVISOR_CORE_URL = "http://supervisor/core"


class HomeAssistantApi:
    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(
        cls, url: str | None, token: str | None, timeout_s: float
    ) -> HomeAssistantApi | None:
        """The configured API, else the Supervisor's proxy inside the add-on, else None."""
        if url and token:
            return cls(url, token, timeout_s)
        supervisor_token = os.environ.get("SUPERVISOR_TOKEN")
        if supervisor_token and not url:
            return cls(SUPERVISOR_CORE_URL, supervisor_token, timeout_s)
        return None

    @property
    def websocket_url(self) -> str:
        base = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        # The Supervisor proxies the WebSocket API at /core/websocket, Home Assistant
        # itself serves it at /api/websocket.
        return f"{base}/websocket" if self.url == SUPERVISOR_CORE_URL else f"{base}/api/websocket"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Authorization": f"Bearer {self._token}"}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self._request("GET", path, params=params)

    async def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self._request("POST", path, json=body)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self._client().request(method, f"{self.url}/api{path}", **kwargs) as resp:
                if resp.status == 404:
                    raise ToolError("Home Assistant does not know that entity or path")
                if resp.status in (401, 403):
                    raise ToolError("Home Assistant refused the bridge's token; check mcp_ha_token")
                if resp.status >= 400:
                    raise ToolError(
                        f"Home Assistant answered {resp.status}: {(await resp.text())[:200]}"
                    )
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ToolError(f"Home Assistant is not reachable at {self.url}: {err!r}") from err

    async def websocket_command(self, command: dict[str, Any]) -> Any:
        """One command on a fresh WebSocket connection (tool calls are rare and short)."""
        try:
            async with self._client().ws_connect(self.websocket_url) as ws:
                hello = await ws.receive_json()
                if hello.get("type") == "auth_required":
                    await ws.send_json({"type": "auth", "access_token": self._token})
                    auth = await ws.receive_json()
                    if auth.get("type") != "auth_ok":
                        raise ToolError(
                            "Home Assistant refused the bridge's token; check mcp_ha_token"
                        )
                await ws.send_json({"id": 1, **command})
                while True:
                    reply = await ws.receive_json()
                    if reply.get("id") == 1 and reply.get("type") == "result":
                        break
        except (aiohttp.ClientError, TimeoutError, asyncio.CancelledError, TypeError) as err:
            if isinstance(err, asyncio.CancelledError):
                raise
            raise ToolError(f"Home Assistant's WebSocket API failed: {err!r}") from err
        if not reply.get("success"):
            error = reply.get("error") or {}
            raise ToolError(f"Home Assistant: {error.get('message', 'command failed')}")
        return reply.get("result")
