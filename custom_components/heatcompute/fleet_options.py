"""The "fleet" section of a node's options: this node leads a model split over workers.

The node whose options are open is the lead: the user picks its workers among the
other nodes set up in Home Assistant and the model to split. Saving pairs them through
the nodes' API (pairing.py) before the options are stored, so a failure shows on the
form, naming the node, and nothing half-done is saved. A section rather than a step, as
the voice assistant's: the options keep their one form, and nothing needs setting up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.const import CONF_HOST
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import voluptuous as vol

from .const import CONF_FLEET, CONF_FLEET_MODEL, CONF_WORKERS
from .coordinator import HeatcomputeConfigEntry
from .fleet import async_get_fleet
from .fleet_api import FleetApi
from .pairing import Member, PairingError, async_lead, async_stop_leading


def fleet_choice(options: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The workers (node ids) and the model an entry's options choose for its split."""
    fleet = options.get(CONF_FLEET) or {}
    return list(fleet.get(CONF_WORKERS) or []), fleet.get(CONF_FLEET_MODEL) or None


def members(hass: HomeAssistant) -> dict[str, Member]:
    """Every loaded node, by node id."""
    found: dict[str, Member] = {}
    for coordinator in async_get_fleet(hass).members().values():
        entry = coordinator.config_entry
        node_id = coordinator.data.node_id
        found[node_id] = Member(
            node_id=node_id,
            name=entry.title,
            host=entry.data[CONF_HOST],
            api=FleetApi(coordinator.client),
        )
    return found


def fleet_schema(hass: HomeAssistant, entry: HeatcomputeConfigEntry) -> dict[vol.Marker, object]:
    """The section: the other nodes to choose from, and this node's models."""
    own_id = entry.unique_id
    workers, model = fleet_choice(entry.options)
    nodes = {node_id: member.name for node_id, member in members(hass).items()}
    # A chosen worker that is not set up (any more) stays listed, so the form still
    # validates and the user can take it out.
    nodes |= {node_id: node_id for node_id in workers if node_id not in nodes}
    runtime = getattr(entry, "runtime_data", None)
    models = list(runtime.coordinator.data.models) if runtime is not None else []
    if model and model not in models:
        models.append(model)
    fields = vol.Schema(
        {
            vol.Optional(CONF_WORKERS, default=[]): SelectSelector(
                SelectSelectorConfig(
                    options=[
                        SelectOptionDict(value=node_id, label=name)
                        for node_id, name in sorted(nodes.items(), key=lambda item: item[1])
                        if node_id != own_id
                    ],
                    multiple=True,
                    mode=SelectSelectorMode.LIST,
                )
            ),
            vol.Optional(CONF_FLEET_MODEL): SelectSelector(
                SelectSelectorConfig(options=models, custom_value=True)
            ),
        }
    )
    return {vol.Optional(CONF_FLEET): section(fields, {"collapsed": not workers})}


async def async_apply_fleet_choice(
    hass: HomeAssistant, entry: HeatcomputeConfigEntry, new: Mapping[str, Any]
) -> None:
    """Make the nodes what the new options say, if they say something new; raises
    PairingError (its reason a form error) when a node cannot be reached or refuses."""
    old_workers, old_model = fleet_choice(entry.options)
    new_workers, new_model = fleet_choice(new)
    if (set(new_workers), new_model) == (set(old_workers), old_model) or (
        not new_workers and not old_workers
    ):
        return
    if new_workers and not new_model:
        raise PairingError("fleet_model_required", entry.title)
    known = members(hass)
    if (lead := known.get(entry.unique_id or "")) is None:
        raise PairingError("cannot_connect", entry.title)
    gone = [node_id for node_id in old_workers if node_id not in new_workers]
    released = [known.get(node_id, node_id) for node_id in gone]
    if not new_workers:
        await async_stop_leading(lead, released)
        return
    if missing := [node_id for node_id in new_workers if node_id not in known]:
        raise PairingError("worker_not_set_up", missing[0])
    assert new_model is not None
    # The lead splits one of its own models: checked here, before any node changes.
    if new_model not in entry.runtime_data.coordinator.data.models:
        raise PairingError("fleet_model_unknown", entry.title, new_model)
    await async_lead(lead, [known[node_id] for node_id in new_workers], new_model, released)
