"""An entity writes its state only when what it shows changed."""

from __future__ import annotations

from dataclasses import replace

from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED
from homeassistant.core import (
    Event,
    EventStateChangedData,
    EventStateReportedData,
    HomeAssistant,
    callback,
)
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from .conftest import RunningNode

POWER = "sensor.heatcompute_power"


async def test_a_power_reading_rewrites_only_the_power_sensor(
    hass: HomeAssistant, node: RunningNode, loaded_entry: MockConfigEntry
) -> None:
    """Before: every status went into every entity; those that showed the same thing
    wrote it again (a `state_reported` each, and work for every state listener)."""
    changed: list[str] = []
    reported: list[str] = []

    @callback
    def on_changed(event: Event[EventStateChangedData]) -> None:
        changed.append(event.data["entity_id"])

    @callback
    def on_reported(event: Event[EventStateReportedData]) -> None:
        reported.append(event.data["entity_id"])

    hass.bus.async_listen(EVENT_STATE_CHANGED, on_changed)

    @callback
    def ours(event_data: EventStateReportedData) -> bool:
        return "heatcompute" in event_data["entity_id"]

    # Home Assistant wants a filter on this frequent event.
    hass.bus.async_listen(EVENT_STATE_REPORTED, on_reported, event_filter=ours)
    coordinator = loaded_entry.runtime_data.coordinator
    coordinator.async_set_updated_data(
        replace(coordinator.data, power_w=(coordinator.data.power_w or 0.0) + 50.0)
    )
    await hass.async_block_till_done()
    assert POWER in changed
    assert reported == []
