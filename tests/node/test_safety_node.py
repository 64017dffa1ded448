"""Safety trips in a running node: visible in status, events and metrics; work obeys them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from heatcompute_node.app import create_app
from heatcompute_node.events import Event
from heatcompute_node.settings import Settings

from .conftest import MakeClient, NodeClient, StaticHardware, auth
from .fake_runner import FakeRunner
from .jobs_helpers import JobEvents, count_samples, job_events, set_heat, submit
from .test_api_meta import scrape


def trip(kind: str, active: bool) -> Callable[[Event], bool]:
    return lambda e: e.name == "safety" and e.data["kind"] == kind and e.data["active"] is active


async def status(client: NodeClient) -> dict[str, Any]:
    data: dict[str, Any] = await (await client.get("/api/status", headers=auth())).json()
    return data


async def start(
    make_client: MakeClient, settings: Settings, hardware: StaticHardware, runner: FakeRunner
) -> NodeClient:
    return await make_client(create_app(settings, hardware=hardware, job_runner=runner))


async def test_chip_temperature_trip_pauses_jobs_and_releases(
    socket_enabled: None, settings: Settings, hardware: StaticHardware, make_client: MakeClient
) -> None:
    runner = FakeRunner(gated=True)
    client = await start(make_client, settings, hardware, runner)
    await set_heat(client, "heat", 100.0)
    async with job_events(client) as events:
        job = await submit(client, {"kind": "completions", "items": [f"i{n}" for n in range(6)]})
        await runner.wait_for(lambda: len(runner.started) == 4)
        hardware.temperatures_c = {"package-0": 91.0}
        event = await events.wait(trip("chip_temperature", True))
        assert event["limit"] == 90.0
        await count_samples(client).wait(2)
        now = await status(client)
        assert now["safety"]["ok"] is False
        assert now["safety"]["trips"]["chip_temperature"]["active"] is True
        assert now["intensity"] == 0.0
        assert now["governor"]["knobs"]["max_background"] == 0
        assert runner.fake_engine is not None
        assert runner.fake_engine.knobs["duty_cycle"] == 0.0  # the engine pauses background
        metrics = await scrape(client)
        assert metrics["heatcompute_safety_trip_active"][(("kind", "chip_temperature"),)] == 1.0
        assert metrics["heatcompute_safety_trips_total"][(("kind", "chip_temperature"),)] == 1.0
        # No new items start while tripped: the four in flight finish, nothing follows.
        runner.gate.set()
        await runner.wait_for(lambda: len(runner.finished) == 4)
        await count_samples(client).wait(5)
        assert len(runner.started) == 4
        hardware.temperatures_c = {"package-0": 85.0}  # inside the hysteresis band
        await count_samples(client).wait(5)
        assert (await status(client))["safety"]["trips"]["chip_temperature"]["active"] is True
        hardware.temperatures_c = {"package-0": 79.0}
        await events.wait(trip("chip_temperature", False))
        await events.state(job["id"], "completed")
    metrics = await scrape(client)
    assert metrics["heatcompute_safety_trip_active"][(("kind", "chip_temperature"),)] == 0.0


async def test_max_power_trip(
    socket_enabled: None, settings: Settings, hardware: StaticHardware, make_client: MakeClient
) -> None:
    client = await start(make_client, settings, hardware, FakeRunner())
    async with job_events(client) as events:
        hardware.power_w = 170.0  # cap 150 W (+5 % margin)
        await events.wait(trip("max_power", True))
        assert (await status(client))["safety"]["background_blocked"] is True
        hardware.power_w = 40.0
        # Released after the hold (10 s by default) is tested in test_safety.py; here it
        # is enough that it fired in a running node and shows.
        assert (await status(client))["safety"]["trips"]["max_power"]["count"] == 1


async def test_watchdog_falls_back_to_the_safe_level_until_refreshed(
    socket_enabled: None, settings: Settings, hardware: StaticHardware, make_client: MakeClient
) -> None:
    settings = replace(settings, watchdog_min=0.005)  # 0.3 s
    runner = FakeRunner()
    client = await start(make_client, settings, hardware, runner)
    events = JobEvents(client)
    try:
        await set_heat(client, "heat", 100.0)
        fired = await events.wait(trip("watchdog", True))
        assert "safe level of 0 W" in fired["message"]
        await count_samples(client).wait(1)
        now = await status(client)
        assert now["heat"]["target_w"] == 100.0  # what Home Assistant asked for, still shown
        assert now["governor"]["heat_target_w"] == 0.0  # ... but not what the node does
        assert now["safety"]["trips"]["watchdog"]["active"] is True
        # No heat wanted now: a job without deadline waits.
        samples = count_samples(client)
        await submit(client, {"kind": "completions", "items": ["x"]})
        await samples.wait(3)
        assert runner.started == []
        await set_heat(client, "heat", 100.0)  # Home Assistant is back
        await events.wait(trip("watchdog", False))
        while runner.finished != ["x"]:  # ... and keeps refreshing, as it does every minute
            await set_heat(client, "heat", 100.0)
            await samples.wait(1)
    finally:
        events.close()
