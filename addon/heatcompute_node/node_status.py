"""The node's status: its own figures beside every part's snapshot, rendered in one place.

``NodeStatus`` is what /api/status, the SSE ``status`` event and /metrics all read.
Each section has one owner: the node its identity, heat target, readings and energy
counter; the heat service intensity, jobs, governor, safety and energy; each engine or
service (:class:`~.snapshot.StatusSource`) its ``load``, its ``models`` rows and its own
section. The ``work`` figures are the engines' loads summed, plus the heat service's
jobs. Nothing here depends on the order in which parts were registered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .hardware.base import HardwareReading
from .heat.status import NO_JOBS, HeatControlSnapshot
from .heat.target import HeatTarget
from .runtime_config import RuntimeConfig
from .snapshot import EngineLoad, Metric, PartSnapshot, Sample, counter, gauge

# Top-level status keys the node and the heat service own: no part may take them.
RESERVED_KEYS = frozenset(
    {
        "node_id",
        "name",
        "version",
        "api_version",
        "hardware",
        "memory_bytes",
        "uptime_s",
        "heat",
        "power_w",
        "energy_kwh",
        "intensity",
        "temperatures",
        "work",
        "config",
        "models",
        "updated_at",
        "governor",
        "safety",
        "energy",
    }
)
CLOCK_KEYS = ("uptime_s", "updated_at")
"""Fields that move with the clock alone (left out when judging whether status changed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeFigures:
    """What the node itself knows: identity, heat target, last reading, energy counter."""

    node_id: str
    name: str
    version: str
    api_version: str
    hardware: str
    memory_bytes: int | None
    """What the models may use (memory.py); Home Assistant recommends models by it."""
    uptime_s: float
    heat: HeatTarget
    reading: HardwareReading
    energy_kwh: float
    config: RuntimeConfig
    max_power_limit_w: float
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        reading = self.reading
        return {
            "node_id": self.node_id,
            "name": self.name,
            "version": self.version,
            "api_version": self.api_version,
            "hardware": self.hardware,
            "memory_bytes": self.memory_bytes,
            "uptime_s": round(self.uptime_s, 1),
            "heat": self.heat.as_dict(self.config.max_power_w),
            "power_w": _round(reading.power_w, 1),
            "energy_kwh": round(self.energy_kwh, 4),
            "temperatures": {
                "chip_c": _round(reading.max_chip_temperature_c, 1),
                "sensors": {k: round(v, 1) for k, v in sorted(reading.temperatures_c.items())},
                "room_c": _round(reading.room_temperature_c, 2),
                "outside_c": _round(reading.outside_temperature_c, 1),
            },
            "config": self.config.as_dict(self.max_power_limit_w),
            "updated_at": self.updated_at.isoformat(timespec="seconds"),
        }

    def metrics(self) -> Iterator[Metric]:
        heat, reading = self.heat, self.reading
        yield gauge(
            "heatcompute_heat_target_watts",
            "Heat target (0 when off)",
            round(heat.target_w, 1) if heat.wanted else 0.0,
        )
        yield gauge("heatcompute_heat_wanted", "1 while heat is wanted", float(heat.wanted))
        yield gauge("heatcompute_max_power_watts", "Configured max power", self.config.max_power_w)
        if reading.power_w is not None:
            yield gauge("heatcompute_power_watts", "Measured power draw", round(reading.power_w, 1))
        yield counter(
            "heatcompute_energy_kwh",
            "Energy drawn (= heat delivered) since first start",
            round(self.energy_kwh, 4),
        )
        samples = [Sample((k,), round(v, 1)) for k, v in sorted(reading.temperatures_c.items())]
        for place, value, digits in (
            ("room", reading.room_temperature_c, 2),
            ("outside", reading.outside_temperature_c, 1),
        ):
            if value is not None:
                samples.append(Sample((place,), round(value, digits)))
        yield Metric(
            name="heatcompute_temperature_celsius",
            help="Temperatures",
            labels=("sensor",),
            samples=tuple(samples),
        )
        yield gauge("heatcompute_uptime_seconds", "Seconds since start", round(self.uptime_s, 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    node: NodeFigures
    heat: HeatControlSnapshot | None
    """None until the heat service runs."""
    parts: tuple[PartSnapshot, ...]

    @property
    def load(self) -> EngineLoad:
        return EngineLoad.combine(part.load for part in self.parts)

    def as_dict(self) -> dict[str, Any]:
        heat, energy = self.heat, self.heat.energy if self.heat is not None else None
        load = self.load
        jobs = heat.jobs if heat is not None else NO_JOBS
        status = self.node.as_dict()
        status["intensity"] = round(heat.intensity, 3) if heat is not None else 0.0
        status["work"] = {
            "tokens_per_s": load.tokens_per_s,
            "requests_active": load.requests_active,
            "queue_depth": load.queue_depth,
            "ttft_p95_s": load.ttft_p95_s,
            "latency_p95_s": load.latency_p95_s,
            **jobs.as_dict(),
        }
        status["models"] = [dict(row) for part in self.parts for row in part.models]
        for part in self.parts:
            section = part.section(energy)
            if section is not None:
                status[part.key] = section
        if heat is not None:
            status.update(heat.sections())
        return status

    def metrics(self) -> Iterator[Metric]:
        """Every metric family but the node's identity (an info metric, metrics.py's)."""
        yield from self.node.metrics()
        load = self.load
        jobs = self.heat.jobs if self.heat is not None else NO_JOBS
        yield gauge(
            "heatcompute_intensity_ratio",
            "Share of background capacity in use",
            round(self.heat.intensity, 3) if self.heat is not None else 0.0,
        )
        yield gauge(
            "heatcompute_tokens_per_second", "Generated tokens per second", load.tokens_per_s
        )
        yield gauge("heatcompute_requests_active", "Requests being served", load.requests_active)
        yield gauge("heatcompute_queue_depth", "Requests waiting", load.queue_depth)
        yield gauge("heatcompute_jobs_pending", "Deferrable jobs not finished", jobs.pending)
        energy = self.heat.energy if self.heat is not None else None
        for part in self.parts:
            yield from part.metrics(energy)
        if self.heat is not None:
            yield from self.heat.metrics()


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
