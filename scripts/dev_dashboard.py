"""The dev instance's dashboard: the heater as a newcomer should first see it.

The thermostat (room temperature from the node's twin), the power drawn against the heat
target, the room against the outdoor temperature, the energy (= heat) delivered, and the
work that turns it into something useful (jobs, tokens). Entity ids come from the entity
registry, so renaming the node does not break it.
"""

from __future__ import annotations

from typing import Any

# unique id suffix (after the node id) -> what the dashboard calls it
ENTITY_KEYS = (
    "heater",
    "room_temperature",
    "outdoor_temperature",
    "power",
    "heat_target",
    "energy",
    "heat_reuse",
    "intensity",
    "jobs_pending",
    "tokens_per_second",
    "background_jobs",
    "serve_requests",
)


# The figures' own names, without the device's (the whole dashboard is one node).
ROW_NAMES = {
    "energy": "Energy drawn = heat delivered",
    "heat_reuse": "Heat reuse",
    "intensity": "Intensity",
    "jobs_pending": "Jobs pending",
    "tokens_per_second": "Tokens per second",
    "background_jobs": "Background jobs",
    "serve_requests": "Serve requests",
}


def dashboard(entities: dict[str, str], title: str) -> dict[str, Any]:
    """A Lovelace config for the node whose entity ids (by key) are given, with half an
    hour of history."""

    def rows(*keys: str) -> list[dict[str, str]]:
        return [
            {"entity": entities[key], "name": ROW_NAMES[key]} for key in keys if key in entities
        ]

    def graph(title: str, *keys: tuple[str, str]) -> dict[str, Any]:
        return {
            "type": "history-graph",
            "title": title,
            "hours_to_show": 0.5,
            "entities": [
                {"entity": entities[key], "name": name} for key, name in keys if key in entities
            ],
        }

    work = {
        "type": "entities",
        "title": "Jobs and requests",
        "show_header_toggle": False,
        "state_color": True,
        "entities": rows(
            "jobs_pending", "tokens_per_second", "intensity", "background_jobs", "serve_requests"
        ),
    }
    # Two columns: the heater and its work; what it draws and what the room does.
    heater = {
        "type": "vertical-stack",
        "cards": [{"type": "thermostat", "entity": entities["heater"]}, work],
    }
    figures = {
        "type": "vertical-stack",
        "cards": [
            graph("Power against heat target", ("power", "Power"), ("heat_target", "Heat target")),
            graph(
                "Room and outdoor",
                ("room_temperature", "Room"),
                ("outdoor_temperature", "Outdoor"),
            ),
            {"type": "entities", "title": "Energy", "entities": rows("energy", "heat_reuse")},
        ],
    }
    return {
        "title": title,
        "views": [
            {
                "title": "Heater",
                "path": "heater",
                "icon": "mdi:radiator",
                "cards": [heater, figures],
            }
        ],
    }
