"""Helpers of the voice-assistant tests: a home with one light, an agent, a question."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from unittest.mock import patch

from homeassistant.components.homeassistant.const import DATA_EXPOSED_ENTITIES
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.const import CONF_ASSISTANT, CONF_TEMPERATURE

from .conftest import RunningNode, make_entry, setup_entry

LIGHT = "light.kitchen"
ASKED_AT = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
"""The moment every question is asked at, as far as the prompts can tell."""


def _asked_at(time_zone: tzinfo | None = None) -> datetime:
    return ASKED_AT.astimezone(time_zone or dt_util.get_default_time_zone())


async def setup_home(hass: HomeAssistant) -> None:
    """Assist's building blocks and one light, the only entity exposed to it."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "intent", {})
    assert await async_setup_component(hass, "conversation", {})
    hass.states.async_set(LIGHT, "off", {"friendly_name": "Kitchen light"})

    async def turn_on(call: ServiceCall) -> None:
        for entity_id in call.data[ATTR_ENTITY_ID]:
            old = hass.states.get(entity_id)
            hass.states.async_set(entity_id, "on", old.attributes if old else None)

    hass.services.async_register("light", "turn_on", turn_on)
    # New entities (the node's own climate and switches) stay hidden from Assist.
    hass.data[DATA_EXPOSED_ENTITIES].async_set_expose_new_entities("conversation", False)
    for state in hass.states.async_all():
        async_expose_entity(hass, "conversation", state.entity_id, state.entity_id == LIGHT)


async def setup_agent(
    hass: HomeAssistant, node: RunningNode, **assistant: Any
) -> tuple[MockConfigEntry, str]:
    """A node's entry with the given assistant options; returns it and the agent's id."""
    options = {CONF_ASSISTANT: {CONF_TEMPERATURE: 0.0, **assistant}}
    entry = make_entry(node, options=options)
    await setup_entry(hass, entry)
    agent_id = er.async_get(hass).async_get_entity_id(
        "conversation", "heatcompute", f"{node.node.node_id}_assistant"
    )
    assert agent_id is not None
    return entry, agent_id


async def ask(
    hass: HomeAssistant,
    agent_id: str,
    text: str,
    *,
    language: str = "en",
    conversation_id: str | None = None,
) -> dict[str, Any]:
    data = {"text": text, "agent_id": agent_id, "language": language}
    if conversation_id:
        data["conversation_id"] = conversation_id
    # The system prompt carries the time of day (Home Assistant's and the agent's), and a
    # greedy answer follows every token of it: asked at the wall clock's time, the same
    # question got a call to HassCancelAllTimers instead of HassTurnOn in one CI run.
    # The prompt sees one fixed moment, so an answer depends on the code alone.
    with patch.object(dt_util, "now", _asked_at):
        result = await hass.services.async_call(
            "conversation", "process", data, blocking=True, return_response=True
        )
    assert isinstance(result, dict)
    return result


def tool_named(tools: list[dict[str, Any]], bare_name: str) -> str:
    """The real name of Assist's tool `bare_name` ("intent__HassTurnOn" since 2026.9)."""
    names = [tool["function"]["name"] for tool in tools]
    found = [name for name in names if name.rpartition("__")[2] == bare_name]
    assert len(found) == 1, names
    return str(found[0])


def light_state(hass: HomeAssistant, entity_id: str = LIGHT) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


def speech(result: dict[str, Any]) -> str:
    return str(result["response"]["speech"]["plain"]["speech"])


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 60.0) -> None:
    """Wait for a condition another task reaches (checked every 20 ms)."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)
