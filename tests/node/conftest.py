"""Fixtures for the node's own tests: a real node app served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
import pytest

from heatcompute_node.app import create_app
from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.settings import Settings

TOKEN = "test-token-0123456789"

type NodeClient = TestClient[web.Request, web.Application]
type MakeClient = Callable[[web.Application], Awaitable[NodeClient]]


class StaticHardware(HardwareSource):
    """Stands in for sensors this machine doesn't have: a fixed, settable reading."""

    name = "static"

    def __init__(self, power_w: float = 42.0) -> None:
        self.power_w = power_w
        self.temperatures_c = {"package-0": 55.0}

    def read(self) -> HardwareReading:
        return HardwareReading(power_w=self.power_w, temperatures_c=dict(self.temperatures_c))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        host="127.0.0.1",
        data_dir=tmp_path / "data",
        token=TOKEN,
        zeroconf=False,
        max_power_w=150.0,
        idle_power_w=10.0,
        status_interval_s=0.05,
        energy_flush_s=0.2,
    )


@pytest.fixture
def hardware() -> StaticHardware:
    return StaticHardware()


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    """Serve apps on 127.0.0.1; closed (and their nodes stopped) after the test."""
    clients: list[NodeClient] = []

    async def make(app: web.Application) -> NodeClient:
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(
    socket_enabled: None,
    settings: Settings,
    hardware: StaticHardware,
    make_client: MakeClient,
) -> NodeClient:
    return await make_client(create_app(settings, hardware=hardware))


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
