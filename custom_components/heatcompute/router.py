"""Which node answers: the healthy one whose room wants heat most, then the least busy.

Every answer heats the room of the node that computes it, so with several nodes the
assistant's work goes where heat is wanted. A conversation stays on the node it started
on while that node stays healthy: the node holds the conversation's prompt in its prefix
cache, and moving would pay the whole prompt again. If a node fails during a request,
the request is retried once on the next node in line; the user notices nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .client import (
    HeatcomputeClient,
    HeatcomputeConnectionError,
    HeatcomputeError,
    HeatcomputeModelNotFoundError,
    HeatcomputeOverloadedError,
    HeatcomputeResponseError,
    NodeStatus,
)
from .const import LOGGER

# Conversations remembered for stickiness; old ones are forgotten first.
MAX_AFFINITIES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One node as the router sees it."""

    node_id: str
    name: str
    client: HeatcomputeClient
    status: NodeStatus | None
    healthy: bool
    """Its coordinator reached it lately and it accepts requests."""

    @property
    def heat_demand_w(self) -> float:
        """The watts its room asks for now (0 when no heat is wanted)."""
        if self.status is None or not self.status.heat.wanted:
            return 0.0
        return self.status.heat.target_w

    @property
    def busy(self) -> int:
        status = self.status
        if status is None:
            return 0
        return (status.queue_depth or 0) + (status.requests_active or 0)

    def serves(self, model: str | None) -> bool:
        """Whether the node has the model (any model when none is asked for)."""
        if self.status is None or not model or not self.status.models:
            return True  # a node that lists no models is asked anyway: it says if not
        return model in self.status.models

    def loading(self, model: str | None) -> bool:
        if self.status is None:
            return False
        states = self.status.model_states
        chosen = [states.get(model, "")] if model else list(states.values())
        return bool(chosen) and all(state == "loading" for state in chosen)


def rank(nodes: Iterable[Node], model: str | None) -> list[Node]:
    """The order in which nodes should get a new conversation; unusable ones last."""

    def key(node: Node) -> tuple[bool, bool, bool, float, int, str]:
        return (
            not node.healthy,
            not node.serves(model),
            node.loading(model),
            -node.heat_demand_w,
            node.busy,
            node.node_id,  # a stable order among equals
        )

    return sorted(nodes, key=key)


def is_failover_error(err: HeatcomputeError) -> bool:
    """Errors another node may not have: the node is gone, failed, loading, full, not
    serving (503 `not_serving`: its "Serve requests" switch is off) or without the model.

    A request the node refused for its content (4xx) would be refused elsewhere too.
    """
    if isinstance(err, HeatcomputeOverloadedError | HeatcomputeModelNotFoundError):
        return True
    return not isinstance(err, HeatcomputeResponseError)


class NodeRouter:
    """Routes one agent's conversations over the nodes, with stickiness and one retry."""

    def __init__(self) -> None:
        self._affinity: OrderedDict[str, str] = OrderedDict()

    def order(self, conversation_id: str, nodes: Iterable[Node], model: str | None) -> list[Node]:
        """Nodes to try for this conversation, best first (its own node first if healthy)."""
        ranked = rank(nodes, model)
        sticky = self._affinity.get(conversation_id)
        for index, node in enumerate(ranked):
            if node.node_id == sticky and node.healthy and node.serves(model):
                ranked.insert(0, ranked.pop(index))
                break
        return ranked

    def remember(self, conversation_id: str, node_id: str) -> None:
        self._affinity[conversation_id] = node_id
        self._affinity.move_to_end(conversation_id)
        while len(self._affinity) > MAX_AFFINITIES:
            self._affinity.popitem(last=False)

    def node_of(self, conversation_id: str) -> str | None:
        return self._affinity.get(conversation_id)

    async def run[T](
        self,
        conversation_id: str,
        nodes: Iterable[Node],
        model: str | None,
        call: Callable[[Node], Awaitable[T]],
    ) -> tuple[Node, T]:
        """Run `call` on the best node; on a node failure, once more on the next one."""
        node, result = await run_in_order(self.order(conversation_id, nodes, model), model, call)
        self.remember(conversation_id, node.node_id)
        return node, result


async def run_in_order[T](
    ordered: list[Node], model: str | None, call: Callable[[Node], Awaitable[T]]
) -> tuple[Node, T]:
    """Run `call` on the first node of `ordered`; on a node failure, once more on the
    next healthy one that serves the model."""
    if not ordered:
        raise HeatcomputeConnectionError("no heatcompute node is set up")
    # The best node is tried even if it looks unhealthy: the look may be stale.
    candidates = [ordered[0], *[n for n in ordered[1:] if n.healthy and n.serves(model)]]
    last_error: HeatcomputeError | None = None
    for attempt, node in enumerate(candidates[:2]):
        try:
            result = await call(node)
        except HeatcomputeError as err:
            if not is_failover_error(err):
                raise
            LOGGER.info(
                "node %s failed (%s)%s",
                node.name,
                err,
                "; retrying on another node" if attempt == 0 and len(candidates) > 1 else "",
            )
            last_error = err
            continue
        return node, result
    assert last_error is not None
    raise last_error
