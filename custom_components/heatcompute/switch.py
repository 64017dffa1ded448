"""What the node may run: requests, background jobs, filler heat (`/api/config`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .client import HeatcomputeClient, NodeConfig
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator, translated_action_errors
from .entity import HeatcomputeEntity

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class HeatcomputeSwitchDescription(SwitchEntityDescription):
    value_fn: Callable[[NodeConfig], bool | None]
    set_fn: Callable[[HeatcomputeClient, bool], Awaitable[NodeConfig]]


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

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_set(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_set(False)

    @translated_action_errors
    async def _async_set(self, on: bool) -> None:
        config = await self.entity_description.set_fn(self.coordinator.client, on)
        # The answer is the node's new config: show it now rather than at the next event.
        self.coordinator.async_set_updated_data(replace(self.coordinator.data, config=config))
