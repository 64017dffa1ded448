"""Repair issues: what the user has to fix that an unavailable entity cannot explain.

- A node speaking an API version this integration does not know: update one side.
- The thermostat's room sensor no longer exists (removed, renamed): choose another
  (repairs.py has the fix flow), or heat by watts without one.
- A lead lost a worker of its split model (stopped, unplugged, unreachable): bring it
  back (the lead restores the split by itself), or split without it (a fix flow).

Each watcher raises its issue while the problem lasts and deletes it when it is gone,
or when the entry unloads (a reload checks again at once).
"""

from __future__ import annotations

from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.helpers.start import async_at_started

from .const import DOMAIN
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator

SUPPORTED_API_VERSIONS = frozenset({"1"})
ISSUE_API_VERSION = "unsupported_api_version"
ISSUE_ROOM_SENSOR = "room_sensor_missing"
ISSUE_FLEET_WORKER = "fleet_worker_lost"


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


@callback
def async_watch_fleet_workers(
    hass: HomeAssistant, coordinator: HeatcomputeCoordinator
) -> CALLBACK_TYPE:
    """Raise a fixable issue for each worker the node (as a lead) has lost."""
    entry = coordinator.config_entry
    raised: set[str] = set()

    @callback
    def check() -> None:
        fleet = coordinator.data.fleet if coordinator.data else None
        lead = fleet.lead if fleet is not None and fleet.role == "lead" else None
        lost = {worker.node_id: worker for worker in (lead.workers if lead else ()) if worker.lost}
        for node_id in raised - set(lost):
            ir.async_delete_issue(
                hass, DOMAIN, issue_id(ISSUE_FLEET_WORKER, f"{entry.entry_id}_{node_id}")
            )
        raised.intersection_update(lost)
        for node_id, worker in lost.items():
            assert lead is not None
            raised.add(node_id)
            ir.async_create_issue(
                hass,
                DOMAIN,
                issue_id(ISSUE_FLEET_WORKER, f"{entry.entry_id}_{node_id}"),
                is_fixable=True,
                is_persistent=False,
                severity=ir.IssueSeverity.ERROR,
                # The lead says whether the model fits without the worker (while it
                # rebuilds, it may still): the text follows as the lead finds out.
                translation_key=(
                    f"{ISSUE_FLEET_WORKER}_model_down"
                    if lead.state == "unavailable"
                    else ISSUE_FLEET_WORKER
                ),
                translation_placeholders={
                    "lead": entry.title,
                    "worker": worker.name,
                    "model": lead.model or "",
                    "error": worker.error or lead.error or "",
                },
                data={"entry_id": entry.entry_id, "worker": node_id, "worker_name": worker.name},
            )

    check()
    stop_listening = coordinator.async_add_listener(check)

    @callback
    def stop() -> None:
        stop_listening()
        for node_id in raised:
            ir.async_delete_issue(
                hass, DOMAIN, issue_id(ISSUE_FLEET_WORKER, f"{entry.entry_id}_{node_id}")
            )

    return stop
