"""Where a job goes when Home Assistant names no node: where heat is wanted most.

A job's watts heat the room of the node that runs it, so a job without a node goes to
the node whose room asks for the most heat now, in the router's order (router.py), the
order the voice assistant's conversations are placed in. Nodes that are unreachable, or
whose "Background jobs" switch is off (they would hold the job without running it), are
left out. If the chosen node fails while taking the job, the next one in line gets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .fleet import Fleet
from .router import Node, rank, run_in_order


def job_nodes(fleet: Fleet) -> list[Node]:
    """The nodes that can take a job now, each marked healthy for the router.

    Healthy for a job is not what it is for a request: a node whose "Serve requests"
    switch is off still runs jobs, and one whose "Background jobs" switch is off holds
    them without running them.
    """
    nodes = []
    for coordinator in fleet.members().values():
        node = coordinator.as_node()
        config = node.status.config if node.status is not None else None
        if coordinator.last_update_success and (
            config is None or config.background_jobs is not False
        ):
            nodes.append(replace(node, healthy=True))
    return nodes


async def async_place_job(fleet: Fleet, job: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Submit `job` to the node whose room wants heat most; answers its entry id and
    the node's reply. Client errors propagate (the action translates them)."""
    model = job["model"] if isinstance(job.get("model"), str) else None
    nodes = job_nodes(fleet)
    if not nodes:
        raise HomeAssistantError(translation_domain=DOMAIN, translation_key="no_node_for_jobs")
    node, reply = await run_in_order(
        rank(nodes, model),
        model,
        lambda chosen: chosen.client.submit_job(job),
    )
    entry_id = fleet.entry_id_of(node)
    assert entry_id is not None  # the node came from the fleet a moment ago
    return entry_id, reply
