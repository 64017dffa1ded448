"""Watts: the node's maximum power, and the heat target in power mode (no room sensor)."""

from __future__ import annotations

from dataclasses import replace

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberMode
from homeassistant.const import EntityCategory, UnitOfPower
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator, translated_action_errors
from .entity import HeatcomputeEntity
from .thermostat import Thermostat

PARALLEL_UPDATES = 1


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HeatcomputeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    data = entry.runtime_data
    entities: list[NumberEntity] = [MaxPowerNumber(data.coordinator)]
    if data.thermostat.power_mode:
        entities.append(PowerTargetNumber(data.coordinator, data.thermostat))
    async_add_entities(entities)


class MaxPowerNumber(HeatcomputeEntity, NumberEntity):
    """The most the node may draw, within the hardware cap it was configured with."""

    _attr_translation_key = "max_power"
    _attr_device_class = NumberDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_entity_category = EntityCategory.CONFIG
    _attr_mode = NumberMode.BOX
    _attr_native_min_value = 1
    _attr_native_step = 1

    def __init__(self, coordinator: HeatcomputeCoordinator) -> None:
        super().__init__(coordinator, "max_power")

    @property
    def available(self) -> bool:
        return super().available and self.native_value is not None

    @property
    def native_value(self) -> float | None:
        config = self.coordinator.data.config
        return None if config is None else config.max_power_w

    @property
    def native_max_value(self) -> float:
        config = self.coordinator.data.config
        limit = None if config is None else config.max_power_limit_w
        return limit or self.coordinator.data.heat.max_power_w or 1000.0

    @translated_action_errors
    async def async_set_native_value(self, value: float) -> None:
        config = await self.coordinator.client.update_config(max_power_w=value)
        self.coordinator.async_set_updated_data(replace(self.coordinator.data, config=config))


class PowerTargetNumber(HeatcomputeEntity, NumberEntity):
    """Power mode: the watts the heater delivers while its mode is heat."""

    _attr_translation_key = "power_target"
    _attr_device_class = NumberDeviceClass.POWER
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_mode = NumberMode.SLIDER
    _attr_native_min_value = 0
    _attr_native_step = 5

    def __init__(self, coordinator: HeatcomputeCoordinator, thermostat: Thermostat) -> None:
        super().__init__(coordinator, "power_target")
        self.thermostat = thermostat

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.thermostat.async_add_listener(self.async_write_ha_state))

    @property
    def native_value(self) -> float:
        return self.thermostat.power_target_w

    @property
    def native_max_value(self) -> float:
        return self.thermostat.max_power_w

    @translated_action_errors
    async def async_set_native_value(self, value: float) -> None:
        await self.thermostat.async_set_power_target(value)
