"""Home Assistant against a real node on 127.0.0.1: no mocked client anywhere."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest.mock import patch

from homeassistant.components.climate.const import (
    ATTR_HVAC_ACTION,
    ATTR_HVAC_MODE,
    ATTR_PRESET_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    SERVICE_SET_PRESET_MODE,
    SERVICE_SET_TEMPERATURE,
    HVACAction,
    HVACMode,
)
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_TEMPERATURE,
    EntityCategory,
    UnitOfTemperature,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.const import CONF_ROOM_SENSOR, DOMAIN
from heatcompute_node.heat.target import HeatTarget

from .conftest import (
    RunningNode,
    heat_mode,
    is_available,
    is_unavailable,
    make_entry,
    setup_entry,
    state,
    wait_for_state,
)

CLIMATE = "climate.heatcompute"
ROOM = "sensor.room_temperature"


def set_room(hass: HomeAssistant, celsius: float) -> None:
    hass.states.async_set(
        ROOM,
        str(celsius),
        {"unit_of_measurement": UnitOfTemperature.CELSIUS, "device_class": "temperature"},
    )


async def test_the_add_on_device_links_to_its_dashboard(
    hass: HomeAssistant, node: RunningNode
) -> None:
    """A node announced by the add-on: the device page opens the add-on's dashboard."""
    entry = make_entry(node, addon_slug="local_heatcompute")
    await setup_entry(hass, entry)
    device = dr.async_get(hass).async_get_device({(DOMAIN, node.status().node_id)})
    assert device is not None
    assert device.configuration_url == "homeassistant://hassio/ingress/local_heatcompute"
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_entities_mirror_the_node(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """Every entity shows what the node's status says.

    The twin's watts follow this process's CPU use and change every 0.1 s, so the power
    is compared with the status Home Assistant last received (and that with the node's
    nameplate range); the slow figures are compared with the node's status directly."""
    assert loaded_entry.state is ConfigEntryState.LOADED
    status = node.status()
    received = loaded_entry.runtime_data.coordinator.data
    assert received.node_id == status.node_id
    assert float(state(hass, "sensor.heatcompute_power").state) == pytest.approx(
        received.power_w, abs=0.1
    )
    assert received.power_w is not None
    assert 0.0 <= received.power_w <= node.max_power_w
    assert float(state(hass, "sensor.heatcompute_energy").state) == pytest.approx(
        status.energy_kwh, abs=1e-3
    )
    assert float(state(hass, "sensor.heatcompute_heat_target").state) == 0.0
    assert state(hass, "sensor.heatcompute_jobs_pending").state == str(status.jobs_pending)
    assert state(hass, CLIMATE).state == HVACMode.OFF

    device = dr.async_get(hass).async_get_device({(DOMAIN, status.node_id)})
    assert device is not None
    assert device.sw_version == status.version
    assert device.configuration_url == f"http://127.0.0.1:{node.port}/openapi.json"
    # Diagnostic and noisy figures stay out of the way.
    registry = er.async_get(hass)
    chip = registry.async_get("sensor.heatcompute_chip_temperature")
    assert chip is not None
    assert chip.entity_category is EntityCategory.DIAGNOSTIC
    per_token = registry.async_get("sensor.heatcompute_energy_per_1000_tokens")
    assert per_token is not None
    assert per_token.disabled_by is er.RegistryEntryDisabler.INTEGRATION


async def test_node_change_reaches_home_assistant_within_a_second(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """The event stream, not polling, carries a change made on the node."""
    started = time.monotonic()
    node.node.set_heat(HeatTarget(mode="heat", target_w=77.0))
    await wait_for_state(hass, "sensor.heatcompute_heat_target", lambda s: s == "77.0")
    assert time.monotonic() - started < 1.0


async def test_climate_target_sets_the_node_heat_target(
    hass: HomeAssistant, node: RunningNode
) -> None:
    """Turning the thermostat up makes the node heat; turning it off stops it."""
    set_room(hass, 18.0)
    await setup_entry(hass, make_entry(node, options={CONF_ROOM_SENSOR: ROOM}))
    climate = state(hass, CLIMATE)
    assert climate.attributes["current_temperature"] == 18.0
    assert heat_mode(node) == "off"

    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_TEMPERATURE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_TEMPERATURE: 22.0, ATTR_HVAC_MODE: HVACMode.HEAT},
        blocking=True,
    )
    # 4 K below target: the controller asks for everything the node allows.
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == pytest.approx(200.0)
    await wait_for_state(hass, "sensor.heatcompute_heat_target", lambda s: s == "200.0")
    climate = state(hass, CLIMATE)
    assert climate.attributes[ATTR_HVAC_ACTION] == HVACAction.HEATING
    assert climate.attributes[ATTR_TEMPERATURE] == 22.0

    # Warmer than the eco target: nothing to do, the heater idles.
    set_room(hass, 21.0)
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_PRESET_MODE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_PRESET_MODE: "eco"},
        blocking=True,
    )
    await hass.async_block_till_done()
    assert state(hass, CLIMATE).attributes[ATTR_TEMPERATURE] == 19.0

    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_HVAC_MODE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_HVAC_MODE: HVACMode.OFF},
        blocking=True,
    )
    assert heat_mode(node) == "off"
    assert state(hass, CLIMATE).attributes[ATTR_HVAC_ACTION] == HVACAction.OFF


async def test_node_down_then_back(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """Entities go unavailable when the node stops and come back by themselves."""
    await node.stop()
    await wait_for_state(hass, "sensor.heatcompute_power", is_unavailable)
    assert state(hass, CLIMATE).state == "unavailable"

    await node.start()
    await wait_for_state(hass, "sensor.heatcompute_power", is_available, timeout=20)
    assert state(hass, CLIMATE).state == HVACMode.OFF


async def test_wrong_token_starts_reauth(hass: HomeAssistant, node: RunningNode) -> None:
    """A token the node refuses: the entry does not load and asks for a new token."""
    entry = make_entry(node, token="not-the-token")
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_token_change_while_running_starts_reauth(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """The node restarts with a new token: the stream's auth failure starts a reauth."""
    reauth_started: asyncio.Future[None] = hass.loop.create_future()
    start_reauth = loaded_entry.async_start_reauth

    def record_reauth(*args: Any, **kwargs: Any) -> None:
        start_reauth(*args, **kwargs)
        if not reauth_started.done():
            reauth_started.set_result(None)

    with patch.object(loaded_entry, "async_start_reauth", side_effect=record_reauth):
        await node.stop()
        await node.start(token="a-new-token")
        await asyncio.wait_for(reauth_started, 20)
    await hass.async_block_till_done()
    assert state(hass, "sensor.heatcompute_power").state == "unavailable"
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]


async def test_heat_reuse_follows_the_node(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """Energy drawn while heat is wanted counts as reused: the share shows in percent."""
    node.node.set_heat(HeatTarget(mode="heat", target_w=100.0))

    def reused(value: str) -> bool:
        return value not in ("unknown", "unavailable") and float(value) > 0

    shown = float(await wait_for_state(hass, "sensor.heatcompute_heat_reuse", reused))
    assert 0 < shown <= 100
    reuse = node.status().heat_reuse
    assert reuse is not None
    assert reuse > 0
