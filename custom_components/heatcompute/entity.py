"""The base of every heatcompute entity: one device per node."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .const import CONF_ADDON_SLUG, DOMAIN
from .coordinator import HeatcomputeCoordinator


class HeatcomputeEntity(CoordinatorEntity[HeatcomputeCoordinator]):
    """A coordinator entity on the node's device; unavailable while the node is."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: HeatcomputeCoordinator, key: str) -> None:
        super().__init__(coordinator)
        status = coordinator.data
        self._attr_unique_id = f"{status.node_id}_{key}"
        self._attr_device_info = DeviceInfo(
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
    slug = coordinator.config_entry.data.get(CONF_ADDON_SLUG) if coordinator.config_entry else None
    if slug:
        return f"homeassistant://hassio/ingress/{slug}"
    return str(coordinator.client.base_url / "openapi.json")
