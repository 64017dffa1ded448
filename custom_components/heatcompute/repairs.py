"""Fix flows for the repair issues of repair_issues.py."""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult
from homeassistant.helpers.selector import EntitySelector, EntitySelectorConfig
import voluptuous as vol

from .const import (
    CONF_FLEET,
    CONF_FLEET_MODEL,
    CONF_OUTDOOR_SENSOR,
    CONF_ROOM_SENSOR,
    CONF_WORKERS,
)
from .coordinator import HeatcomputeConfigEntry
from .fleet_options import async_apply_fleet_choice, fleet_choice
from .pairing import PairingError
from .repair_issues import ISSUE_FLEET_WORKER, ISSUE_ROOM_SENSOR


class RoomSensorFixFlow(RepairsFlow):
    """Choose a new room sensor, or none: the heater then runs in power mode."""

    def __init__(self, entry_id: str) -> None:
        self._entry_id = entry_id

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        return await self.async_step_choose_sensor()

    async def async_step_choose_sensor(
        self, user_input: dict[str, Any] | None = None
    ) -> FlowResult:
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None:
            return self.async_abort(reason="entry_not_found")
        if user_input is not None:
            options = {**entry.options}
            if sensor := user_input.get(CONF_ROOM_SENSOR):
                options[CONF_ROOM_SENSOR] = sensor
            else:
                # Power mode: and an outdoor sensor needs a room sensor to be of use.
                options.pop(CONF_ROOM_SENSOR, None)
                options.pop(CONF_OUTDOOR_SENSOR, None)
            # The entry's options listener reloads it with the new thermostat set-up.
            self.hass.config_entries.async_update_entry(entry, options=options)
            return self.async_create_entry(data={})
        return self.async_show_form(
            step_id="choose_sensor",
            data_schema=vol.Schema(
                {
                    vol.Optional(CONF_ROOM_SENSOR): EntitySelector(
                        EntitySelectorConfig(domain="sensor", device_class="temperature")
                    )
                }
            ),
            description_placeholders={
                "name": entry.title,
                "sensor": str(entry.options.get(CONF_ROOM_SENSOR, "")),
            },
        )


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


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    if issue_id.startswith(ISSUE_ROOM_SENSOR) and data and isinstance(data.get("entry_id"), str):
        return RoomSensorFixFlow(str(data["entry_id"]))
    if issue_id.startswith(ISSUE_FLEET_WORKER) and data and isinstance(data.get("worker"), str):
        return FleetWorkerFixFlow(
            str(data["entry_id"]), str(data["worker"]), str(data.get("worker_name") or "")
        )
    # Issues without a fix of their own are only acknowledged.
    return ConfirmRepairFlow()
