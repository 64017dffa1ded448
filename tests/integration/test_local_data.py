"""The node's MCP bridge seen from Home Assistant: as the "heatcompute local data" LLM
API, through Home Assistant's own `mcp` integration (2025.4, HTTP+SSE), and reading a
real Home Assistant's entities through its API. Real node, real Home Assistant; only the
recorder database is built by the test (with the recorder's tables and columns)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
import json
from pathlib import Path
from typing import Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import area_registry as ar, entity_registry as er, llm
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.local_data import API_NAME, api_id
from tests.node.mcp_home import ENERGY, NOW, TEMPERATURE, build_recorder

from .conftest import RunningNode, make_entry, setup_entry


def _context() -> llm.LLMContext:
    return llm.LLMContext(
        platform="test",
        context=Context(),
        user_prompt=None,
        language="en",
        assistant="conversation",
        device_id=None,
    )


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
        # Home Assistant 2025.4's mcp client sends no token: this test's loopback is the
        # "Supervisor network" the owner trusts.
        "mcp_trusted_networks": ("127.0.0.1/32",),
    }
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def _window() -> dict[str, str]:
    return {"start": (NOW - timedelta(hours=24)).isoformat(), "end": NOW.isoformat()}


async def test_the_node_registers_its_tools_as_an_llm_api(
    hass: HomeAssistant, bridge_node: RunningNode
) -> None:
    entry = make_entry(bridge_node)
    await setup_entry(hass, entry)
    apis = {api.id: api for api in llm.async_get_apis(hass)}
    assert apis[api_id(bridge_node.node.node_id)].name == API_NAME

    instance = await llm.async_get_api(hass, api_id(bridge_node.node.node_id), _context())
    names = [tool.name for tool in instance.tools]
    assert "ha_get_statistics" in names and "query_database" in names
    assert "read_text_file" not in names  # no folders shared with this node

    result = await instance.async_call_tool(
        llm.ToolInput(
            tool_name="ha_get_statistics",
            tool_args={"statistic_ids": [ENERGY], "period": "day", **_window()},
        )
    )
    rows = result["statistics"][ENERGY]
    # 0.5 kWh an hour over 48 hours; the last 24 span two UTC days: the running total at
    # the end of each, and what each added (the first day has no day before it here).
    assert [row["sum"] for row in rows] == [18.0, 24.0]
    assert rows[1]["change"] == 6.0

    refused = await instance.async_call_tool(
        llm.ToolInput(
            tool_name="query_database",
            tool_args={"database": "home-assistant_v2", "sql": "DELETE FROM states"},
        )
    )
    assert "read-only" in refused["error"]

    await hass.config_entries.async_unload(entry.entry_id)
    assert api_id(bridge_node.node.node_id) not in {api.id for api in llm.async_get_apis(hass)}


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

    instance = await llm.async_get_api(hass, f"mcp-{entry.entry_id}", _context())
    names = {tool.name for tool in instance.tools}
    assert {"ha_get_history", "ha_get_statistics", "list_databases", "query_database"} <= names

    result = await instance.async_call_tool(
        llm.ToolInput(
            tool_name="ha_get_history",
            tool_args={"entity_id": TEMPERATURE, "max_points": 5, **_window()},
        )
    )
    assert result["isError"] is False
    history = json.loads(result["content"][0]["text"])
    assert len(history["points"]) == 5

    bad = await instance.async_call_tool(
        llm.ToolInput(
            tool_name="query_database",
            tool_args={"database": "home-assistant_v2", "sql": "ATTACH 'x.db' AS x"},
        )
    )
    assert bad["isError"] is True and "read-only" in bad["content"][0]["text"]
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
    hass.states.async_set(entity.entity_id, "21.5", {"friendly_name": "Living temperature", "unit_of_measurement": "°C"})
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
        instance = await llm.async_get_api(hass, api_id(node.node.node_id), _context())
        names = {tool.name for tool in instance.tools}
        assert {"ha_list_entities", "ha_get_state"} <= names

        async def run(tool: str, **args: Any) -> Any:
            return await instance.async_call_tool(llm.ToolInput(tool_name=tool, tool_args=args))

        sensors = await run("ha_list_entities", domain="sensor")
        by_id = {e["entity_id"]: e for e in sensors["entities"]}
        assert by_id[entity.entity_id]["unit"] == "°C"  # the node's own sensors are there too
        assert all(entity_id.startswith("sensor.") for entity_id in by_id)
        in_area = await run("ha_list_entities", area="Living room")
        assert [e["entity_id"] for e in in_area["entities"]] == [entity.entity_id]
        state = await run("ha_get_state", entity_id="light.hall")
        assert state["state"] == "on"
        missing = await run("ha_get_state", entity_id="light.nowhere")
        assert "does not know" in missing["error"]
        sneaky = await run("ha_get_state", entity_id="../config/core.entries")
        assert "not an entity id" in sneaky["error"]
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await node.stop()
