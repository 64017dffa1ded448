"""The room the node heats, as a sensor where the node knows it (the digital twin), and
the thermostat running on it: what a newcomer's dev instance and a demo set-up use."""

from __future__ import annotations

from homeassistant.components.climate.const import (
    ATTR_CURRENT_TEMPERATURE,
    ATTR_HVAC_MODE,
    DOMAIN as CLIMATE_DOMAIN,
    SERVICE_SET_HVAC_MODE,
    HVACMode,
)
from homeassistant.const import ATTR_ENTITY_ID, ATTR_UNIT_OF_MEASUREMENT, UnitOfTemperature
from homeassistant.core import HomeAssistant
import pytest

from custom_components.heatcompute.const import CONF_ROOM_SENSOR

from .conftest import RunningNode, heat_mode, make_entry, setup_entry, state

CLIMATE = "climate.heatcompute"
ROOM = "sensor.heatcompute_room_temperature"
OUTDOOR = "sensor.heatcompute_outdoor_temperature"


async def test_the_twins_room_is_a_sensor_the_thermostat_heats_by(
    hass: HomeAssistant, node: RunningNode
) -> None:
    await setup_entry(hass, make_entry(node, options={CONF_ROOM_SENSOR: ROOM}))
    status = node.status()
    assert status.room_temperature_c is not None
    assert status.outside_temperature_c is not None

    room = state(hass, ROOM)
    assert float(room.state) == pytest.approx(status.room_temperature_c, abs=0.1)
    assert room.attributes[ATTR_UNIT_OF_MEASUREMENT] == UnitOfTemperature.CELSIUS
    assert float(state(hass, OUTDOOR).state) == pytest.approx(status.outside_temperature_c, abs=0.1)
    # The thermostat reads the room from it...
    assert state(hass, CLIMATE).attributes[ATTR_CURRENT_TEMPERATURE] == pytest.approx(
        float(room.state)
    )
    # ...and heats: the twin's room starts at 19 °C, below comfort (21 °C).
    await hass.services.async_call(
        CLIMATE_DOMAIN,
        SERVICE_SET_HVAC_MODE,
        {ATTR_ENTITY_ID: CLIMATE, ATTR_HVAC_MODE: HVACMode.HEAT},
        blocking=True,
    )
    assert heat_mode(node) == "heat"
    assert node.node.heat.target_w > 0
