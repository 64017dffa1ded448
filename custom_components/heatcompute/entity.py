"""The base of every heatcompute entity: one device per node."""

from __future__ import annotations

from typing import Any

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_ADDON_SLUG, DOMAIN
from .coordinator import HeatcomputeCoordinator


def node_device_info(coordinator: HeatcomputeCoordinator) -> DeviceInfo:
    """The node's device, which every entity of its entry belongs to."""
    status = coordinator.data
    return DeviceInfo(
        identifiers={(DOMAIN, status.node_id)},
        name=status.name,
        manufacturer="heatcompute",
        model=f"Compute heater ({status.hardware})" if status.hardware else "Compute heater",
        sw_version=status.version,
        configuration_url=_configuration_url(coordinator),
    )


def _configuration_url(coordinator: HeatcomputeCoordinator) -> str:
    """The add-on's dashboard (through ingress) when an add-on announced the node, else
    the node's API description."""
    entry = coordinator.config_entry
    slug = entry.data.get(CONF_ADDON_SLUG) if entry is not None else None
    if slug:
        return f"homeassistant://hassio/ingress/{slug}"
    return str(coordinator.client.base_url / "openapi.json")


class HeatcomputeEntity(CoordinatorEntity[HeatcomputeCoordinator]):
    """A coordinator entity on the node's device; unavailable while the node is.

    A node status touches every entity, but most show one figure of it: an entity
    writes its state only when what it shows changed, so a new power reading does not
    rewrite the heat target, the switches and the thermostat.
    """

    _attr_has_entity_name = True
    _shown: tuple[Any, ...] | None = None

    def __init__(self, coordinator: HeatcomputeCoordinator, key: str) -> None:
        super().__init__(coordinator)
        self._attr_unique_id = f"{coordinator.data.node_id}_{key}"
        self._attr_device_info = node_device_info(coordinator)

    def _what_is_shown(self) -> tuple[Any, ...]:
        return (
            self.available,
            self.state,
            self.state_attributes,
            self.extra_state_attributes,
            self.capability_attributes,
        )

    @callback
    def async_write_ha_state(self) -> None:
        self._shown = self._what_is_shown()
        super().async_write_ha_state()

    @callback
    def _handle_coordinator_update(self) -> None:
        if self._what_is_shown() != self._shown:
            self.async_write_ha_state()
