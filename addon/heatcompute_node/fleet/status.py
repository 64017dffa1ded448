"""The fleet's part of /api/status, the events and /metrics (a typed snapshot)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..snapshot import IDLE, EnergyFigures, EngineLoad, Metric, counter, gauge


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadFigures:
    model: str
    state: str
    error: str | None
    layers: tuple[Mapping[str, Any], ...]
    workers: tuple[Mapping[str, Any], ...]
    bytes_sent: int
    bytes_received: int
    tokens: int
    serving_bytes: int
    serving_tokens: int
    recoveries: int
    last_recovery_s: float | None

    def as_dict(self) -> dict[str, Any]:
        per_token = self.serving_bytes / self.serving_tokens if self.serving_tokens else None
        return {
            "model": self.model,
            "state": self.state,
            "error": self.error,
            "layers": [dict(r) for r in self.layers],
            "workers": [dict(w) for w in self.workers],
            "traffic": {
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
                "tokens": self.tokens,
                # Generation only: the weights sent at a (re)load are not per token.
                "bytes_per_token": round(per_token, 1) if per_token is not None else None,
            },
            "recoveries": self.recoveries,
            "last_recovery_s": self.last_recovery_s,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerFigures:
    rpc_endpoint: str | None
    tunnel: str
    lead: str | None
    bytes_sent: int
    bytes_received: int
    refused: int
    last_refusal: str | None
    cpu_s: float
    energy_kwh: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "rpc_endpoint": self.rpc_endpoint,
            "tunnel": self.tunnel,
            "serving": self.lead is not None,
            "lead": self.lead,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "refused": self.refused,
            "last_refusal": self.last_refusal,
            "cpu_s": round(self.cpu_s, 2),
            "energy_kwh": round(self.energy_kwh, 6),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSnapshot:
    key: str = "fleet"
    role: str
    lead: LeadFigures | None = None
    worker: WorkerFigures | None = None

    @property
    def load(self) -> EngineLoad:
        return IDLE

    @property
    def models(self) -> tuple[Mapping[str, Any], ...]:
        return ()

    def section(self, energy: EnergyFigures | None) -> dict[str, Any]:
        return {
            "role": self.role,
            "lead": self.lead.as_dict() if self.lead is not None else None,
            "worker": self.worker.as_dict() if self.worker is not None else None,
        }

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        if self.lead is not None:
            yield counter(
                "heatcompute_fleet_rpc_sent_bytes",
                "Bytes the lead sent to its workers through the tunnel",
                self.lead.bytes_sent,
            )
            yield counter(
                "heatcompute_fleet_rpc_received_bytes",
                "Bytes the lead received from its workers through the tunnel",
                self.lead.bytes_received,
            )
        if self.worker is not None:
            yield counter(
                "heatcompute_fleet_worker_cpu_seconds",
                "CPU time this worker spent on its lead's layers",
                self.worker.cpu_s,
            )
            yield gauge(
                "heatcompute_fleet_worker_energy_kwh",
                "Energy (heat in this room) of the work done for the lead",
                self.worker.energy_kwh,
            )
