"""Repair issues: what the user has to fix that an unavailable entity cannot explain.

- A node speaking an API version this integration does not know: update one side.
- The thermostat's room sensor no longer exists (removed, renamed): choose another
  (repairs.py has the fix flow), or heat by watts without one.
- The voice assistant runs on a model that cannot act (SmolLM2, the default): the fix
  flow downloads the recommended model for the node's memory and switches to it.

Each watcher raises its issue while the problem lasts and deletes it when it is gone,
or when the entry unloads (a reload checks again at once). The model issue is advice,
not a fault: once the user ignored it, it stays in the registry (deleting it would
forget that), so it is never raised again for that entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.helpers.start import async_at_started

from .agent_options import AgentSettings
from .client import NodeStatus
from .const import CONF_ASSISTANT, CONF_MODEL, DOMAIN
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator
from .model_catalog import cannot_act, recommended_for

SUPPORTED_API_VERSIONS = frozenset({"1"})
ISSUE_API_VERSION = "unsupported_api_version"
ISSUE_ROOM_SENSOR = "room_sensor_missing"
ISSUE_ASSISTANT_MODEL = "assistant_model_cannot_act"


def issue_id(kind: str, entry_id: str) -> str:
    return f"{kind}_{entry_id}"


@callback
def async_watch_api_version(
    hass: HomeAssistant, coordinator: HeatcomputeCoordinator
) -> CALLBACK_TYPE:
    """Raise an issue while the node speaks an API version we don't know."""
    entry = coordinator.config_entry
    issue = issue_id(ISSUE_API_VERSION, entry.entry_id)

    @callback
    def check() -> None:
        version = coordinator.data.api_version if coordinator.data else None
        # A node that does not say its version is taken at its word: it predates them.
        if version is None or version in SUPPORTED_API_VERSIONS:
            ir.async_delete_issue(hass, DOMAIN, issue)
            return
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue,
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_API_VERSION,
            translation_placeholders={
                "name": entry.title,
                "version": version,
                "supported": ", ".join(sorted(SUPPORTED_API_VERSIONS)),
            },
        )

    check()
    stop_listening = coordinator.async_add_listener(check)

    @callback
    def stop() -> None:
        stop_listening()
        ir.async_delete_issue(hass, DOMAIN, issue)

    return stop


@callback
def async_watch_room_sensor(
    hass: HomeAssistant, entry: HeatcomputeConfigEntry, sensor: str | None
) -> CALLBACK_TYPE:
    """Raise a fixable issue while the thermostat's room sensor does not exist."""
    issue = issue_id(ISSUE_ROOM_SENSOR, entry.entry_id)
    if sensor is None:
        ir.async_delete_issue(hass, DOMAIN, issue)
        return lambda: None

    @callback
    def check() -> None:
        # An entity whose integration failed still has a state ("unavailable"): that is
        # a sensor that is down, shown by the thermostat. Gone means no state at all.
        if hass.states.get(sensor) is not None:
            ir.async_delete_issue(hass, DOMAIN, issue)
            return
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue,
            is_fixable=True,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_ROOM_SENSOR,
            translation_placeholders={"name": entry.title, "sensor": sensor},
            data={"entry_id": entry.entry_id},
        )

    @callback
    def changed(_event: Event[EventStateChangedData]) -> None:
        check()

    @callback
    def started(_hass: HomeAssistant) -> None:
        check()

    stop_tracking = async_track_state_change_event(hass, sensor, changed)
    # While Home Assistant starts, other integrations' sensors may not be there yet.
    cancel_start_check = async_at_started(hass, started)

    @callback
    def stop() -> None:
        stop_tracking()
        cancel_start_check()
        ir.async_delete_issue(hass, DOMAIN, issue)

    return stop


def assistant_model(options: Mapping[str, Any], status: NodeStatus | None) -> str | None:
    """The model the voice assistant answers with: the chosen one, else (as the agent
    does) the node's first chat model."""
    chosen = (options.get(CONF_ASSISTANT) or {}).get(CONF_MODEL)
    if chosen:
        return str(chosen)
    return status.chat_models[0] if status is not None and status.chat_models else None


@callback
def async_watch_assistant_model(
    hass: HomeAssistant, entry: HeatcomputeConfigEntry, coordinator: HeatcomputeCoordinator
) -> CALLBACK_TYPE:
    """Raise a fixable issue while the assistant may control Home Assistant, runs on a
    model that cannot act, and a better one fits the node. Without control there is
    nothing the small model fails to do, so nothing to nag about."""
    issue = issue_id(ISSUE_ASSISTANT_MODEL, entry.entry_id)

    @callback
    def check() -> None:
        status = coordinator.data
        model = assistant_model(entry.options, status)
        better = recommended_for(status.memory_bytes if status else None)
        controls = AgentSettings.from_options(entry.options).llm_api is not None
        if model is None or not controls or not cannot_act(model) or better is None:
            withdraw()
            return
        ir.async_create_issue(
            hass,
            DOMAIN,
            issue,
            is_fixable=True,
            # Checked again at every start: only the user's "ignore" needs keeping.
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=ISSUE_ASSISTANT_MODEL,
            translation_placeholders={
                "name": entry.title,
                "current": model,
                "better": better.name,
                "size": f"{better.size_gb:.1f}",
                "licence": better.licence,
            },
            data={"entry_id": entry.entry_id, "model": better.model_id},
        )

    @callback
    def withdraw() -> None:
        raised = ir.async_get(hass).async_get_issue(DOMAIN, issue)
        if raised is not None and raised.dismissed_version is None:
            ir.async_delete_issue(hass, DOMAIN, issue)

    async def options_changed(_hass: HomeAssistant, _entry: HeatcomputeConfigEntry) -> None:
        check()

    check()
    stop_listening = coordinator.async_add_listener(check)
    stop_following_options = entry.add_update_listener(options_changed)

    @callback
    def stop() -> None:
        stop_listening()
        stop_following_options()
        withdraw()

    return stop


@callback
def async_forget_issues(hass: HomeAssistant, entry_id: str) -> None:
    """The entry is removed: its issues go, ignored or not."""
    for kind in (ISSUE_API_VERSION, ISSUE_ROOM_SENSOR, ISSUE_ASSISTANT_MODEL):
        ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry_id))
