"""Where a job goes when Home Assistant names no node: where heat is wanted most.

A job's watts heat the room of the node that runs it, so a job without a node goes to
the node whose room asks for the most heat now, in the router's order (router.py): the
one the voice assistant would answer on. Nodes that are unreachable, or whose
"Background jobs" switch is off (they would hold the job without running it), are
left out. If the chosen node fails while taking the job, the next one in line gets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .fleet import Fleet
from .router import Node, rank, run_in_order


def takes_jobs(node: Node) -> bool:
    """Reachable, and its background jobs are not switched off."""
    config = node.status.config if node.status is not None else None
    return node.healthy and (config is None or config.background_jobs is not False)


async def async_place_job(fleet: Fleet, job: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Submit `job` to the node whose room wants heat most; answers its entry id and
    the node's reply. Client errors propagate (the action translates them)."""
    model = job["model"] if isinstance(job.get("model"), str) else None
    nodes = [node for node in fleet.nodes() if takes_jobs(node)]
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
