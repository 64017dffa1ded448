"""The heat service's snapshot: intensity, jobs, governor, safety and energy figures.

Taken by :meth:`HeatController.snapshot` (reads only); the node renders it into the
status's ``intensity``, ``work`` (jobs), ``governor``, ``safety`` and ``energy``, and
into /metrics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..snapshot import EnergyFigures, Metric, Sample, counter, gauge
from .governor import BackgroundKnobs
from .index_work import IndexWorkFigures
from .safety import SafetySnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFigures:
    pending: int = 0
    """Jobs not finished."""
    running: int = 0
    background: str = "idle"
    """What background work runs for: idle, heat, deadline, filler or requests."""
    filler_items: int = 0
    index: IndexWorkFigures | None = None
    """Index work, where the node has a document index."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs_pending": self.pending,
            "jobs_running": self.running,
            "background": self.background,
            "filler_items": self.filler_items,
            **(self.index.as_dict() if self.index is not None else {}),
        }


NO_JOBS = JobFigures()


@dataclass(frozen=True, slots=True, kw_only=True)
class GovernorFigures:
    heat_target_w: float
    """The heat target in force: Home Assistant's, or the watchdog's safe level."""
    setpoint_w: float
    error_w: float | None
    knobs: BackgroundKnobs

    def as_dict(self) -> dict[str, Any]:
        knobs = self.knobs
        return {
            "heat_target_w": round(self.heat_target_w, 1),
            "setpoint_w": round(self.setpoint_w, 1),
            "error_w": None if self.error_w is None else round(self.error_w, 1),
            "knobs": {
                "max_background": knobs.max_background,
                "background_threads": knobs.background_threads,
                "duty_cycle": knobs.duty_cycle,
            },
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatControlSnapshot:
    intensity: float
    jobs: JobFigures
    governor: GovernorFigures
    safety: SafetySnapshot
    energy: EnergyFigures

    def sections(self) -> dict[str, Any]:
        """Its top-level status sections."""
        return {
            "governor": self.governor.as_dict(),
            "safety": self.safety.as_dict(),
            "energy": self.energy.as_dict(),
        }

    def metrics(self) -> Iterator[Metric]:
        """Safety trips, heat reuse, energy per token and the governor's setpoint."""
        trips = self.safety.trips
        yield Metric(
            name="heatcompute_safety_trip_active",
            help="1 while a safety trip is in force",
            labels=("kind",),
            samples=tuple(Sample((t.kind,), 1.0 if t.active else 0.0) for t in trips),
        )
        yield Metric(
            name="heatcompute_safety_trips",
            help="Safety trips fired since start",
            kind="counter",
            labels=("kind",),
            samples=tuple(Sample((t.kind,), t.count) for t in trips),
        )
        energy = self.energy
        yield counter(
            "heatcompute_energy_wanted_kwh",
            "Energy drawn while heat was wanted (reused heat)",
            energy.wanted_kwh,
        )
        if energy.heat_reuse is not None:
            yield gauge(
                "heatcompute_heat_reuse_ratio",
                "Wanted-heat energy / total energy",
                energy.heat_reuse,
            )
        if energy.wh_per_1k_tokens is not None:
            yield gauge(
                "heatcompute_energy_per_1k_tokens_wh",
                "Energy per 1000 generated tokens since start",
                energy.wh_per_1k_tokens,
            )
        yield gauge(
            "heatcompute_governor_setpoint_watts",
            "Power the governor aims for",
            round(self.governor.setpoint_w, 1),
        )
