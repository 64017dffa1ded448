"""Diagnostics: what the node said and what the thermostat thinks, token removed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import CONF_TOKEN
from .coordinator import HeatcomputeConfigEntry

TO_REDACT = {CONF_TOKEN}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HeatcomputeConfigEntry
) -> dict[str, Any]:
    data = entry.runtime_data
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "stream_connected": data.coordinator.stream_connected,
        "status": asdict(data.coordinator.data),
        "thermostat": {
            "power_mode": data.thermostat.power_mode,
            "output_w": data.thermostat.output_w,
            "room_temperature_c": data.thermostat.room_temperature_c,
            **data.thermostat.as_dict(),
        },
    }
