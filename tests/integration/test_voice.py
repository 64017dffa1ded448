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
from pathlib import Path
from typing import Any

from homeassistant.components.climate.const import (
    ATTR_HVAC_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    HVACMode,
)
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, llm
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.chat_client import list_models
from custom_components.heatcompute.const import (
    CONF_LLM_API,
    CONF_MAX_TOKENS,
    CONF_TEMPERATURE,
    CONF_TOOL_MODE,
    TOOL_MODE_REQUIRED,
)

from .conftest import RunningNode, start_llm_node
from .voice import ask, light_state, setup_agent, setup_home, speech, until


async def test_a_question_gets_an_answer(hass: HomeAssistant, smollm2_node: RunningNode) -> None:
    await setup_home(hass)
    entry, agent_id = await setup_agent(hass, smollm2_node)
    # The node says how much its model holds: the agent fits its prompts to that.
    models = await list_models(entry.runtime_data.client)
    assert [(m.id, m.context_length) for m in models] == [("SmolLM2-135M-Instruct.Q8_0", 8192)]

    result = await ask(hass, agent_id, "What is the capital of France?")

    assert result["response"]["response_type"] == "action_done"
    assert "Paris" in speech(result)
    # The conversation goes on with the same id (the chat log keeps the history).
    again = await ask(hass, agent_id, "And of Germany?", conversation_id=result["conversation_id"])
    assert again["conversation_id"] == result["conversation_id"]
    assert speech(again)


async def test_assist_tool_call_turns_on_the_light(
    hass: HomeAssistant, smollm2_node: RunningNode
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(
        hass,
        smollm2_node,
        # A spoken confirmation is short; 135M models otherwise ramble to the limit.
        # Greedy: the test is about the pipeline, not about the model's luck in sampling.
        **{
            CONF_LLM_API: llm.LLM_API_ASSIST,
            CONF_TOOL_MODE: TOOL_MODE_REQUIRED,
            CONF_MAX_TOKENS: 48,
            CONF_TEMPERATURE: 0.0,
        },
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
    hass: HomeAssistant, smollm2_node: RunningNode, language: str, expected: str
) -> None:
    await setup_home(hass)
    _, agent_id = await setup_agent(hass, smollm2_node)
    await smollm2_node.stop()

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
        # Long answers: the cold node must still be working when it is stopped.
        _, agent_id = await setup_agent(hass, warm, **{CONF_MAX_TOKENS: 256, CONF_TEMPERATURE: 0.0})
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
            ask(
                hass,
                agent_id,
                "Tell me a long story about a lighthouse keeper.",
                conversation_id=first["conversation_id"],
            )
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
