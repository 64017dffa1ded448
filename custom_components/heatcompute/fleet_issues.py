"""Repairs of a split model: a lead lost a worker (stopped, unplugged, unreachable).

While the lead says a worker is lost, a fixable issue names both: bring the worker back
(the lead restores the split by itself, and the issue goes), or split without it (the
fix flow takes it out of the lead's options and unpairs it, fleet_options.py). The
issue goes when the entry unloads too (a reload checks again at once).
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import RepairsFlow
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResult
from homeassistant.helpers import issue_registry as ir

from .const import CONF_FLEET, CONF_FLEET_MODEL, CONF_WORKERS, DOMAIN
from .coordinator import HeatcomputeConfigEntry, HeatcomputeCoordinator
from .fleet_options import async_apply_fleet_choice, fleet_choice
from .pairing import PairingError

ISSUE_FLEET_WORKER = "fleet_worker_lost"


def _issue_id(entry_id: str, worker: str) -> str:
    return f"{ISSUE_FLEET_WORKER}_{entry_id}_{worker}"


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
            ir.async_delete_issue(hass, DOMAIN, _issue_id(entry.entry_id, node_id))
        raised.intersection_update(lost)
        for node_id, worker in lost.items():
            assert lead is not None
            raised.add(node_id)
            ir.async_create_issue(
                hass,
                DOMAIN,
                _issue_id(entry.entry_id, node_id),
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
            ir.async_delete_issue(hass, DOMAIN, _issue_id(entry.entry_id, node_id))

    return stop


class FleetWorkerFixFlow(RepairsFlow):
    """Split the model without the lost worker: the lead lets it go (fleet_options.py)."""

    def __init__(self, entry_id: str, worker: str, worker_name: str) -> None:
        self._entry_id = entry_id
        self._worker = worker
        self._worker_name = worker_name

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        entry: HeatcomputeConfigEntry | None = self.hass.config_entries.async_get_entry(
            self._entry_id
        )
        if entry is None:
            return self.async_abort(reason="entry_not_found")
        workers, model = fleet_choice(entry.options)
        errors: dict[str, str] = {}
        placeholders = {
            "lead": entry.title,
            "worker": self._worker_name,
            "model": model or "",
            "node": "",
            "error": "",
        }
        if user_input is not None:
            remaining = [node_id for node_id in workers if node_id != self._worker]
            options = {
                **entry.options,
                CONF_FLEET: {CONF_WORKERS: remaining, CONF_FLEET_MODEL: model},
            }
            try:
                await async_apply_fleet_choice(self.hass, entry, options)
            except PairingError as err:
                errors["base"] = err.reason
                placeholders |= {"node": err.node, "error": err.detail}
            else:
                self.hass.config_entries.async_update_entry(entry, options=options)
                return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="confirm", errors=errors, description_placeholders=placeholders
        )
