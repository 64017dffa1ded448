"""Building the status reads the node; it never changes it (a real node, the tiny model).

The status is built for every /api/status request, every SSE event and every scrape,
so a figure that moved because someone looked would differ between clients.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from heatcompute_node.api.jobs import HEAT_SERVICE_KEY
from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.heat.controller import HeatController
from heatcompute_node.node_status import CLOCK_KEYS

from .conftest import SMALL_ENGINE, TOKEN, LiveNode, start_node

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "tiny"
# Rates over the last 10 s move with the clock alone, like the clock fields.
_RATES = ("tokens_per_s", "prompt_tokens_per_s")


@pytest.fixture
async def quiet_node(
    socket_enabled: None, tmp_path: Path, tiny_model: Path
) -> AsyncIterator[LiveNode]:
    """A node whose sampler never runs again after start: nothing builds the status but
    the test."""
    node = await start_node(tmp_path, (tiny_model,), SMALL_ENGINE, status_interval_s=3600)
    yield node
    await node.client.close()
    await node.server.close()


async def _status(node: LiveNode) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{node.base_url}/api/status", headers=AUTH) as response,
    ):
        assert response.status == 200
        status: dict[str, Any] = await response.json()
        return status


async def _generate(node: LiveNode, tokens: int) -> None:
    reply = await node.client.completions.create(
        model=MODEL, prompt="the room", max_tokens=tokens, extra_body={"ignore_eos": True}
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == tokens


def _without_clock(status: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in status.items() if k not in CLOCK_KEYS}
    out["work"] = {k: v for k, v in status["work"].items() if k not in _RATES}
    out["llm"] = {
        model: {k: v for k, v in figures.items() if k not in _RATES}
        for model, figures in status["llm"].items()
    }
    return out


def _state(obj: object) -> dict[str, Any]:
    """An object's plain attributes (counters, baselines, windows), copied."""
    names = getattr(obj, "__dict__", None) or {
        n: getattr(obj, n) for n in getattr(type(obj), "__slots__", ()) if hasattr(obj, n)
    }
    out: dict[str, Any] = {}
    for name, value in dict(names).items():
        if isinstance(value, int | float | str | bool | type(None)):
            out[name] = value
        elif isinstance(value, deque | list | tuple):
            out[name] = list(value)
        elif isinstance(value, dict):
            out[name] = dict(value)
    return out


def _controller(node: LiveNode) -> HeatController:
    service = node.app[HEAT_SERVICE_KEY]
    assert service.controller is not None
    return service.controller


async def test_tokens_before_the_first_status_read_count_for_energy_per_token(
    quiet_node: LiveNode,
) -> None:
    """Energy per token counts from the node's start, not from whenever someone first
    asked for the status (today's baseline was set by the first read)."""
    await _generate(quiet_node, 5)
    status = await _status(quiet_node)
    assert status["energy"]["tokens_since_start"] == 5
    assert status["llm"][MODEL]["tokens_total"] == 5


async def test_status_built_twice_is_identical_and_changes_nothing(quiet_node: LiveNode) -> None:
    await _generate(quiet_node, 4)
    await _status(quiet_node)
    await _generate(quiet_node, 3)  # new tokens since the last read
    node = quiet_node.app[NODE_KEY]
    controller = _controller(quiet_node)
    scheduler = await quiet_node.scheduler()
    watched = {
        "node": node,
        "controller": controller,
        "runner": controller.runner,
        "manager": quiet_node.manager,
        "engine stats": scheduler._stats,
    }
    before = {name: _state(obj) for name, obj in watched.items()}

    first, second = node.status(), node.status()
    over_http = await _status(quiet_node)

    assert {name: _state(obj) for name, obj in watched.items()} == before
    assert _without_clock(first) == _without_clock(second) == _without_clock(over_http)
    assert first["energy"]["tokens_since_start"] == 7
    assert first["work"]["requests_active"] == 0
