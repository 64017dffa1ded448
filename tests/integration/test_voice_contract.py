"""What the assistant reads from the node's contract, against real nodes on 127.0.0.1:
the "Serve requests" switch (503 `not_serving`), each model's kind (only chat models are
chosen and offered) and a context overflow's figures (fields, not a sentence).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
import pytest
import voluptuous as vol

from custom_components.heatcompute.chat_client import (
    HeatcomputeContextLengthError,
    chat,
    list_models,
)
from custom_components.heatcompute.client import HeatcomputeClient, NodeStatus
from custom_components.heatcompute.const import CONF_ASSISTANT, CONF_MODEL, DOMAIN
from custom_components.heatcompute.model_catalog import recommended_models
from custom_components.heatcompute.router import Node, NodeRouter
from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.engines.llm.models import EngineSettings
from heatcompute_node.heat.target import HeatTarget

from .conftest import SMOLLM2, RunningNode, start_llm_node
from .voice import ask, setup_agent, setup_home, speech

MINILM = SMOLLM2.parent / "all-MiniLM-L6-v2.gguf"
CHAT_MODEL = SMOLLM2.stem


def requests_total(node: RunningNode) -> int:
    figures = node.node.status().get("llm") or {}
    return sum(int(model.get("requests_total", 0)) for model in figures.values())


async def switch_serving(node: RunningNode, on: bool) -> None:
    """Flip the node's switch behind Home Assistant's back (another client, the UI)."""
    await node.node.set_config(replace(node.node.config, serve_requests=on))


# --- the "Serve requests" switch --------------------------------------------------------


async def test_the_router_skips_a_node_that_does_not_serve(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, smollm2: Path
) -> None:
    """The router's look at the node is stale (it still says "serving"): the node's own
    refusal sends the request to the next node."""
    first = await start_llm_node(tmp_path / "first", smollm2)
    second = await start_llm_node(tmp_path / "second", smollm2)
    try:
        # The first node's room wants heat: it is first in line.
        first.node.set_heat(HeatTarget(mode="heat", target_w=100.0))
        session = async_get_clientsession(hass)
        nodes = [
            Node(
                node_id=running.node.node_id,
                name=name,
                client=HeatcomputeClient(
                    running.host, running.port, running.token, session=session
                ),
                status=NodeStatus.from_dict(running.node.status()),
                healthy=True,
            )
            for name, running in (("first", first), ("second", second))
        ]
        await switch_serving(first, False)

        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        answered_by, reply = await NodeRouter().run(
            "conversation-1", nodes, None, lambda node: chat(node.client, body)
        )

        assert answered_by.name == "second"
        assert reply.finish_reason is not None
        assert requests_total(first) == 0
        assert requests_total(second) == 1
    finally:
        await first.stop()
        await second.stop()


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "switched off for requests"), ("de", "beantworten gerade keine Anfragen")],
)
async def test_a_node_switched_off_for_requests_answers_nothing(
    hass: HomeAssistant, smollm2_node: RunningNode, language: str, expected: str
) -> None:
    await setup_home(hass)
    entry, agent_id = await setup_agent(hass, smollm2_node)
    switch = er.async_get(hass).async_get_entity_id(
        "switch", DOMAIN, f"{smollm2_node.node.node_id}_serve_requests"
    )
    assert switch is not None
    await hass.services.async_call(
        "switch", SERVICE_TURN_OFF, {ATTR_ENTITY_ID: switch}, blocking=True
    )
    assert smollm2_node.node.config.serve_requests is False

    result = await ask(hass, agent_id, "What is the capital of France?", language=language)

    assert result["response"]["response_type"] == "error"
    assert expected in speech(result)
    assert requests_total(smollm2_node) == 0


# --- the model's kind -------------------------------------------------------------------


@pytest.fixture
async def node_with_embeddings(
    socket_enabled: None, tmp_path: Path, smollm2: Path
) -> AsyncIterator[RunningNode]:
    """A node whose embedding model is listed before its chat model."""
    if not MINILM.exists():
        pytest.skip("all-MiniLM-L6-v2 is not converted into models/ (run scripts/setup)")
    node = RunningNode(tmp_path / "node", models=(MINILM, smollm2))
    await node.start()
    assert node.app is not None
    node.app[MANAGER_KEY].settings = EngineSettings(n_ctx=8192, n_slots=4, n_threads=1)
    try:
        yield node
    finally:
        await node.stop()


async def test_the_assistant_chooses_and_offers_only_chat_models(
    hass: HomeAssistant, node_with_embeddings: RunningNode
) -> None:
    await setup_home(hass)
    entry, agent_id = await setup_agent(hass, node_with_embeddings)

    result = await ask(hass, agent_id, "What is the capital of France?")

    assert result["response"]["response_type"] == "action_done"
    assert "Paris" in speech(result)
    status = node_with_embeddings.node.status()
    assert list(status["llm"]) == [CHAT_MODEL]
    models = await list_models(entry.runtime_data.client)
    assert [(m.id, m.kind, m.state) for m in models] == [
        ("all-MiniLM-L6-v2", "embedding", "available"),
        (CHAT_MODEL, "chat", "loaded"),
    ]

    form = await hass.config_entries.options.async_init(entry.entry_id)
    assert form["type"] is FlowResultType.FORM
    assert form["data_schema"] is not None
    # The node's own models come first, then the recommended ones a save downloads.
    on_node = [
        choice for choice in model_choices(form["data_schema"]) if choice not in RECOMMENDED_IDS
    ]
    assert on_node == [CHAT_MODEL]


RECOMMENDED_IDS = {model.model_id for model in recommended_models()}


def model_choices(schema: vol.Schema) -> list[str]:
    """The model selector's option values in the assistant section of the options form."""
    section = next(value for key, value in schema.schema.items() if key == CONF_ASSISTANT)
    selector = next(value for key, value in section.schema.schema.items() if key == CONF_MODEL)
    return [option["value"] for option in selector.config["options"]]


# --- a context overflow -----------------------------------------------------------------


async def test_a_context_overflow_carries_its_figures(
    hass: HomeAssistant, smollm2_node: RunningNode
) -> None:
    entry, _ = await setup_agent(hass, smollm2_node)
    client = entry.runtime_data.client
    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": "heat " * 9000}],
        "max_tokens": 64,
    }
    with pytest.raises(HeatcomputeContextLengthError) as err:
        await chat(client, body)
    assert err.value.context_length == 8192
    assert err.value.prompt_tokens is not None
    assert err.value.prompt_tokens > 8192
    assert err.value.details["max_tokens"] == 64
