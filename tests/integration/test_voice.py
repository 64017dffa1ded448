"""The voice assistant against real nodes running SmolLM2 on 127.0.0.1.

The tool-call test is reliable with a 135M model because of how the agent asks in its
"required" tool mode: `tool_choice: "required"` makes the node constrain the answer with
a grammar built from the tools' JSON schemas, and the agent first narrows those schemas
to the home (tool_schema.py): `name` may only be an exposed entity's name, unused slots
such as `device_class` are gone, and a call must name its target. With greedy sampling
(temperature 0) the model then calls HassTurnOn(name="Kitchen light") every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from homeassistant.components.climate.const import (
    ATTR_HVAC_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    HVACMode,
)
from homeassistant.components.homeassistant.exposed_entities import async_expose_entity
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import entity_registry as er, llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.heatcompute.const import (
    CONF_ASSISTANT,
    CONF_LLM_API,
    CONF_TEMPERATURE,
    CONF_TOOL_MODE,
    TOOL_MODE_REQUIRED,
)

from .conftest import RunningNode, make_entry, setup_entry

SMOLLM2 = Path(__file__).resolve().parents[2] / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
LIGHT = "light.kitchen"


@pytest.fixture
def smollm2() -> Path:
    if not SMOLLM2.exists():
        pytest.skip("SmolLM2 is not linked into models/ (run scripts/setup)")
    return SMOLLM2


async def start_llm_node(data_dir: Path, model: Path) -> RunningNode:
    node = RunningNode(data_dir, models=(model,))
    await node.start()
    return node


@pytest.fixture
async def llm_node(
    socket_enabled: None, tmp_path: Path, smollm2: Path
) -> AsyncIterator[RunningNode]:
    node = await start_llm_node(tmp_path / "node", smollm2)
    try:
        yield node
    finally:
        await node.stop()


async def setup_home(hass: HomeAssistant) -> None:
    """Assist's building blocks and one light, the only entity exposed to it."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "intent", {})
    assert await async_setup_component(hass, "conversation", {})
    hass.states.async_set(LIGHT, "off", {"friendly_name": "Kitchen light"})

    async def turn_on(call: ServiceCall) -> None:
        for entity_id in call.data[ATTR_ENTITY_ID]:
            hass.states.async_set(entity_id, "on", {"friendly_name": "Kitchen light"})

    hass.services.async_register("light", "turn_on", turn_on)
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
    result = await hass.services.async_call(
        "conversation", "process", data, blocking=True, return_response=True
    )
    assert isinstance(result, dict)
    return result


def light_state(hass: HomeAssistant) -> str:
    state = hass.states.get(LIGHT)
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


async def test_a_question_gets_an_answer(hass: HomeAssistant, llm_node: RunningNode) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, llm_node)

    result = await ask(hass, agent_id, "What is the capital of France?")

    assert result["response"]["response_type"] == "action_done"
    assert "Paris" in speech(result)
    # The conversation goes on with the same id (the chat log keeps the history).
    again = await ask(hass, agent_id, "And of Germany?", conversation_id=result["conversation_id"])
    assert again["conversation_id"] == result["conversation_id"]
    assert speech(again)


async def test_assist_tool_call_turns_on_the_light(
    hass: HomeAssistant, llm_node: RunningNode
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(
        hass, llm_node, **{CONF_LLM_API: llm.LLM_API_ASSIST, CONF_TOOL_MODE: TOOL_MODE_REQUIRED}
    )
    assert light_state(hass) == "off"

    result = await ask(hass, agent_id, "Turn on the kitchen light")

    assert light_state(hass) == "on"
    assert result["response"]["response_type"] == "action_done"
    assert speech(result)  # the model's own words after the tool's result


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "I can't reach the heatcompute node"), ("de", "Ich erreiche den heatcompute-Knoten")],
)
async def test_node_down_is_spoken_in_the_users_language(
    hass: HomeAssistant, llm_node: RunningNode, language: str, expected: str
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, llm_node)
    await llm_node.stop()

    result = await ask(hass, agent_id, "Hello?", language=language)

    assert result["response"]["response_type"] == "error"
    assert speech(result).startswith(expected)


def entity_of(hass: HomeAssistant, entry: MockConfigEntry, domain: str) -> str:
    entries = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return next(e.entity_id for e in entries if e.domain == domain)


async def test_two_nodes_route_by_heat_demand_and_fail_over(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, smollm2: Path
) -> None:
    await setup_home(hass)
    cold = await start_llm_node(tmp_path / "cold", smollm2)
    warm = await start_llm_node(tmp_path / "warm", smollm2)
    try:
        _, agent_id = await setup_agent(hass, warm)
        cold_entry, _ = await setup_agent(hass, cold)
        # The cold room's thermostat asks for heat (power mode: 60 % of 200 W).
        await hass.services.async_call(
            CLIMATE_DOMAIN,
            SERVICE_SET_HVAC_MODE,
            {
                ATTR_ENTITY_ID: entity_of(hass, cold_entry, CLIMATE_DOMAIN),
                ATTR_HVAC_MODE: HVACMode.HEAT,
            },
            blocking=True,
        )
        await until(lambda: cold_entry.runtime_data.coordinator.data.heat.wanted)

        # Routing: the warm node's own agent sends the work to the cold room's node.
        first = await ask(hass, agent_id, "What is the capital of France?")
        assert first["response"]["response_type"] == "action_done"
        assert cold.node.status()["llm"]
        assert _requests(cold) == 1
        assert _requests(warm) == 0

        # Failover: the cold node goes away while it works on the next question.
        asking = asyncio.create_task(
            ask(hass, agent_id, "Name a colour.", conversation_id=first["conversation_id"])
        )
        await until(lambda: _busy(cold))
        await cold.stop()
        second = await asking

        assert second["response"]["response_type"] == "action_done"
        assert speech(second)
        assert _requests(warm) == 1
    finally:
        await cold.stop()
        await warm.stop()


def _llm_figures(node: RunningNode) -> dict[str, Any]:
    figures = node.node.status().get("llm") or {}
    return next(iter(figures.values()), {})


def _requests(node: RunningNode) -> int:
    return int(_llm_figures(node).get("requests_total", 0))


def _busy(node: RunningNode) -> bool:
    figures = _llm_figures(node)
    return bool(figures.get("requests_active") or figures.get("queue_depth"))
