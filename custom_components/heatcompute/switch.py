"""What the node may run: requests, background jobs, filler heat (`/api/config`); and
whether it lends itself to a lead as a worker of a split model (`/api/fleet/role`).

Filler is the last resort: it runs only while heat is wanted and there is no useful work
(jobs, the document index's backlog). Its switch says which of these holds now, in its
``activity`` attribute, so nobody wonders why it is on and not heating.
"""

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
    attributes_fn: Callable[[NodeStatus], dict[str, Any]] | None = None


def filler_activity(status: NodeStatus) -> str:
    """Why filler runs or not (a translated state of the switch's attribute)."""
    if status.config is None or not status.config.filler:
        return "switched_off"
    if status.background == "filler":
        return "running"
    backlog = status.documents.backlog_files if status.documents is not None else None
    if (status.jobs_pending or 0) > 0 or (backlog or 0) > 0:
        return "useful_work_first"
    return "waiting"


def _config_switch(
    key: str,
    translation_key: str,
    attributes_fn: Callable[[NodeStatus], dict[str, Any]] | None = None,
) -> HeatcomputeSwitchDescription:
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
        attributes_fn=attributes_fn,
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
    _config_switch("filler", "filler", lambda status: {"activity": filler_activity(status)}),
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

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        attributes_fn = self.entity_description.attributes_fn
        return None if attributes_fn is None else attributes_fn(self.coordinator.data)

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
