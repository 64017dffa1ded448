"""A stand-in for Home Assistant's Supervisor, for testing the add-on image.

No Supervisor runs here, so this small aiohttp server speaks the few routes of the
Supervisor's API the add-on uses, with the Supervisor's envelope
(``{"result": "ok", "data": ...}`` / ``{"result": "error", "message": ...}``) and its
bearer-token check (the add-on's ``SUPERVISOR_TOKEN``):

- ``GET /info``: a little of the Supervisor's own information;
- ``POST /discovery``, ``DELETE /discovery/{uuid}``: discovery messages. Like the real
  Supervisor it keeps one message per add-on and service: the same service sent again
  keeps its uuid and takes the new config;
- ``/core/api/...``: the Core API proxy, answering ``GET /core/api/`` and
  ``GET /core/api/states`` with a fixed, small Home Assistant.

Every received discovery change is also put on an asyncio queue, so tests wait on
events instead of polling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
import uuid as uuid_module

from aiohttp import web

ADDON_SLUG = "local_heatcompute"


@dataclass
class DiscoveryEvent:
    action: str
    """"set" or "removed"."""
    uuid: str
    service: str
    config: dict[str, Any]


@dataclass
class SupervisorStandIn:
    token: str
    messages: dict[str, DiscoveryEvent] = field(default_factory=dict)
    events: asyncio.Queue[DiscoveryEvent] = field(default_factory=asyncio.Queue)
    refused: int = 0
    """Requests refused for a missing or wrong token."""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/info", self._info)
        app.router.add_post("/discovery", self._send)
        app.router.add_delete("/discovery/{uuid}", self._remove)
        app.router.add_get("/core/api/", self._core_root)
        app.router.add_get("/core/api/states", self._core_states)
        return app

    @web.middleware
    async def _auth(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.refused += 1
            return _error("Unauthorized", status=401)
        return await handler(request)

    async def _info(self, _request: web.Request) -> web.Response:
        return _ok({"supervisor": "2026.11.0", "homeassistant": "2026.11.0", "arch": "amd64"})

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        service, config = body.get("service"), body.get("config")
        if not isinstance(service, str) or not isinstance(config, dict):
            return _error("service and config are required")
        existing = next((m for m in self.messages.values() if m.service == service), None)
        uuid = existing.uuid if existing else uuid_module.uuid4().hex
        event = DiscoveryEvent("set", uuid, service, config)
        self.messages[uuid] = event
        self.events.put_nowait(event)
        return _ok({"uuid": uuid})

    async def _remove(self, request: web.Request) -> web.Response:
        message = self.messages.pop(request.match_info["uuid"], None)
        if message is None:
            return _error("Discovery message not found", status=404)
        self.events.put_nowait(DiscoveryEvent("removed", message.uuid, message.service, {}))
        return _ok({})

    async def _core_root(self, _request: web.Request) -> web.Response:
        return web.json_response({"message": "API running."})

    async def _core_states(self, _request: web.Request) -> web.Response:
        return web.json_response(
            [{"entity_id": "sensor.living_room_temperature", "state": "20.5", "attributes": {}}]
        )


def _ok(data: dict[str, Any]) -> web.Response:
    return web.json_response({"result": "ok", "data": data})


def _error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"result": "error", "message": message}, status=status)
