"""Which node holds which layers: in proportion to the memory each one has free.

llama.cpp keeps the first layers on the machine that loads the model (the lead's CPU)
and offloads the last ``gpu_layers`` (counting the output layer as one more) to its
devices, here one RPC server per worker, spread by ``tensor_split``. The ranges shown
in the status are computed with llama.cpp's own rule (llama-model.cpp: a layer goes to
the first device whose cumulative share exceeds its position in the offloaded span).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
import itertools

from ..engines.llm.offload import Offload

MEMORY_HEADROOM = 1.25
"""A model needs more than its file: KV cache and compute buffers. A node is given
layers only as far as its free memory covers them with this margin."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """A node that offers memory: the lead first, then its workers."""

    node_id: str
    name: str
    free_bytes: int
    endpoint: str | None = None
    """The lead's local tunnel end for a worker; None for the lead itself."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerRange:
    node_id: str
    name: str
    first_layer: int
    last_layer: int

    @property
    def layers(self) -> int:
        return self.last_layer - self.first_layer + 1

    def as_dict(self) -> dict[str, object]:
        return {
            "node_id": self.node_id,
            "name": self.name,
            "first_layer": self.first_layer,
            "last_layer": self.last_layer,
            "layers": self.layers,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitPlan:
    ranges: tuple[LayerRange, ...]
    offload: Offload | None
    """None: everything on the lead."""


class DoesNotFitError(RuntimeError):
    """The holders' free memory together is not enough for the model."""


def plan_split(n_layer: int, model_bytes: int, holders: Sequence[Holder]) -> SplitPlan:
    """Split ``n_layer`` layers (plus the output layer) over the holders by free memory.

    ``holders[0]`` is the lead. Raises DoesNotFitError when their memory together does
    not cover the model with the headroom.
    """
    need = model_bytes * MEMORY_HEADROOM
    total = sum(h.free_bytes for h in holders)
    if total < need:
        raise DoesNotFitError(
            f"the model needs {need / 2**20:.0f} MiB, the nodes have {total / 2**20:.0f} MiB free"
        )
    lead, workers = holders[0], list(holders[1:])
    if not workers:
        return SplitPlan(
            ranges=(
                LayerRange(
                    node_id=lead.node_id, name=lead.name, first_layer=0, last_layer=n_layer - 1
                ),
            ),
            offload=None,
        )
    span = n_layer + 1  # the output layer counts as one
    lead_layers = min(n_layer - 1, max(0, round(span * lead.free_bytes / total)))
    gpu_layers = span - lead_layers
    weights = [w.free_bytes / total for w in workers]
    offload = Offload(
        servers=tuple(w.endpoint or "" for w in workers),
        gpu_layers=gpu_layers,
        split=tuple(weights),
    )
    ranges = (
        []
        if lead_layers == 0
        else [
            LayerRange(
                node_id=lead.node_id, name=lead.name, first_layer=0, last_layer=lead_layers - 1
            )
        ]
    )
    owners = _device_of_layers(n_layer, lead_layers, gpu_layers, weights)
    for index, worker in enumerate(workers):
        mine = [layer for layer, owner in owners.items() if owner == index]
        if mine:
            ranges.append(
                LayerRange(
                    node_id=worker.node_id,
                    name=worker.name,
                    first_layer=min(mine),
                    last_layer=max(mine),
                )
            )
    return SplitPlan(ranges=tuple(ranges), offload=offload)


def _device_of_layers(
    n_layer: int, first_offloaded: int, gpu_layers: int, weights: Sequence[float]
) -> dict[int, int]:
    """llama.cpp's assignment of repeating layers to devices (output layer left out)."""
    total = sum(weights)
    cumulative = [c / total for c in itertools.accumulate(weights)]
    return {
        layer: min(
            bisect_right(cumulative, (layer - first_offloaded) / gpu_layers), len(weights) - 1
        )
        for layer in range(first_offloaded, n_layer)
    }
