"""Diagnostics: what the node said and what the thermostat thinks, token removed; and
the node's part in a split model, its pairing keys and their fingerprints removed."""

from __future__ import annotations

from dataclasses import asdict
import json
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .client import HeatcomputeError
from .const import CONF_TOKEN
from .coordinator import HeatcomputeConfigEntry
from .fleet_api import FleetApi

# The certificates are public halves, but they and their fingerprints identify the
# nodes' pairing keys: a shared diagnostics file need not carry them.
TO_REDACT = {CONF_TOKEN, "certificate", "fingerprint"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: HeatcomputeConfigEntry
) -> dict[str, Any]:
    data = entry.runtime_data
    fleet: dict[str, Any]
    try:
        # Through JSON: the redaction walks dicts and lists, not the tuples of asdict.
        fleet = json.loads(json.dumps(asdict(await FleetApi(data.client).info())))
    except HeatcomputeError as err:
        fleet = {"error": str(err)}
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": dict(entry.options),
        },
        "stream_connected": data.coordinator.stream_connected,
        "status": asdict(data.coordinator.data),
        "fleet": async_redact_data(fleet, TO_REDACT),
        "thermostat": {
            "power_mode": data.thermostat.power_mode,
            "output_w": data.thermostat.output_w,
            "room_temperature_c": data.thermostat.room_temperature_c,
            **data.thermostat.as_dict(),
        },
    }
