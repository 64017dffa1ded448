"""What the node may run: requests, background jobs, filler heat (`/api/config`).

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
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client import HeatcomputeClient, NodeConfig, NodeStatus
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator, translated_action_errors
from .entity import HeatcomputeEntity

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class HeatcomputeSwitchDescription(SwitchEntityDescription):
    value_fn: Callable[[NodeConfig], bool | None]
    set_fn: Callable[[HeatcomputeClient, bool], Awaitable[NodeConfig]]
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


SWITCHES: tuple[HeatcomputeSwitchDescription, ...] = (
    HeatcomputeSwitchDescription(
        key="serve_requests",
        translation_key="serve_requests",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda config: config.serve_requests,
        set_fn=lambda client, on: client.update_config(serve_requests=on),
    ),
    HeatcomputeSwitchDescription(
        key="background_jobs",
        translation_key="background_jobs",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda config: config.background_jobs,
        set_fn=lambda client, on: client.update_config(background_jobs=on),
    ),
    HeatcomputeSwitchDescription(
        key="filler",
        translation_key="filler",
        entity_category=EntityCategory.CONFIG,
        value_fn=lambda config: config.filler,
        set_fn=lambda client, on: client.update_config(filler=on),
        attributes_fn=lambda status: {"activity": filler_activity(status)},
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
        # A node without the config API (older version) cannot be switched.
        return super().available and self.is_on is not None

    @property
    def is_on(self) -> bool | None:
        config = self.coordinator.data.config
        return None if config is None else self.entity_description.value_fn(config)

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
        config = await self.entity_description.set_fn(self.coordinator.client, on)
        # The answer is the node's new config: show it now rather than at the next event.
        self.coordinator.async_set_updated_data(replace(self.coordinator.data, config=config))
