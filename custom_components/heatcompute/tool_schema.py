"""Tool schemas narrowed to the home, so a very small model calls tools right.

A forced tool call (`tool_choice: required`) makes the node constrain the answer by a
grammar built from the tools' JSON schemas: the call always parses. What goes into it is
still the model's choice, and a 135M model copies what it sees: given Assist's
HassTurnOn, it fills `device_class` with the schema's whole list of classes. Narrowed,
each free-text slot becomes the list of names that exist (`name` from the exposed
entities, `area` and `floor` from their areas), slots the home has no use for go, and
a call has to name its target. The grammar then only admits calls that can work.

Used in the "required" tool mode only: for a large home the lists cost tokens, which a
capable model does not need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import copy
from dataclasses import dataclass
from typing import Any

from homeassistant.components.homeassistant.exposed_entities import async_should_expose
from homeassistant.core import HomeAssistant, split_entity_id
from homeassistant.helpers import (
    area_registry as ar,
    device_registry as dr,
    entity_registry as er,
    floor_registry as fr,
)

# The assistant id Home Assistant's exposure settings use for conversation agents.
ASSISTANT = "conversation"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposedHome:
    """The names a tool call may target."""

    names: tuple[str, ...]
    areas: tuple[str, ...]
    floors: tuple[str, ...]
    domains: tuple[str, ...]


def exposed_home(hass: HomeAssistant) -> ExposedHome:
    entities = er.async_get(hass)
    devices = dr.async_get(hass)
    area_registry = ar.async_get(hass)
    floor_registry = fr.async_get(hass)
    names: set[str] = set()
    areas: set[str] = set()
    floors: set[str] = set()
    domains: set[str] = set()
    for state in hass.states.async_all():
        if not async_should_expose(hass, ASSISTANT, state.entity_id):
            continue
        domains.add(split_entity_id(state.entity_id)[0])
        names.add(state.name)
        entry = entities.async_get(state.entity_id)
        area_id = None
        if entry is not None:
            names.update(entry.aliases)
            area_id = entry.area_id
            if (
                area_id is None
                and entry.device_id
                and (device := devices.async_get(entry.device_id))
            ):
                area_id = device.area_id
        if area_id and (area := area_registry.async_get_area(area_id)):
            areas.add(area.name)
            areas.update(area.aliases)
            if area.floor_id and (floor := floor_registry.async_get_floor(area.floor_id)):
                floors.add(floor.name)
    return ExposedHome(
        names=tuple(sorted(names)),
        areas=tuple(sorted(areas)),
        floors=tuple(sorted(floors)),
        domains=tuple(sorted(domains)),
    )


def narrow_tools(tools: Sequence[Mapping[str, Any]], home: ExposedHome) -> list[dict[str, Any]]:
    """The tools with their parameters narrowed to `home` (the originals stay as they are)."""
    narrowed = []
    for tool in tools:
        tool_copy = copy.deepcopy(dict(tool))
        tool_copy["function"]["parameters"] = narrow_parameters(
            tool_copy["function"].get("parameters") or {}, home
        )
        narrowed.append(tool_copy)
    return narrowed


def narrow_parameters(schema: dict[str, Any], home: ExposedHome) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    choices = {"name": home.names, "area": home.areas, "floor": home.floors}
    out: dict[str, Any] = {}
    for key, prop in properties.items():
        if key == "device_class":
            continue  # small models copy the whole enum into the call
        if key in choices:
            if choices[key]:
                out[key] = {"type": "string", "enum": list(choices[key])}
            continue  # nothing of the kind exists in the home
        if key == "domain" and home.domains:
            domains: dict[str, Any] = {"type": "string", "enum": list(home.domains)}
            # Assist's intents take a list of domains; other tools (the node's) one.
            out[key] = (
                domains if prop.get("type") == "string" else {"type": "array", "items": domains}
            )
            continue
        if key in (schema.get("required") or ()) and prop.get("type") == "array":
            # A required list must hold something: small models write [] otherwise.
            out[key] = {**prop, "minItems": 1}
            continue
        out[key] = prop
    narrowed = {**schema, "properties": out}
    targets = [key for key in ("name", "area") if key in out]
    if targets and not schema.get("required"):
        # A targeting intent must name what it targets; `{}` would act on nothing.
        if len(targets) == 1:
            narrowed["required"] = targets
        else:
            narrowed.pop("properties")
            narrowed["anyOf"] = [
                {
                    "type": "object",
                    "properties": {k: v for k, v in out.items() if k != other},
                    "required": [key],
                }
                for key, other in (("name", "area"), ("area", "name"))
            ]
            narrowed.pop("required", None)
    return narrowed
