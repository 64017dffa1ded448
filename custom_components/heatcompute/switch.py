"""What the node may run (`/api/config`), and whether it lends itself to a lead as a
worker of a split model (`/api/fleet/role`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client import HeatcomputeClient, NodeConfig, NodeStatus
from .const import DOMAIN
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator, translated_action_errors
from .entity import HeatcomputeEntity
from .fleet_api import FleetApi
from .fleet_status import FleetRole

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class HeatcomputeSwitchDescription(SwitchEntityDescription):
    value_fn: Callable[[NodeStatus], bool | None]
    """None: the node cannot be switched so (an older version)."""
    set_fn: Callable[[HeatcomputeClient, NodeStatus, bool], Awaitable[NodeStatus]]
    """Switch the node; answers its status with the change the node confirmed."""


def _config_switch(key: str, translation_key: str) -> HeatcomputeSwitchDescription:
    def value(status: NodeStatus) -> bool | None:
        return None if status.config is None else getattr(status.config, key)

    async def switch(client: HeatcomputeClient, status: NodeStatus, on: bool) -> NodeStatus:
        config: NodeConfig = await client.update_config(**{key: on})
        return replace(status, config=config)

    return HeatcomputeSwitchDescription(
        key=key,
        translation_key=translation_key,
        entity_category=EntityCategory.CONFIG,
        value_fn=value,
        set_fn=switch,
    )


def _is_worker(status: NodeStatus) -> bool | None:
    return None if status.fleet is None else status.fleet.role == "worker"


async def _set_worker(client: HeatcomputeClient, status: NodeStatus, on: bool) -> NodeStatus:
    fleet = FleetApi(client)
    # The node's role now, not as last pushed: it may have become a lead a moment ago.
    info = await fleet.info()
    if info.role == "lead" and on:
        # That would end the split it runs: the lead's options' business (the fleet
        # section), where its workers are let go too.
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="node_is_lead")
    wanted: FleetRole = "worker" if on else "off"
    if info.role not in ("lead", wanted):
        info = await fleet.set_role(wanted)
    return replace(status, fleet=info.status)


SWITCHES: tuple[HeatcomputeSwitchDescription, ...] = (
    _config_switch("serve_requests", "serve_requests"),
    _config_switch("background_jobs", "background_jobs"),
    _config_switch("filler", "filler"),
    HeatcomputeSwitchDescription(
        key="fleet_worker",
        translation_key="fleet_worker",
        entity_category=EntityCategory.CONFIG,
        value_fn=_is_worker,
        set_fn=_set_worker,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: HeatcomputeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    coordinator = entry.runtime_data.coordinator
    async_add_entities(HeatcomputeSwitch(coordinator, description) for description in SWITCHES)


class HeatcomputeSwitch(HeatcomputeEntity, SwitchEntity):
    entity_description: HeatcomputeSwitchDescription

    def __init__(
        self, coordinator: HeatcomputeCoordinator, description: HeatcomputeSwitchDescription
    ) -> None:
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def available(self) -> bool:
        # A node without the config or fleet API (older version) cannot be switched.
        return super().available and self.is_on is not None

    @property
    def is_on(self) -> bool | None:
        return self.entity_description.value_fn(self.coordinator.data)

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_set(False)

    @translated_action_errors
    async def _async_set(self, on: bool) -> None:
        status = await self.entity_description.set_fn(
            self.coordinator.client, self.coordinator.data, on
        )
        # The answer is what the node now does: show it now rather than at the next event.
        self.coordinator.async_set_updated_data(status)
