"""A job's share of the energy follows how long its items ran (item-seconds)."""

from __future__ import annotations

import asyncio

import pytest

from heatcompute_node.heat.executor_state import InflightTable


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_item_seconds_count_short_items_and_items_still_running() -> None:
    """An item that started and ended between two samples still counts; one still
    running counts up to the sample, and from there on in the next interval."""
    clock = _Clock()
    table = InflightTable(clock)
    task = asyncio.get_running_loop().create_future()
    clock.now = 0.02
    table.add("short", 0, task)  # type: ignore[arg-type]
    clock.now = 0.03
    table.remove("short", 0)
    clock.now = 0.05
    table.add("long", 0, task)  # type: ignore[arg-type]
    clock.now = 0.10

    busy, seconds = table.take_busy()

    assert seconds == pytest.approx(0.10)
    assert busy == pytest.approx({"short": 0.01, "long": 0.05})
    clock.now = 0.30
    table.remove("long", 0)
    busy, seconds = table.take_busy()
    assert seconds == pytest.approx(0.20)
    assert busy == pytest.approx({"long": 0.20})
    task.cancel()
