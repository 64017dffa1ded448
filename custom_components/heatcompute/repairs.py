"""Fix flows for the repair issues of repair_issues.py (and fleet_issues.py's, whose
flow lives with its issue)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResult
from homeassistant.helpers.selector import EntitySelector, EntitySelectorConfig
import voluptuous as vol

from .client import NodeStatus
from .const import CONF_ASSISTANT, CONF_MODEL, CONF_OUTDOOR_SENSOR, CONF_ROOM_SENSOR
from .coordinator import HeatcomputeConfigEntry
from .fleet_issues import ISSUE_FLEET_WORKER, FleetWorkerFixFlow
from .model_catalog import recommended_model
from .model_download import ModelFetch, async_node_has, client_of, progress_bar
from .repair_issues import ISSUE_ASSISTANT_MODEL, ISSUE_ROOM_SENSOR, assistant_model


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


class AssistantModelFixFlow(RepairsFlow):
    """Download the recommended model onto the node (unless it has it) and switch the
    assistant to it: one confirmation, then the download's progress."""

    def __init__(self, entry_id: str, model_id: str) -> None:
        self._entry_id = entry_id
        self._model_id = model_id
        self._fetch: ModelFetch | None = None

    def _entry(self) -> HeatcomputeConfigEntry | None:
        entry: HeatcomputeConfigEntry | None = self.hass.config_entries.async_get_entry(
            self._entry_id
        )
        return entry

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        return await self.async_step_confirm()

    async def async_step_confirm(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        entry = self._entry()
        wanted = recommended_model(self._model_id)
        if entry is None:
            return self.async_abort(reason="entry_not_found")
        if wanted is None:  # an issue raised by an older release's list
            return self.async_abort(reason="model_not_offered")
        if user_input is None:
            return self.async_show_form(
                step_id="confirm",
                data_schema=vol.Schema({}),
                description_placeholders={
                    "name": entry.title,
                    "current": assistant_model(entry.options, _status(entry)) or "",
                    "better": wanted.name,
                    "size": f"{wanted.size_gb:.1f}",
                    "licence": wanted.licence,
                },
            )
        client = client_of(entry)
        if await async_node_has(client, wanted):
            return await self.async_step_model_ready()
        self._fetch = ModelFetch(self.hass, client, wanted, progress_bar(self))
        return await self.async_step_download_model()

    async def async_step_download_model(
        self, user_input: dict[str, Any] | None = None
    ) -> FlowResult:
        assert self._fetch is not None
        return self._fetch.progress_step(self)

    async def async_step_model_ready(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        entry = self._entry()
        if entry is None:
            return self.async_abort(reason="entry_not_found")
        assistant = {**(entry.options.get(CONF_ASSISTANT) or {}), CONF_MODEL: self._model_id}
        self.hass.config_entries.async_update_entry(
            entry, options={**entry.options, CONF_ASSISTANT: assistant}
        )
        # Finishing deletes the issue (the repairs flow manager does).
        return self.async_create_entry(data={})

    async def async_step_model_failed(self, user_input: dict[str, Any] | None = None) -> FlowResult:
        assert self._fetch is not None
        # An abort leaves the issue (and the model in use) as they were.
        return self.async_abort(
            reason=self._fetch.failure or "download_failed",
            description_placeholders={"model": self._fetch.wanted.name},
        )


def _status(entry: HeatcomputeConfigEntry) -> NodeStatus | None:
    runtime = getattr(entry, "runtime_data", None)
    return None if runtime is None else runtime.coordinator.data


def _text(data: dict[str, str | int | float | None] | None, key: str) -> str | None:
    value = (data or {}).get(key)
    return value if isinstance(value, str) else None


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    entry_id = _text(data, "entry_id")
    if issue_id.startswith(ISSUE_ROOM_SENSOR) and entry_id:
        return RoomSensorFixFlow(entry_id)
    if issue_id.startswith(ISSUE_ASSISTANT_MODEL) and entry_id and (model := _text(data, "model")):
        return AssistantModelFixFlow(entry_id, model)
    if issue_id.startswith(ISSUE_FLEET_WORKER) and entry_id and (worker := _text(data, "worker")):
        return FleetWorkerFixFlow(entry_id, worker, _text(data, "worker_name") or worker)
    # Issues without a fix of their own are only acknowledged.
    return ConfirmRepairFlow()
