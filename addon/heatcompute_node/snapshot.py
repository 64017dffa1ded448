"""Typed snapshots: what each engine and service hands to the status, events and /metrics.

Every part of the node that has figures to show (the LLM engine today; ONNX, the MCP
bridge and the document index next) is a :class:`StatusSource`: ``snapshot()`` returns
a frozen object, read without changing anything. The node puts the snapshots side by
side (:mod:`.node_status`) and renders /api/status, the SSE ``status`` event and
/metrics from them; no module reads another module's dict keys.

A part's snapshot says three things:

- ``load``: what it adds to the node-wide ``work`` figures (summed over the parts);
- ``models``: its rows of the status's ``models`` list;
- ``section`` and ``metrics``: its own status section (under its ``key``) and its own
  metric families, given the node's energy figures (energy per request needs them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

type MetricKind = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class Sample:
    labels: tuple[str, ...]
    """Label values, in the order of the metric's ``labels``."""
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One metric family, in no exporter's terms (metrics.py turns it into Prometheus)."""

    name: str
    help: str
    kind: MetricKind = "gauge"
    labels: tuple[str, ...] = ()
    samples: tuple[Sample, ...] = ()


def gauge(name: str, help: str, value: float) -> Metric:
    return Metric(name=name, help=help, samples=(Sample((), value),))


def counter(name: str, help: str, value: float) -> Metric:
    return Metric(name=name, help=help, kind="counter", samples=(Sample((), value),))


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineLoad:
    """What an engine adds to the node's ``work`` figures (summed; p95s take the worst)."""

    tokens_per_s: float = 0.0
    requests_active: int = 0
    queue_depth: int = 0
    ttft_p95_s: float | None = None
    latency_p95_s: float | None = None

    @staticmethod
    def combine(loads: Iterable[EngineLoad]) -> EngineLoad:
        loads = list(loads)
        return EngineLoad(
            tokens_per_s=round(sum(load.tokens_per_s for load in loads), 2),
            requests_active=sum(load.requests_active for load in loads),
            queue_depth=sum(load.queue_depth for load in loads),
            ttft_p95_s=_worst(load.ttft_p95_s for load in loads),
            latency_p95_s=_worst(load.latency_p95_s for load in loads),
        )


IDLE = EngineLoad()


@dataclass(frozen=True, slots=True, kw_only=True)
class EnergyFigures:
    """The node's energy figures (the heat service's), as every part may use them."""

    total_kwh: float
    wanted_kwh: float
    heat_reuse: float | None
    tokens_since_start: int
    wh_per_1k_tokens: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "total_kwh": self.total_kwh,
            "wanted_kwh": self.wanted_kwh,
            "heat_reuse": self.heat_reuse,
            "tokens_since_start": self.tokens_since_start,
            "wh_per_1k_tokens": self.wh_per_1k_tokens,
        }


class PartSnapshot(Protocol):
    """One engine's or service's figures at one moment; frozen, cheap to render."""

    @property
    def key(self) -> str:
        """Its section's name in /api/status (``llm``, ``onnx``, ``mcp``...)."""
        ...

    @property
    def load(self) -> EngineLoad: ...

    @property
    def models(self) -> tuple[Mapping[str, Any], ...]:
        """Its rows of the status's ``models`` list (id, kind, state...)."""
        ...

    def section(self, energy: EnergyFigures | None) -> Mapping[str, Any] | None:
        """Its own status section (None: none)."""
        ...

    def metrics(self, energy: EnergyFigures | None) -> Iterable[Metric]: ...


class StatusSource(Protocol):
    """An engine or service with figures to show. ``snapshot`` must not change state:
    the status is built for every request, event and scrape."""

    def snapshot(self) -> PartSnapshot: ...


def _worst(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
