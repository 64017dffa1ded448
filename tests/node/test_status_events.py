"""Status events: only changes that matter, at most one a second, asked-for ones at once.

The node-level tests run a real node app; only the power sensor is a stand-in
(StaticHardware: this machine has no readable power meter).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from heatcompute_node.events import Event
from heatcompute_node.status_events import MIN_INTERVAL_S, REFRESH_S, StatusThrottle

from .conftest import NodeClient, StaticHardware, auth
from .jobs_helpers import SampleCounter, count_samples, node_of


def status(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "node_id": "0123456789ab",
        "uptime_s": 10.0,
        "updated_at": "2026-11-30T10:00:00+00:00",
        "heat": {"mode": "off", "target_w": 0.0, "wanted": False, "updated_at": "t0"},
        "power_w": 40.0,
        "energy_kwh": 1.0,
        "temperatures": {"chip_c": 50.0, "room_c": 20.0, "sensors": {"package-0": 50.0}},
        "work": {"requests_active": 0, "jobs_pending": 0, "tokens_per_s": 0.0},
        "governor": {"error_w": 0.0, "knobs": {"duty_cycle": 0.0}},
        "models": [{"id": "m", "state": "available"}],
    }
    for path, value in changes.items():
        target = base
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    return base


def sent_throttle(first: dict[str, Any], at: float = 100.0) -> StatusThrottle:
    throttle = StatusThrottle()
    assert throttle.delay(first, at) == 0.0  # the first status always goes out
    throttle.sent(first, at)
    return throttle


def test_clock_fields_and_small_moves_are_not_worth_an_event() -> None:
    throttle = sent_throttle(status())
    later = status(
        uptime_s=20.0,
        updated_at="2026-11-30T10:00:10+00:00",
        heat__updated_at="t1",
        power_w=48.0,
        energy_kwh=1.004,
        temperatures__chip_c=50.6,
        temperatures__room_c=20.05,
        governor__error_w=12.0,
        governor__knobs={"duty_cycle": 0.4},
    )
    assert throttle.delay(later, 110.0) is None


def test_changes_that_matter_go_out_within_the_rate_limit() -> None:
    for changed in (
        status(power_w=52.0),  # 12 W: more than 5 % of 200 W, and than 10 % of 40 W
        status(energy_kwh=1.01),
        status(temperatures__room_c=20.1),
        status(heat__mode="heat"),
        status(work__requests_active=1),
        status(models=[{"id": "m", "state": "loaded"}]),
        status(temperatures__sensors={"package-0": 50.0, "gpu": 40.0}),
    ):
        throttle = sent_throttle(status())
        assert throttle.delay(changed, 100.0 + MIN_INTERVAL_S + 0.01) == 0.0, changed
        # Sooner than the rate limit: it waits for the rest of the interval, no longer.
        assert throttle.delay(changed, 100.25) == pytest.approx(MIN_INTERVAL_S - 0.25)


def test_a_change_someone_asked_for_skips_the_rate_limit() -> None:
    throttle = sent_throttle(status())
    assert throttle.delay(status(heat__target_w=80.0), 100.1, urgent=True) == 0.0
    # ... but an asked-for change that changes nothing is still not an event.
    assert throttle.delay(status(heat__updated_at="t2"), 100.1, urgent=True) is None


def test_the_deadband_compares_with_what_was_sent_so_drift_adds_up() -> None:
    throttle = sent_throttle(status(power_w=100.0))
    # 10 W on a 200 W machine: each sample's step is small, the sum is not.
    assert throttle.delay(status(power_w=106.0), 101.0) is None
    assert throttle.delay(status(power_w=110.0), 102.0) == 0.0


def test_watts_matter_relative_to_the_machine() -> None:
    """5 % of the maximum power: 3 W on a 60 W machine, 10 W on a 200 W one."""
    small = StatusThrottle(max_power_w=60.0)
    small.sent(status(power_w=20.0), 100.0)
    assert small.delay(status(power_w=23.5), 101.0) == 0.0
    large = StatusThrottle()
    large.sent(status(power_w=20.0), 100.0)
    assert large.delay(status(power_w=23.5), 101.0) is None


def test_an_event_carries_the_other_figures_as_last_sent() -> None:
    throttle = sent_throttle(status())
    now = status(work__requests_active=1, power_w=43.0, temperatures__room_c=20.04)
    assert throttle.delay(now, 101.0) == 0.0
    out = throttle.outgoing(now, 101.0)
    assert out["work"]["requests_active"] == 1
    # Below their deadbands: as sent before, so the event is no new power reading.
    assert out["power_w"] == 40.0
    assert out["temperatures"]["room_c"] == 20.0
    throttle.sent(out, 101.0)
    # The drift still adds up against what was sent, and the refresh sends it exact.
    assert throttle.delay(status(work__requests_active=1, power_w=51.0), 102.0) == 0.0
    refresh = status(work__requests_active=1, power_w=43.0)
    assert throttle.delay(refresh, 101.0 + REFRESH_S) == 0.0
    assert throttle.outgoing(refresh, 101.0 + REFRESH_S)["power_w"] == 43.0


def test_small_moves_are_refreshed_after_a_while() -> None:
    throttle = sent_throttle(status())
    drifted = status(power_w=41.0)
    assert throttle.delay(drifted, 100.0 + REFRESH_S - 1) is None
    assert throttle.delay(drifted, 100.0 + REFRESH_S) == 0.0
    # Nothing at all changed: not even a refresh.
    assert throttle.delay(copy.deepcopy(status()), 100.0 + REFRESH_S) is None


async def test_power_noise_at_idle_sends_no_events(
    client: NodeClient, hardware: StaticHardware
) -> None:
    """Before: every 0.1 W of noise was an event (and a recorder row in Home Assistant)."""
    node = node_of(client)
    samples = count_samples(client)
    await settled(samples)
    queue = node.events.subscribe()
    try:
        for step in range(20):
            hardware.power_w = 42.0 + (0.4 if step % 2 else -0.4) + step * 0.05
            await samples.wait(1)
        await samples.wait(2)
        assert [e.name for e in drain(queue) if e.name == "status"] == []
    finally:
        node.events.unsubscribe(queue)


async def test_a_power_step_and_a_heat_target_still_arrive_at_once(
    client: NodeClient, hardware: StaticHardware
) -> None:
    node = node_of(client)
    samples = count_samples(client)
    await samples.wait(2)
    queue = node.events.subscribe()
    try:
        changed = time.monotonic()
        hardware.power_w = 99.0
        event = await next_status(queue, lambda data: data["power_w"] == 99.0)
        assert time.monotonic() - changed < 1.0
        # Right after an event, a heat target someone set does not wait for the rate limit.
        sent = time.monotonic()
        put = await client.put("/api/heat", json={"mode": "heat", "target_w": 77}, headers=auth())
        assert put.status == 200
        event = await next_status(queue, lambda data: data["heat"]["target_w"] == 77)
        assert time.monotonic() - sent < MIN_INTERVAL_S / 2
        assert event["power_w"] == 99.0
    finally:
        node.events.unsubscribe(queue)


async def test_a_change_held_back_by_the_rate_limit_goes_out_without_another_sample(
    client: NodeClient, hardware: StaticHardware
) -> None:
    node = node_of(client)
    samples = count_samples(client)
    await samples.wait(2)
    queue = node.events.subscribe()
    try:
        hardware.power_w = 80.0
        await next_status(queue, lambda data: data["power_w"] == 80.0)
        hardware.power_w = 120.0
        # Once the sampler has seen it, stop sampling: only the held-back timer can send it.
        await samples.wait(1)
        assert node._sampler is not None
        node._sampler.cancel()
        event = await next_status(queue, lambda data: data["power_w"] == 120.0)
        assert event["power_w"] == 120.0
    finally:
        node.events.unsubscribe(queue)


async def settled(samples: SampleCounter) -> None:
    """Let the node's start-up pass: the heat controller adds its figures after the
    first status, and that change may wait out the rate limit (samples every 50 ms)."""
    await samples.wait(int(MIN_INTERVAL_S / 0.05) + 4)


def drain(queue: asyncio.Queue[Event]) -> list[Event]:
    events = []
    while not queue.empty():
        events.append(queue.get_nowait())
    return events


async def next_status(
    queue: asyncio.Queue[Event], predicate: Any, timeout: float = 2.0
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            event = await queue.get()
            if event.name == "status" and predicate(event.data):
                return event.data
