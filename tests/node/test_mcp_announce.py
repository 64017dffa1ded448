"""The add-on announces /mcp to Home Assistant through the Supervisor's discovery API.

No Supervisor runs here: `SupervisorStandIn` is an aiohttp server speaking the two
routes of the Supervisor's discovery API the node uses (POST /discovery, DELETE
/discovery/{uuid}), checking the token like the Supervisor does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
import uuid

from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from heatcompute_node.app import create_app
from heatcompute_node.supervisor import (
    URL_ENV,
    AddonEnvironment,
    Announcement,
    SupervisorClient,
    SupervisorError,
)

from .conftest import MakeClient, StaticHardware
from .mcp_home import build_house

SUPERVISOR_TOKEN = "supervisor-token-0123456789"


class SupervisorStandIn:
    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.announced = asyncio.Event()
        self.withdrawn = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/discovery", self.post)
        self.app.router.add_delete("/discovery/{uuid}", self.delete)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {SUPERVISOR_TOKEN}"

    async def post(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"result": "error", "message": "Unauthorized"}, status=401)
        message_id = uuid.uuid4().hex
        self.messages[message_id] = await request.json()
        self.announced.set()
        return web.json_response({"result": "ok", "data": {"uuid": message_id}})

    async def delete(self, request: web.Request) -> web.Response:
        self.messages.pop(request.match_info["uuid"])
        self.withdrawn.set()
        return web.json_response({"result": "ok", "data": {}})


@pytest.fixture
async def supervisor(socket_enabled: None) -> AsyncIterator[tuple[SupervisorStandIn, str]]:
    stand_in = SupervisorStandIn()
    server = TestServer(stand_in.app, host="127.0.0.1")
    await server.start_server()
    yield stand_in, str(server.make_url("")).rstrip("/")
    await server.close()


async def test_the_node_announces_mcp_and_withdraws_it(
    supervisor: tuple[SupervisorStandIn, str],
    tmp_path: Path,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stand_in, url = supervisor
    monkeypatch.setenv("SUPERVISOR_TOKEN", SUPERVISOR_TOKEN)
    monkeypatch.setenv(URL_ENV, url)
    house = build_house(tmp_path)
    settings = house.settings(mcp_trusted_networks=("172.30.32.0/23",))
    client = await make_client(create_app(settings, hardware=StaticHardware()))

    await asyncio.wait_for(stand_in.announced.wait(), 10)
    (message,) = stand_in.messages.values()
    assert message["service"] == "mcp"
    assert message["config"]["url"].endswith(f":{settings.port}/mcp")

    await client.close()
    await asyncio.wait_for(stand_in.withdrawn.wait(), 10)
    assert stand_in.messages == {}


async def test_no_announcement_without_a_trusted_network(
    supervisor: tuple[SupervisorStandIn, str],
    tmp_path: Path,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Home Assistant's client can't bring a token: without the Supervisor's network let
    in, an announcement would only leave a broken entry."""
    stand_in, url = supervisor
    monkeypatch.setenv("SUPERVISOR_TOKEN", SUPERVISOR_TOKEN)
    monkeypatch.setenv(URL_ENV, url)
    client = await make_client(
        create_app(build_house(tmp_path).settings(), hardware=StaticHardware())
    )
    assert (await client.get("/health")).status == 200  # started and serving
    assert stand_in.messages == {}


async def test_a_refusing_supervisor_is_reported(
    supervisor: tuple[SupervisorStandIn, str],
) -> None:
    import aiohttp

    _, url = supervisor
    async with aiohttp.ClientSession() as session:
        client = SupervisorClient(session, AddonEnvironment(token="wrong", url=url))
        announcement = Announcement(client, service="mcp")
        with pytest.raises(SupervisorError, match="refused \\(401\\)"):
            await announcement.send({"url": "http://x/mcp"})


def test_home_assistant_is_reached_through_the_supervisor_in_the_add_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from heatcompute_node.mcp.ha_api import HomeAssistantApi

    monkeypatch.delenv("SUPERVISOR_TOKEN", raising=False)
    assert HomeAssistantApi.from_settings(None, None, 10.0) is None
    bare = HomeAssistantApi.from_settings("http://ha.lan:8123/", "long-lived", 10.0)
    assert bare is not None
    assert (bare.url, bare.websocket_url) == (
        "http://ha.lan:8123",
        "ws://ha.lan:8123/api/websocket",
    )
    monkeypatch.setenv("SUPERVISOR_TOKEN", SUPERVISOR_TOKEN)
    addon = HomeAssistantApi.from_settings(None, None, 10.0)
    assert addon is not None
    # The Supervisor proxies the REST API at /core/api and the WebSocket at /core/websocket.
    assert (addon.url, addon.websocket_url) == (
        "http://supervisor/core",
        "ws://supervisor/core/websocket",
    )
