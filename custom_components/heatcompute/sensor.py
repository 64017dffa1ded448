"""What the node measures and does: power, energy, heat target, work figures, and its
document index (files searchable, files waiting to be indexed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .client import NodeStatus
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator
from .entity import HeatcomputeEntity

# Read-only: the coordinator does all the talking.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class HeatcomputeSensorDescription(SensorEntityDescription):
    value_fn: Callable[[NodeStatus], StateType]
    exists_fn: Callable[[NodeStatus], bool] = lambda _status: True
    """Whether the node has this figure at all (set-up time)."""


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


def _fleet_state(status: NodeStatus) -> str | None:
    """off, worker, or how the lead's split goes (starting, split, local, unavailable)."""
    fleet = status.fleet
    if fleet is None:
        return None
    if fleet.role == "lead":
        return fleet.lead.state if fleet.lead is not None else "starting"
    return fleet.role


FLEET_STATES = ["off", "worker", "starting", "split", "local", "unavailable"]

SENSORS: tuple[HeatcomputeSensorDescription, ...] = (
    HeatcomputeSensorDescription(
        key="power",
        translation_key="power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        value_fn=lambda s: s.power_w,
    ),
    HeatcomputeSensorDescription(
        key="energy",
        translation_key="energy",
        # Energy drawn is heat delivered: this is the Energy dashboard's consumption.
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=3,
        value_fn=lambda s: s.energy_kwh,
    ),
    HeatcomputeSensorDescription(
        key="heat_target",
        translation_key="heat_target",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        value_fn=lambda s: s.heat.target_w if s.heat.mode == "heat" else 0.0,
    ),
    HeatcomputeSensorDescription(
        key="intensity",
        translation_key="intensity",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda s: _percent(s.intensity),
    ),
    HeatcomputeSensorDescription(
        key="heat_reuse",
        translation_key="heat_reuse",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda s: _percent(s.heat_reuse),
    ),
    HeatcomputeSensorDescription(
        key="tokens_per_second",
        translation_key="tokens_per_second",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="tokens/s",
        suggested_display_precision=1,
        value_fn=lambda s: s.tokens_per_s,
    ),
    HeatcomputeSensorDescription(
        key="jobs_pending",
        translation_key="jobs_pending",
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda s: s.jobs_pending,
    ),
    # The document index, where the node has one: what is searchable, and what heat
    # (or the freshness deadline) has yet to index.
    HeatcomputeSensorDescription(
        key="indexed_files",
        translation_key="indexed_files",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="files",
        value_fn=lambda s: s.documents.files if s.documents is not None else None,
        exists_fn=lambda s: s.documents is not None,
    ),
    HeatcomputeSensorDescription(
        key="index_backlog",
        translation_key="index_backlog",
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement="files",
        value_fn=lambda s: s.documents.backlog_files if s.documents is not None else None,
        exists_fn=lambda s: s.documents is not None,
    ),
    HeatcomputeSensorDescription(
        key="chip_temperature",
        translation_key="chip_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=0,
        value_fn=lambda s: s.chip_temperature_c,
    ),
    # The room the node heats, where the node knows it: the digital twin simulates it
    # (a room sensor for the thermostat on a demo or test set-up).
    HeatcomputeSensorDescription(
        key="room_temperature",
        translation_key="room_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        suggested_display_precision=1,
        value_fn=lambda s: s.room_temperature_c,
        exists_fn=lambda s: s.room_temperature_c is not None,
    ),
    HeatcomputeSensorDescription(
        key="outdoor_temperature",
        translation_key="outdoor_temperature",
        device_class=SensorDeviceClass.TEMPERATURE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        suggested_display_precision=1,
        value_fn=lambda s: s.outside_temperature_c,
        exists_fn=lambda s: s.outside_temperature_c is not None,
    ),
    HeatcomputeSensorDescription(
        key="latency_p95",
        translation_key="latency_p95",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        entity_category=EntityCategory.DIAGNOSTIC,
        suggested_display_precision=2,
        value_fn=lambda s: s.latency_p95_s,
    ),
    HeatcomputeSensorDescription(
        key="queue_depth",
        translation_key="queue_depth",
        state_class=SensorStateClass.MEASUREMENT,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: s.queue_depth,
    ),
    HeatcomputeSensorDescription(
        key="energy_per_1k_tokens",
        translation_key="energy_per_1k_tokens",
        state_class=SensorStateClass.MEASUREMENT,
        # Wh per 1000 tokens: not an energy total, so no energy device class.
        native_unit_of_measurement="Wh/1k tokens",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        suggested_display_precision=2,
        value_fn=lambda s: s.energy_per_1k_tokens_wh,
    ),
    HeatcomputeSensorDescription(
        key="fleet_state",
        translation_key="fleet_state",
        device_class=SensorDeviceClass.ENUM,
        options=FLEET_STATES,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda s: state if (state := _fleet_state(s)) in FLEET_STATES else None,
        exists_fn=lambda s: s.fleet is not None,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HeatcomputeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    coordinator = entry.runtime_data.coordinator
    async_add_entities(
        HeatcomputeSensor(coordinator, description)
        for description in SENSORS
        if description.exists_fn(coordinator.data)
    )


class HeatcomputeSensor(HeatcomputeEntity, SensorEntity):
    entity_description: HeatcomputeSensorDescription

    def __init__(
        self, coordinator: HeatcomputeCoordinator, description: HeatcomputeSensorDescription
    ) -> None:
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def native_value(self) -> StateType:
        return self.entity_description.value_fn(self.coordinator.data)
