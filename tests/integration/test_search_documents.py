"""The node's document index in Home Assistant: the search_documents action, the index
sensors and the filler switch's activity, end to end.

Real: Home Assistant with the integration set up, a node on 127.0.0.1 indexing a folder
the test writes, with the real embedding model (all-MiniLM-L6-v2 on llama.cpp). The
node's hardware is the twin (no power sensor here). Indexing is started through the
node's heat: Home Assistant asks for heat, the node's planner runs the backlog.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
import pytest
import voluptuous as vol

from custom_components.heatcompute.const import DOMAIN

from .conftest import RunningNode, make_entry, setup_entry, wait_for_state

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "models" / "all-MiniLM-L6-v2.gguf"
INDEXED = "sensor.heatcompute_indexed_files"
BACKLOG = "sensor.heatcompute_files_waiting_to_be_indexed"
FILLER = "switch.heatcompute_filler_heat"

DOCUMENTS = {
    "dishwasher.md": (
        "# Dishwasher\n\nBought at the electronics shop in March 2025.\n\n"
        "The manufacturer's guarantee covers parts and labour for two years from the "
        "date on the receipt; keep the receipt in the blue folder."
    ),
    "lentils.md": (
        "# Lentil soup\n\nSimmer the red lentils with cumin, garlic and a bay leaf for "
        "forty minutes, then blend half of it and season with lemon."
    ),
    "school.txt": (
        "The class trip to the natural history museum leaves at eight in the morning. "
        "Children bring a packed lunch, a raincoat and a bus ticket."
    ),
    "insurance.md": (
        "# Home insurance\n\nWater damage from burst pipes is covered; the policy's excess "
        "is three hundred euros per claim. Call the hotline before any repair."
    ),
}


@pytest.fixture
async def index_node(socket_enabled: None, tmp_path: Path) -> AsyncIterator[RunningNode]:
    if not MINILM.exists():
        pytest.skip("all-MiniLM-L6-v2 is not converted into models/ (run scripts/setup)")
    folder = tmp_path / "papers"
    folder.mkdir()
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    running = RunningNode(tmp_path / "node", models=(MINILM,))
    running.overrides = {"mcp_folders": (folder,)}
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def search(hass: HomeAssistant, entry_id: str, **data: Any) -> dict[str, Any]:
    response = await hass.services.async_call(
        DOMAIN,
        "search_documents",
        {"config_entry_id": entry_id, **data},
        blocking=True,
        return_response=True,
    )
    assert response is not None
    return dict(response)


async def test_heat_indexes_the_folder_and_the_action_finds_by_meaning(
    hass: HomeAssistant, index_node: RunningNode
) -> None:
    entry = make_entry(index_node)
    await setup_entry(hass, entry)
    # Before any heat: every file waits, none is searchable; filler (off) says why it
    # wouldn't run anyway.
    assert hass.states.get(BACKLOG).state == str(len(DOCUMENTS))  # type: ignore[union-attr]
    assert hass.states.get(INDEXED).state == "0"  # type: ignore[union-attr]
    filler = hass.states.get(FILLER)
    assert filler is not None
    assert filler.attributes["activity"] == "switched_off"
    # Filler on, heat wanted: the backlog is the useful work that comes first.
    await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: FILLER}, blocking=True)
    await hass.services.async_call(
        DOMAIN,
        "set_heat_target",
        {"config_entry_id": entry.entry_id, "power_w": 120, "duration": {"minutes": 10}},
        blocking=True,
    )
    await wait_for_state(hass, INDEXED, lambda s: s == str(len(DOCUMENTS)), timeout=120)
    await wait_for_state(hass, BACKLOG, lambda s: s == "0", timeout=10)

    reply = await search(
        hass, entry.entry_id, query="When does the guarantee on the kitchen appliance end?"
    )
    passages = reply["passages"]
    assert reply["query"] == "When does the guarantee on the kitchen appliance end?"
    assert 1 <= len(passages) <= 5
    best = passages[0]
    assert Path(best["file"]).name == "dishwasher.md"
    assert best["chunk"] == 0
    assert best["line"] >= 1
    assert best["page"] is None
    assert "two years" in best["text"]
    assert passages == sorted(passages, key=lambda p: -p["score"])

    reply = await search(hass, entry.entry_id, query="excess for a burst pipe claim", limit=1)
    assert [Path(p["file"]).name for p in reply["passages"]] == ["insurance.md"]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_filler_waits_while_the_backlog_is_useful_work(
    hass: HomeAssistant, index_node: RunningNode
) -> None:
    entry = make_entry(index_node)
    await setup_entry(hass, entry)
    await hass.services.async_call("switch", "turn_on", {ATTR_ENTITY_ID: FILLER}, blocking=True)
    filler = hass.states.get(FILLER)
    assert filler is not None
    assert filler.state == "on"
    assert filler.attributes["activity"] == "useful_work_first"
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"query": ""}, vol.Invalid),
        ({"query": "   "}, vol.Invalid),
        ({"query": "boiler", "limit": 0}, vol.Invalid),
        ({"query": "boiler", "limit": 51}, vol.Invalid),
        ({"query": "boiler", "limit": "many"}, vol.Invalid),
        ({}, vol.Invalid),
    ],
)
async def test_bad_input_is_refused_before_it_reaches_the_node(
    hass: HomeAssistant, index_node: RunningNode, data: dict[str, Any], error: type[Exception]
) -> None:
    entry = make_entry(index_node)
    await setup_entry(hass, entry)
    with pytest.raises(error):
        await search(hass, entry.entry_id, **data)
    # The service stays up: a good query still answers.
    assert (await search(hass, entry.entry_id, query="soup"))["query"] == "soup"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_node_without_an_index_says_so_in_the_user_s_words(
    hass: HomeAssistant, node: RunningNode
) -> None:
    entry = make_entry(node)
    await setup_entry(hass, entry)
    # No folder shared: no index, so no index sensors either.
    assert hass.states.get(INDEXED) is None
    with pytest.raises(ServiceValidationError) as caught:
        await search(hass, entry.entry_id, query="boiler warranty")
    assert caught.value.translation_key == "index_disabled"
    assert caught.value.translation_placeholders == {"title": entry.title}
    with pytest.raises(ServiceValidationError) as unknown:
        await search(hass, "no-such-entry", query="boiler warranty")
    assert unknown.value.translation_key == "entry_not_found"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_node_without_an_embedding_model_says_so(
    hass: HomeAssistant, socket_enabled: None, tmp_path: Path
) -> None:
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "note.md").write_text("The boiler was serviced in October.", encoding="utf-8")
    running = RunningNode(tmp_path / "node")
    running.overrides = {"mcp_folders": (folder,)}
    await running.start()
    try:
        entry = make_entry(running)
        await setup_entry(hass, entry)
        with pytest.raises(HomeAssistantError) as caught:
            await search(hass, entry.entry_id, query="boiler")
        assert caught.value.translation_key == "index_no_model"
        assert not isinstance(caught.value, ServiceValidationError)
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await running.stop()
