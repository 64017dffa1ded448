"""The node's MCP bridge seen from Home Assistant: as the "heatcompute local data" LLM
API, through Home Assistant's own `mcp` integration (2025.4, HTTP+SSE), and reading a
real Home Assistant's entities through its API. Real node, real Home Assistant; only the
recorder database is built by the test (with the recorder's tables and columns)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import dataclasses
from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import area_registry as ar, entity_registry as er, llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)
import voluptuous as vol

from custom_components.heatcompute.local_data import API_NAME, _voluptuous, api_id
from heatcompute_node.api.mcp import BRIDGE_KEY
from tests.node.mcp_home import ENERGY, NOW, TEMPERATURE, build_recorder

from .conftest import SMOLLM2, RunningNode, make_entry, setup_entry


def llm_context() -> llm.LLMContext:
    """An LLM context on either release (2025.7 dropped `user_prompt`)."""
    fields: dict[str, Any] = {
        "platform": "test",
        "context": Context(),
        "language": "en",
        "assistant": "conversation",
        "device_id": None,
    }
    if "user_prompt" in {field.name for field in dataclasses.fields(llm.LLMContext)}:
        fields["user_prompt"] = None  # 2025.4 (gone in 2025.7)
    return llm.LLMContext(**fields)


@pytest.fixture
def recorder_db(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "home-assistant_v2.db"
    path.parent.mkdir()
    build_recorder(path, state_rows=300)
    return path


@pytest.fixture
async def bridge_node(
    socket_enabled: None, tmp_path: Path, recorder_db: Path
) -> AsyncIterator[RunningNode]:
    node = RunningNode(tmp_path / "node")
    node.overrides = {
        "mcp_databases": (recorder_db,),
        "mcp_recorder_db": recorder_db,
        # Home Assistant 2025.4's mcp client sends no token: this test's loopback is the
        # "Supervisor network" the owner trusts.
        "mcp_trusted_networks": ("127.0.0.1/32",),
    }
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def _call(instance: llm.APIInstance, tool: str, **args: Any) -> Any:
    """A tool's JSON result, as the agent gets it."""
    result = await instance.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=args))
    return getattr(result, "data", result)  # 2026.x wraps it in a ToolResult


def _window() -> dict[str, str]:
    return {"start": (NOW - timedelta(hours=24)).isoformat(), "end": NOW.isoformat()}


async def test_the_node_registers_its_tools_as_an_llm_api(
    hass: HomeAssistant, bridge_node: RunningNode
) -> None:
    entry = make_entry(bridge_node)
    await setup_entry(hass, entry)
    apis = {api.id: api for api in llm.async_get_apis(hass)}
    assert apis[api_id(bridge_node.node.node_id)].name == API_NAME

    instance = await llm.async_get_api(hass, api_id(bridge_node.node.node_id), llm_context())
    names = [tool.name for tool in instance.tools]
    assert "ha_get_statistics" in names
    assert "query_database" in names
    assert "read_text_file" not in names  # no folders shared with this node

    result = await _call(
        instance, "ha_get_statistics", **{"statistic_ids": [ENERGY], "period": "day", **_window()}
    )
    rows = result["statistics"][ENERGY]
    # 0.5 kWh an hour over 48 hours; the last 24 span two UTC days: the running total at
    # the end of each, and what each added (the first day has no day before it here).
    assert [row["sum"] for row in rows] == [18.0, 24.0]
    assert rows[1]["change"] == 6.0

    refused = await _call(
        instance, "query_database", database="home-assistant_v2", sql="DELETE FROM states"
    )
    assert "read-only" in refused["error"]

    await hass.config_entries.async_unload(entry.entry_id)
    assert api_id(bridge_node.node.node_id) not in {api.id for api in llm.async_get_apis(hass)}


async def test_a_node_that_is_gone_leaves_the_agent_without_its_tools(
    hass: HomeAssistant, bridge_node: RunningNode
) -> None:
    entry = make_entry(bridge_node)
    await setup_entry(hass, entry)
    await bridge_node.stop()

    instance = await llm.async_get_api(hass, api_id(bridge_node.node.node_id), llm_context())

    assert instance.tools == []
    assert "cannot be reached" in instance.api_prompt
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_tool_gone_from_the_node_fails_the_call_not_the_agent(
    hass: HomeAssistant, bridge_node: RunningNode
) -> None:
    entry = make_entry(bridge_node)
    await setup_entry(hass, entry)
    instance = await llm.async_get_api(hass, api_id(bridge_node.node.node_id), llm_context())
    # The owner takes the recorder away while an agent holds the tool list.
    await bridge_node.stop()
    bridge_node.overrides = {}
    await bridge_node.start()
    with pytest.raises(HomeAssistantError, match="Unknown tool: ha_get_statistics"):
        await _call(instance, "ha_get_statistics", statistic_ids=[ENERGY])
    await bridge_node.stop()
    with pytest.raises(HomeAssistantError, match="heatcompute node"):
        await _call(instance, "ha_get_statistics", statistic_ids=[ENERGY])
    await hass.config_entries.async_unload(entry.entry_id)


def test_every_schema_type_of_the_node_converts() -> None:
    schema = _voluptuous(
        {
            "type": "object",
            "properties": {
                "ratio": {"type": "number"},
                "exact": {"type": "boolean"},
                "count": {"type": "integer", "minimum": 1, "maximum": 3},
                "text": {"type": "string"},
            },
            "required": ["text"],
        }
    )
    assert schema({"ratio": "0.5", "exact": True, "count": "2", "text": "x"}) == {
        "ratio": 0.5,
        "exact": True,
        "count": 2,
        "text": "x",
    }
    with pytest.raises(vol.Invalid):
        schema({"text": "x", "count": 9})


async def test_home_assistants_own_mcp_client_lists_and_calls_the_tools(
    hass: HomeAssistant, bridge_node: RunningNode
) -> None:
    """Home Assistant 2025.4's `mcp` integration speaks only HTTP+SSE: /mcp/sse."""
    entry = MockConfigEntry(
        domain="mcp",
        title="heatcompute",
        data={"url": f"http://127.0.0.1:{bridge_node.port}/mcp/sse"},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    instance = await llm.async_get_api(hass, f"mcp-{entry.entry_id}", llm_context())
    names = {tool.name for tool in instance.tools}
    assert {"ha_get_history", "ha_get_statistics", "list_databases", "query_database"} <= names

    result = await _call(
        instance, "ha_get_history", **{"entity_id": TEMPERATURE, "max_points": 5, **_window()}
    )
    assert result["isError"] is False
    history = json.loads(result["content"][0]["text"])
    assert len(history["points"]) == 5

    bad = await _call(
        instance, "query_database", database="home-assistant_v2", sql="ATTACH 'x.db' AS x"
    )
    assert bad["isError"] is True
    assert "read-only" in bad["content"][0]["text"]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_live_tools_read_home_assistant_through_its_api(
    hass: HomeAssistant,
    socket_enabled: None,
    tmp_path: Path,
    hass_client: Any,
    hass_access_token: str,
) -> None:
    """A bare node reaching Home Assistant with a URL and a long-lived token."""
    assert await async_setup_component(hass, "api", {})
    # Everything that adds HTTP routes first: the server's router freezes once it runs.
    assert await async_setup_component(hass, "conversation", {})
    area = ar.async_get(hass).async_create("Living room")
    entity = er.async_get(hass).async_get_or_create("sensor", "test", "living_temp")
    er.async_get(hass).async_update_entity(entity.entity_id, area_id=area.id)
    hass.states.async_set(
        entity.entity_id,
        "21.5",
        {"friendly_name": "Living temperature", "unit_of_measurement": "°C"},
    )
    hass.states.async_set("light.hall", "on", {"friendly_name": "Hall"})
    web = await hass_client()

    node = RunningNode(tmp_path / "node")
    node.overrides = {
        "mcp_ha_url": str(web.make_url("")).rstrip("/"),
        "mcp_ha_token": hass_access_token,
    }
    await node.start()
    try:
        entry = make_entry(node)
        await setup_entry(hass, entry)
        instance = await llm.async_get_api(hass, api_id(node.node.node_id), llm_context())
        names = {tool.name for tool in instance.tools}
        assert {"ha_list_entities", "ha_get_state"} <= names

        sensors = await _call(instance, "ha_list_entities", domain="sensor")
        by_id = {e["entity_id"]: e for e in sensors["entities"]}
        assert by_id[entity.entity_id]["unit"] == "°C"  # the node's own sensors are there too
        assert all(entity_id.startswith("sensor.") for entity_id in by_id)
        in_area = await _call(instance, "ha_list_entities", area="Living room")
        assert [e["entity_id"] for e in in_area["entities"]] == [entity.entity_id]
        state = await _call(instance, "ha_get_state", entity_id="light.hall")
        assert state["state"] == "on"
        missing = await _call(instance, "ha_get_state", entity_id="light.nowhere")
        assert "does not know" in missing["error"]
        sneaky = await _call(instance, "ha_get_state", entity_id="../config/core.entries")
        assert "not an entity id" in sneaky["error"]
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await node.stop()


async def test_an_assist_turn_reads_statistics_through_the_node(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path, recorder_db: Path
) -> None:
    """The heatcompute agent, on SmolLM2, asked about the heater's energy: it calls the
    statistics tool (a forced, grammar-constrained call), the node reads the recorder
    database, and the tool's result goes back to the model in the next request. The
    prose a 135M model makes of it is not what this test is about."""
    from custom_components.heatcompute import conversation as agent
    from custom_components.heatcompute.const import (
        CONF_LLM_API,
        CONF_MAX_TOKENS,
        CONF_TEMPERATURE,
        CONF_TOOL_MODE,
        TOOL_MODE_REQUIRED,
    )

    from .conftest import start_llm_node
    from .voice import ask, setup_agent, setup_home

    if not SMOLLM2.exists():
        pytest.skip("SmolLM2 is not linked into models/ (run scripts/setup)")
    # The agent asks without times: the tool's default is the last 24 hours, so this
    # database ends at the current hour.
    recorder_db.unlink()
    build_recorder(recorder_db, now=datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    # The owner shares the recorder for history and statistics only (no SQL).
    node = await start_llm_node(tmp_path / "node", SMOLLM2, {"mcp_recorder_db": recorder_db})
    bodies: list[dict[str, Any]] = []
    real_chat = getattr(agent, "chat")  # noqa: B009 - the name the agent calls through

    async def recording_chat(client: Any, body: dict[str, Any]) -> Any:
        bodies.append(json.loads(json.dumps(body)))
        return await real_chat(client, body)

    try:
        await setup_home(hass)
        _, agent_id = await setup_agent(
            hass,
            node,
            **{
                CONF_LLM_API: api_id(node.node.node_id),
                CONF_TOOL_MODE: TOOL_MODE_REQUIRED,
                CONF_MAX_TOKENS: 160,
                CONF_TEMPERATURE: 0.0,
            },
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(agent, "chat", recording_chat)
            await ask(hass, agent_id, f"Daily energy statistics of {ENERGY}?")
    finally:
        await node.stop()

    calls = dict(node.app[BRIDGE_KEY].stats.snapshot().calls_by_tool) if node.app else {}
    assert calls.get("ha_get_statistics") == 1, calls
    tool_messages = [m for body in bodies for m in body["messages"] if m["role"] == "tool"]
    assert tool_messages, "the tool's result never went back to the model"
    result = json.loads(tool_messages[-1]["content"])
    rows = result["statistics"][ENERGY]
    # The last full hour's running total: 48 hours at 0.5 kWh (the database's own rows).
    assert rows[-1]["sum"] == 24.0, result
    assert len(rows) >= 23
