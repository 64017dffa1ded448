"""Repair issues: a node speaking an unknown API version, a room sensor that is gone."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.repairs import DOMAIN as REPAIRS_DOMAIN
from homeassistant.const import UnitOfTemperature
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)
from pytest_homeassistant_custom_component.typing import (  # type: ignore[import-untyped]
    ClientSessionGenerator,
)

from custom_components.heatcompute.const import CONF_OUTDOOR_SENSOR, CONF_ROOM_SENSOR, DOMAIN

from .conftest import RunningNode, make_entry, setup_entry, state

ROOM = "sensor.room_temperature"
NEW_ROOM = "sensor.living_room_temperature"
CLIMATE = "climate.heatcompute"


def set_sensor(hass: HomeAssistant, entity_id: str, value: str) -> None:
    hass.states.async_set(entity_id, value, {"unit_of_measurement": UnitOfTemperature.CELSIUS})


def issue(hass: HomeAssistant, kind: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{kind}_{entry.entry_id}")


async def until_issue(
    hass: HomeAssistant, kind: str, entry: MockConfigEntry, *, present: bool
) -> None:
    """Wait (on the issue registry's events) until the issue is there, or gone."""
    done = asyncio.Event()

    @callback
    def check(_event: Event[ir.EventIssueRegistryUpdatedData] | None = None) -> None:
        if (issue(hass, kind, entry) is not None) == present:
            done.set()

    unsubscribe = hass.bus.async_listen(ir.EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED, check)
    try:
        check()
        async with asyncio.timeout(5):
            await done.wait()
    finally:
        unsubscribe()


async def test_a_node_with_an_unknown_api_version_raises_an_issue(
    hass: HomeAssistant,
    node: RunningNode,
    loaded_entry: MockConfigEntry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert issue(hass, "unsupported_api_version", loaded_entry) is None

    # A newer node (the integration not yet updated) says so in every status.
    monkeypatch.setattr("heatcompute_node.node.API_VERSION", "2")
    node.node.set_heat(node.node.heat)
    await until_issue(hass, "unsupported_api_version", loaded_entry, present=True)
    raised = issue(hass, "unsupported_api_version", loaded_entry)
    assert raised is not None
    assert raised.severity is ir.IssueSeverity.ERROR
    assert not raised.is_fixable
    assert raised.translation_placeholders == {
        "name": "heatcompute",
        "version": "2",
        "supported": "1",
    }

    # Updated: the issue goes by itself.
    monkeypatch.setattr("heatcompute_node.node.API_VERSION", "1")
    node.node.set_heat(node.node.heat)
    await until_issue(hass, "unsupported_api_version", loaded_entry, present=False)


async def test_a_room_sensor_that_disappears_raises_a_fixable_issue(
    hass: HomeAssistant, node: RunningNode
) -> None:
    set_sensor(hass, ROOM, "20.0")
    entry = make_entry(node, options={CONF_ROOM_SENSOR: ROOM})
    await setup_entry(hass, entry)
    assert issue(hass, "room_sensor_missing", entry) is None

    hass.states.async_remove(ROOM)
    await hass.async_block_till_done()
    raised = issue(hass, "room_sensor_missing", entry)
    assert raised is not None
    assert raised.is_fixable
    assert raised.translation_placeholders == {"name": "heatcompute", "sensor": ROOM}

    # An unavailable sensor is a sensor that is down, not gone.
    hass.states.async_set(ROOM, "unavailable")
    await hass.async_block_till_done()
    assert issue(hass, "room_sensor_missing", entry) is None

    # Unloading takes the entry's issues with it.
    hass.states.async_remove(ROOM)
    await hass.async_block_till_done()
    assert issue(hass, "room_sensor_missing", entry) is not None
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert issue(hass, "room_sensor_missing", entry) is None


async def repairs_client(hass: HomeAssistant, hass_client: ClientSessionGenerator) -> Any:
    """The repairs API, as the frontend uses it (set up before the HTTP client starts)."""
    assert await async_setup_component(hass, REPAIRS_DOMAIN, {})
    return await hass_client()


async def start_fix(client: Any, entry: MockConfigEntry) -> dict[str, Any]:
    response = await client.post(
        "/api/repairs/issues/fix",
        json={"handler": DOMAIN, "issue_id": f"room_sensor_missing_{entry.entry_id}"},
    )
    assert response.status == 200
    flow: dict[str, Any] = await response.json()
    return flow


async def test_the_fix_flow_chooses_a_new_room_sensor(
    hass: HomeAssistant, node: RunningNode, hass_client: ClientSessionGenerator
) -> None:
    # The sensor was renamed while Home Assistant was down: it is gone at start.
    entry = make_entry(node, options={CONF_ROOM_SENSOR: ROOM})
    await setup_entry(hass, entry)
    assert issue(hass, "room_sensor_missing", entry) is not None

    client = await repairs_client(hass, hass_client)
    flow = await start_fix(client, entry)
    assert flow["type"] == "form"
    assert flow["step_id"] == "choose_sensor"
    assert flow["description_placeholders"] == {"name": "heatcompute", "sensor": ROOM}

    set_sensor(hass, NEW_ROOM, "19.5")
    response = await client.post(
        f"/api/repairs/issues/fix/{flow['flow_id']}", json={CONF_ROOM_SENSOR: NEW_ROOM}
    )
    assert response.status == 200
    assert (await response.json())["type"] == "create_entry"
    await hass.async_block_till_done()

    assert entry.options[CONF_ROOM_SENSOR] == NEW_ROOM
    assert issue(hass, "room_sensor_missing", entry) is None
    # The entry reloaded onto the new sensor.
    assert state(hass, CLIMATE).attributes["current_temperature"] == 19.5


async def test_the_fix_flow_can_turn_to_power_mode(
    hass: HomeAssistant, node: RunningNode, hass_client: ClientSessionGenerator
) -> None:
    set_sensor(hass, "sensor.outdoor", "3.0")
    entry = make_entry(
        node, options={CONF_ROOM_SENSOR: ROOM, CONF_OUTDOOR_SENSOR: "sensor.outdoor"}
    )
    await setup_entry(hass, entry)
    client = await repairs_client(hass, hass_client)
    flow = await start_fix(client, entry)
    response = await client.post(f"/api/repairs/issues/fix/{flow['flow_id']}", json={})
    assert (await response.json())["type"] == "create_entry"
    await hass.async_block_till_done()

    assert CONF_ROOM_SENSOR not in entry.options
    assert CONF_OUTDOOR_SENSOR not in entry.options
    assert issue(hass, "room_sensor_missing", entry) is None
    assert hass.states.get("number.heatcompute_power_mode_heat_target") is not None


async def test_the_fix_flow_of_a_removed_node_aborts(
    hass: HomeAssistant, node: RunningNode, hass_client: ClientSessionGenerator
) -> None:
    entry = make_entry(node, options={CONF_ROOM_SENSOR: ROOM})
    await setup_entry(hass, entry)
    client = await repairs_client(hass, hass_client)
    # The issue outlives its entry only in a race: the flow must still end cleanly.
    ir.async_create_issue(
        hass,
        DOMAIN,
        "room_sensor_missing_gone",
        is_fixable=True,
        severity=ir.IssueSeverity.ERROR,
        translation_key="room_sensor_missing",
        translation_placeholders={"name": "old", "sensor": ROOM},
        data={"entry_id": "gone"},
    )
    response = await client.post(
        "/api/repairs/issues/fix", json={"handler": DOMAIN, "issue_id": "room_sensor_missing_gone"}
    )
    result = await response.json()
    assert result["type"] == "abort"
    assert result["reason"] == "entry_not_found"
