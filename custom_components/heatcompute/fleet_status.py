"""What a node says about its part in a split model (the "fleet" section of its status).

A node is a worker (it lends its memory and compute to a lead), a lead (it runs a model
split over itself and its workers), or neither. The lead tells how each of its workers
is doing; Home Assistant raises a repair issue for a worker it lost (repair_issues.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .parsing import float_or_none, int_or_none, mapping, mappings, str_or_none

type FleetRole = Literal["off", "worker", "lead"]
FLEET_ROLES: tuple[FleetRole, ...] = ("off", "worker", "lead")


def fleet_role(value: Any) -> FleetRole:
    """The node's role; anything unknown reads as none."""
    return next((role for role in FLEET_ROLES if role == value), "off")


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadWorker:
    """One of a lead's workers, as the lead sees it."""

    node_id: str
    name: str
    address: str | None
    state: str
    """connected, connecting or lost."""
    error: str | None

    @property
    def lost(self) -> bool:
        return self.state == "lost"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeadWorker:
        node_id = str(data.get("node_id") or "")
        return cls(
            node_id=node_id,
            name=str(data.get("name") or node_id),
            address=str_or_none(data.get("address")),
            state=str(data.get("state") or "connecting"),
            error=str_or_none(data.get("error")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadStatus:
    """The split model a lead runs."""

    model: str | None
    state: str
    """starting, split, local (a worker is lost, the model fits here alone), unavailable."""
    error: str | None
    workers: tuple[LeadWorker, ...]
    bytes_per_token: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeadStatus:
        return cls(
            model=str_or_none(data.get("model")),
            state=str(data.get("state") or "starting"),
            error=str_or_none(data.get("error")),
            workers=tuple(LeadWorker.from_dict(worker) for worker in mappings(data.get("workers"))),
            bytes_per_token=float_or_none(mapping(data.get("traffic")).get("bytes_per_token")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStatus:
    """A worker's side: whether a lead uses it now."""

    serving: bool
    lead: str | None
    energy_kwh: float | None
    """The share of this node's energy that was work for a lead (heat in this room)."""
    bytes_sent: int | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerStatus:
        return cls(
            serving=data.get("serving") is True,
            lead=str_or_none(data.get("lead")),
            energy_kwh=float_or_none(data.get("energy_kwh")),
            bytes_sent=int_or_none(data.get("bytes_sent")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetStatus:
    """The node's role and how that role is going."""

    role: FleetRole
    lead: LeadStatus | None
    worker: WorkerStatus | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FleetStatus:
        lead, worker = data.get("lead"), data.get("worker")
        return cls(
            role=fleet_role(data.get("role")),
            lead=LeadStatus.from_dict(lead) if isinstance(lead, Mapping) else None,
            worker=WorkerStatus.from_dict(worker) if isinstance(worker, Mapping) else None,
        )
