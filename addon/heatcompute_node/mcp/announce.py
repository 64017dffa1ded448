"""Announcing /mcp to Home Assistant through the Supervisor's discovery API.

Home Assistant 2026.11's ``mcp`` integration accepts add-on discovery under the service
``mcp`` (config ``{"url": ...}``) and then talks to the URL, authenticating with OAuth
only. So the add-on announces /mcp only when the owner lets the Supervisor's network in
without a token (setting ``mcp_trusted_networks``, e.g. 172.30.32.0/23): announcing a
door Home Assistant can't open would only leave a broken entry behind.

The add-on's service name must also be listed under ``discovery:`` in config.yaml. This
is the node's first Supervisor client; it is tested against a stand-in for the
Supervisor's ``/discovery`` routes (no Supervisor runs here).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import contextlib
import logging
from typing import Any

import aiohttp

_LOGGER = logging.getLogger(__name__)

SUPERVISOR_URL = "http://supervisor"
SERVICE = "mcp"
_RETRY_S = (1.0, 5.0, 30.0)


class DiscoveryError(Exception):
    """The Supervisor refused or could not be reached."""


class Announcer:
    """One discovery message: sent once the node is ready, withdrawn when it stops."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        token: str,
        config: Mapping[str, Any],
        supervisor_url: str = SUPERVISOR_URL,
        service: str = SERVICE,
    ) -> None:
        self._session = session
        self._headers = {"Authorization": f"Bearer {token}"}
        self._body = {"service": service, "config": dict(config)}
        self._url = supervisor_url.rstrip("/")
        self.uuid: str | None = None

    async def announce(self) -> str:
        try:
            async with self._session.post(
                f"{self._url}/discovery", json=self._body, headers=self._headers
            ) as response:
                body = await response.json(content_type=None)
                if response.status >= 400 or body.get("result") != "ok":
                    raise DiscoveryError(
                        f"Supervisor refused discovery ({response.status}): {body.get('message')}"
                    )
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise DiscoveryError(f"Supervisor not reachable: {err!r}") from err
        self.uuid = str(body["data"]["uuid"])
        return self.uuid

    async def announce_with_retries(self) -> None:
        """Announce; a Supervisor that is still starting gets a few more tries."""
        for delay in (*_RETRY_S, None):
            try:
                await self.announce()
            except DiscoveryError as err:
                if delay is None:
                    _LOGGER.warning("MCP bridge not announced to Home Assistant: %s", err)
                    return
                await asyncio.sleep(delay)
            else:
                _LOGGER.info("MCP bridge announced to Home Assistant at %s", self._body["config"])
                return

    async def close_session(self) -> None:
        await self._session.close()

    async def withdraw(self) -> None:
        if self.uuid is None:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._session.delete(
                f"{self._url}/discovery/{self.uuid}", headers=self._headers
            ):
                pass
        self.uuid = None
