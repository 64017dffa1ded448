"""The node as a heater: a thermostat (PI on the room sensor) or, without one, by watts."""

from __future__ import annotations

from typing import Any

from homeassistant.components.climate import ClimateEntity
from homeassistant.components.climate.const import (
    ATTR_HVAC_MODE,
    ClimateEntityFeature,
    HVACAction,
    HVACMode,
)
from homeassistant.const import ATTR_TEMPERATURE, UnitOfTemperature
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity

from .const import MAX_TARGET_TEMP, MIN_TARGET_TEMP, PRESETS
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator, translated_action_errors
from .entity import HeatcomputeEntity
from .thermostat import Thermostat

# Every action is one request to the node; the node serialises them anyway.
PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HeatcomputeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    data = entry.runtime_data
    async_add_entities([HeatcomputeClimate(data.coordinator, data.thermostat)])


class HeatcomputeClimate(HeatcomputeEntity, ClimateEntity, RestoreEntity):
    """The heater's thermostat. Its name is the device's: it is the device's main feature.

    It shows and sets the thermostat; the control loop itself runs with the config entry
    (so disabling this entity does not stop the node's heat target).
    """

    _attr_name = None
    _attr_translation_key = "heater"
    _attr_temperature_unit = UnitOfTemperature.CELSIUS
    _attr_target_temperature_step = 0.5
    _attr_min_temp = MIN_TARGET_TEMP
    _attr_max_temp = MAX_TARGET_TEMP

    def __init__(self, coordinator: HeatcomputeCoordinator, thermostat: Thermostat) -> None:
        super().__init__(coordinator, "heater")
        self.thermostat = thermostat
        self._attr_hvac_modes = [HVACMode.OFF, HVACMode.HEAT]
        self._attr_preset_modes = list(PRESETS)
        features = (
            ClimateEntityFeature.TURN_ON
            | ClimateEntityFeature.TURN_OFF
            | ClimateEntityFeature.PRESET_MODE
        )
        if not thermostat.power_mode:
            features |= ClimateEntityFeature.TARGET_TEMPERATURE
        self._attr_supported_features = features

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        # Before the entry kept the thermostat's state, this entity did (as restore data):
        # take it over once; the entry's store has it from then on.
        if (
            not self.thermostat.restored
            and (stored := await self.async_get_last_extra_data()) is not None
        ):
            self.thermostat.restore(stored.as_dict())
        self.async_on_remove(self.thermostat.async_add_listener(self.async_write_ha_state))

    @property
    def hvac_mode(self) -> HVACMode:
        return HVACMode(self.thermostat.hvac_mode)

    @property
    def hvac_action(self) -> HVACAction:
        if self.thermostat.hvac_mode == "off" and self.thermostat.override is None:
            return HVACAction.OFF
        # The node's own word on whether it heats, once it has heard the target.
        heat = self.coordinator.data.heat
        return HVACAction.HEATING if heat.wanted or self.thermostat.heating else HVACAction.IDLE

    @property
    def current_temperature(self) -> float | None:
        return self.thermostat.room_temperature_c

    @property
    def target_temperature(self) -> float | None:
        return None if self.thermostat.power_mode else self.thermostat.target_temperature_c

    @property
    def preset_mode(self) -> str | None:
        return self.thermostat.preset

    @translated_action_errors
    async def async_set_hvac_mode(self, hvac_mode: HVACMode) -> None:
        await self.thermostat.async_set_hvac_mode("heat" if hvac_mode == HVACMode.HEAT else "off")

    async def async_turn_on(self) -> None:
        await self.async_set_hvac_mode(HVACMode.HEAT)

    async def async_turn_off(self) -> None:
        await self.async_set_hvac_mode(HVACMode.OFF)

    @translated_action_errors
    async def async_set_temperature(self, **kwargs: Any) -> None:
        if (mode := kwargs.get(ATTR_HVAC_MODE)) is not None:
            self.thermostat.hvac_mode = "heat" if mode == HVACMode.HEAT else "off"
        await self.thermostat.async_set_target_temperature(float(kwargs[ATTR_TEMPERATURE]))

    @translated_action_errors
    async def async_set_preset_mode(self, preset_mode: str) -> None:
        await self.thermostat.async_set_preset(preset_mode)
