"""The heat control loop belongs to the config entry; the climate entity only shows it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from homeassistant.components.climate.const import (
    ATTR_HVAC_MODE,
    ATTR_PRESET_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    SERVICE_SET_PRESET_MODE,
    HVACMode,
)
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    async_fire_time_changed,
)

from custom_components.heatcompute.const import CONTROL_INTERVAL

from .conftest import RunningNode, heat_mode, make_entry, setup_entry

CLIMATE = "climate.heatcompute"


async def test_a_disabled_climate_entity_does_not_stop_the_heat_target(
    hass: HomeAssistant, node: RunningNode
) -> None:
    """Before: the loop lived in the climate entity; disabling it stopped the refresh,
    and the node's watchdog fell back to its safe level."""
    entry = make_entry(node)
    await setup_entry(hass, entry)
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_HVAC_MODE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_HVAC_MODE: HVACMode.HEAT},
        blocking=True,
    )
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == 120.0  # power mode, comfort: 60 % of 200 W

    er.async_get(hass).async_update_entity(CLIMATE, disabled_by=er.RegistryEntryDisabler.USER)
    await hass.async_block_till_done()
    assert hass.states.get(CLIMATE) is None
    # Home Assistant reloads the entry a while after an entity of it was disabled.
    # Real time here: the node runs on the real clock.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get(CLIMATE) is None

    refreshed = node.node.heat_refreshed_at
    async_fire_time_changed(hass, dt_util.utcnow() + CONTROL_INTERVAL + timedelta(seconds=1))
    await hass.async_block_till_done()
    assert node.node.heat_refreshed_at > refreshed
    # ... with the thermostat's state, which the entry kept across the reload.
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == 120.0


async def test_the_thermostat_state_survives_a_reload_and_goes_with_the_entry(
    hass: HomeAssistant, node: RunningNode, hass_storage: dict[str, Any]
) -> None:
    """The entry keeps the thermostat's state itself (not the climate entity's restore
    data), saved at once when it unloads."""
    entry = make_entry(node)
    await setup_entry(hass, entry)
    for service, data in (
        (SERVICE_SET_HVAC_MODE, {ATTR_HVAC_MODE: HVACMode.HEAT}),
        (SERVICE_SET_PRESET_MODE, {ATTR_PRESET_MODE: "boost"}),
    ):
        await hass.services.async_call(
            CLIMATE_DOMAIN, service, {ATTR_ENTITY_ID: CLIMATE, **data}, blocking=True
        )
    assert node.node.heat.target_w == 200.0

    # Reloaded at once, well within the store's save delay.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w == 200.0
    key = f"heatcompute.{entry.entry_id}.thermostat"
    assert hass_storage[key]["data"]["preset"] == "boost"

    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert key not in hass_storage
