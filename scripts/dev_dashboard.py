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


def dashboard(entities: dict[str, str], title: str) -> dict[str, Any]:
    """A Lovelace config for the node whose entity ids (by key) are given."""

    def present(*keys: str) -> list[str]:
        return [entities[key] for key in keys if key in entities]

    cards: list[dict[str, Any]] = [
        {"type": "thermostat", "entity": entities["heater"]},
        {
            "type": "history-graph",
            "title": "Power against heat target",
            "hours_to_show": 1,
            "entities": present("power", "heat_target"),
        },
        {
            "type": "history-graph",
            "title": "Room and outdoor temperature",
            "hours_to_show": 1,
            "entities": present("room_temperature", "outdoor_temperature"),
        },
        {
            "type": "entities",
            "title": "Energy (= heat delivered)",
            "state_color": True,
            "entities": present("energy", "heat_reuse", "intensity"),
        },
        {
            "type": "entities",
            "title": "Jobs and requests",
            "state_color": True,
            "entities": present(
                "jobs_pending", "tokens_per_second", "background_jobs", "serve_requests"
            ),
        },
    ]
    return {
        "title": title,
        "views": [{"title": "Heater", "path": "heater", "icon": "mdi:radiator", "cards": cards}],
    }
