"""The event stream: status on connect, and every change pushed within a second."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import ClientResponse

from .conftest import NodeClient, StaticHardware, auth


async def next_event(response: ClientResponse, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
    """Read one SSE event (skipping keep-alive comments)."""
    name = ""
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                return name, json.loads(line.removeprefix("data: "))


async def test_status_on_connect(client: NodeClient) -> None:
    async with client.get("/api/events", headers=auth()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        name, data = await next_event(response)
        assert name == "status"
        assert len(data["node_id"]) == 12


async def test_heat_change_reaches_a_subscriber_within_a_second(client: NodeClient) -> None:
    async with client.get("/api/events", headers=auth()) as response:
        await next_event(response)
        sent = time.monotonic()
        put = await client.put("/api/heat", json={"mode": "heat", "target_w": 77}, headers=auth())
        assert put.status == 200
        while True:
            _, data = await next_event(response, timeout=1.0)
            if data["heat"]["target_w"] == 77:
                break
        assert time.monotonic() - sent < 1.0


async def test_hardware_change_is_pushed(client: NodeClient, hardware: StaticHardware) -> None:
    async with client.get("/api/events", headers=auth()) as response:
        await next_event(response)
        hardware.power_w = 99.0
        while True:
            _, data = await next_event(response, timeout=1.0)
            if data["power_w"] == 99.0:
                break


async def test_two_subscribers_both_get_it(client: NodeClient) -> None:
    async with (
        client.get("/api/events", headers=auth()) as first,
        client.get("/api/events", headers=auth()) as second,
    ):
        await next_event(first)
        await next_event(second)
        await client.put("/api/heat", json={"mode": "heat", "target_w": 33}, headers=auth())
        for response in (first, second):
            while (await next_event(response, timeout=1.0))[1]["heat"]["target_w"] != 33:
                pass
