"""The node's fleet API (`/api/fleet`): its role, its public key, the peers it trusts.

Each node makes its own key; the private half never leaves it. Pairing hands each side
the other's certificate (public) and the address of a worker's tunnel, so the nodes
admit each other and nobody else (pairing.py does it for a lead and its workers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .client import HeatcomputeClient, HeatcomputeNotSupportedError
from .fleet_status import FleetRole, FleetStatus, fleet_role
from .parsing import int_or_none, mappings, str_or_none


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetPeer:
    """A node this node admits (and, on a lead, reaches at `address`)."""

    node_id: str
    name: str
    address: str | None
    fingerprint: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetInfo:
    """`GET /api/fleet`: who the node is in a fleet."""

    node_id: str
    name: str
    role: FleetRole
    certificate: str
    """PEM: public, what its peers pin."""
    fingerprint: str
    tunnel_port: int | None
    peers: tuple[FleetPeer, ...]
    status: FleetStatus

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FleetInfo:
        return cls(
            node_id=str(data.get("node_id") or ""),
            name=str(data.get("name") or ""),
            role=fleet_role(data.get("role")),
            certificate=str(data.get("certificate") or ""),
            fingerprint=str(data.get("fingerprint") or ""),
            tunnel_port=int_or_none(data.get("tunnel_port")),
            peers=tuple(
                FleetPeer(
                    node_id=str(peer.get("node_id") or ""),
                    name=str(peer.get("name") or ""),
                    address=str_or_none(peer.get("address")),
                    fingerprint=str_or_none(peer.get("fingerprint")),
                )
                for peer in mappings(data.get("peers"))
            ),
            status=FleetStatus.from_dict(data),
        )


class FleetApi:
    """The fleet routes of one node."""

    def __init__(self, client: HeatcomputeClient) -> None:
        self.client = client

    async def info(self) -> FleetInfo:
        return FleetInfo.from_dict(await self.client.get_json("/api/fleet"))

    async def admit(self, peer: FleetInfo, address: str | None = None) -> None:
        """Trust `peer`'s certificate (and, on a lead, reach the worker at `address`)."""
        body = {
            "node_id": peer.node_id,
            "name": peer.name,
            "certificate": peer.certificate,
            "address": address,
        }
        await self.client.post_json("/api/fleet/pairing", body)

    async def forget(self, node_id: str) -> None:
        """Stop trusting a peer; one the node does not know is forgotten already."""
        try:
            await self.client.delete(f"/api/fleet/pairing/{node_id}")
        except HeatcomputeNotSupportedError as err:
            if err.code != "peer_not_found":
                raise

    async def set_role(
        self, role: FleetRole, *, model: str | None = None, workers: Iterable[str] = ()
    ) -> FleetInfo:
        body: dict[str, Any] = {"role": role}
        if role == "lead":
            body |= {"model": model, "workers": list(workers)}
        return FleetInfo.from_dict(await self.client.post_json("/api/fleet/role", body))
