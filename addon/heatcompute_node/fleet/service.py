"""The node's fleet: its key, its paired peers, its role, and the role's work.

One per node. Pairing and role changes come from the API (api/fleet.py), which Home
Assistant drives; both are saved at once and take effect at once (a worker's tunnel
uses each new pairing from its next connection on, a new role stops the old one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import logging
from pathlib import Path
import ssl

from ..hardware.base import HardwareReading
from . import keys, state as stored
from .keys import NodeKey
from .lead import EngineShape, Lead
from .model_file import read_split_model
from .state import FleetState, Peer, Role
from .status import FleetSnapshot, LeadFigures, WorkerFigures
from .tls import context
from .worker import Worker

_LOGGER = logging.getLogger(__name__)


class RoleError(ValueError):
    """A role that cannot be taken (unknown worker, unknown model...)."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class FleetService:
    def __init__(
        self,
        *,
        node_id: str,
        name: str,
        data_dir: Path,
        host: str,
        port: int,
        worker_by_default: bool,
        find_model: Callable[[str], Path],
        shape: EngineShape,
    ) -> None:
        self.node_id, self.name = node_id, name
        self.directory = data_dir / "fleet"
        self.host, self.port = host, port
        self._worker_by_default = worker_by_default
        self._find_model = find_model
        self._shape = shape
        self.state = FleetState()
        self._key: NodeKey | None = None
        self._tls: dict[str, ssl.SSLContext] = {}
        """By peer node id (a lead's, per worker); "" for the worker's server side."""
        self.worker: Worker | None = None
        self.lead: Lead | None = None
        self._lock = asyncio.Lock()

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.state = await asyncio.to_thread(stored.load, self.directory)
        self._key = await asyncio.to_thread(keys.load_or_create, self.directory, self.node_id)
        try:
            await self.set_role(self.role)
        except RoleError as err:  # a saved role that no longer works must not stop the node
            _LOGGER.error("fleet: cannot take the role %s: %s", self.role.name, err)

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_role()

    # --- identity and pairing ------------------------------------------------------------

    @property
    def key(self) -> NodeKey:
        assert self._key is not None, "started"
        return self._key

    @property
    def role(self) -> Role:
        if self.state.role is not None:
            return self.state.role
        return Role(name="worker" if self._worker_by_default else "off")

    def server_tls(self) -> ssl.SSLContext:
        """The worker's TLS context: every paired node's certificate is accepted (made
        again after every pairing change)."""
        if "" not in self._tls:
            pems = [p.certificate for p in self.state.peers.values()]
            self._tls[""] = context(self.key, pems, server=True)
        return self._tls[""]

    def client_tls(self, peer: Peer) -> ssl.SSLContext:
        """The lead's TLS context for one worker: that worker's certificate as paired now
        (none, so every handshake fails, once it is unpaired)."""
        if peer.node_id not in self._tls:
            current = self.state.peers.get(peer.node_id)
            pems = [current.certificate] if current is not None else []
            self._tls[peer.node_id] = context(self.key, pems, server=False)
        return self._tls[peer.node_id]

    async def pair(self, peer: Peer) -> None:
        self.state.peers[peer.node_id] = peer
        await self._saved()

    async def unpair(self, node_id: str) -> None:
        self.state.peers.pop(node_id)  # KeyError: the API says 404
        await self._saved()

    async def renew_key(self) -> None:
        self._key = await asyncio.to_thread(
            keys.load_or_create, self.directory, self.node_id, renew=True
        )
        self._tls.clear()

    async def _saved(self) -> None:
        self._tls.clear()
        await asyncio.to_thread(stored.save, self.directory, self.state)

    # --- roles ---------------------------------------------------------------------------

    async def set_role(self, role: Role, *, remember: bool = False) -> None:
        """Stop the current role's work and start the new one's; raises RoleError."""
        async with self._lock:
            lead_model = self._check(role)
            await self._stop_role()
            if remember:
                self.state.role = role
                await self._saved()
            try:
                await self._start_role(role, lead_model)
            except (OSError, RuntimeError, TimeoutError, ValueError) as err:
                await self._stop_role()
                raise RoleError(
                    f"the {role.name} role did not start: {err}", code="role_failed"
                ) from err

    async def _start_role(self, role: Role, lead_model: tuple[str, Path] | None) -> None:
        if role.name == "worker":
            self.worker = Worker(
                node_id=self.node_id,
                name=self.name,
                host=self.host,
                port=self.port,
                threads=self._shape.threads,
                tls=self.server_tls,
                peers=lambda: self.state.peers,
            )
            await self.worker.start()
        elif role.name == "lead" and lead_model is not None:
            model_id, path = lead_model
            model = await asyncio.to_thread(read_split_model, model_id, path)
            self.lead = Lead(
                node_id=self.node_id,
                name=self.name,
                model=model,
                workers=[self.state.peers[w] for w in role.workers],
                tls=self.client_tls,
                engine_dir=self.directory / "engine",
                shape=self._shape,
            )
            await self.lead.start()

    def _check(self, role: Role) -> tuple[str, Path] | None:
        if role.name != "lead":
            return None
        if not role.model:
            raise RoleError("a lead needs the model to split", code="invalid_role")
        if not role.workers:
            raise RoleError("a lead needs at least one worker", code="invalid_role")
        for worker in role.workers:
            peer = self.state.peers.get(worker)
            if peer is None:
                raise RoleError(f"worker {worker!r} is not paired", code="peer_not_found")
            if not peer.address:
                raise RoleError(
                    f"worker {peer.name!r} was paired without its tunnel address",
                    code="worker_without_address",
                )
        try:
            return role.model, self._find_model(role.model)
        except LookupError as err:
            raise RoleError(str(err), code="model_not_found") from err

    async def _stop_role(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        if self.lead is not None:
            await self.lead.stop()
            self.lead = None

    # --- figures -------------------------------------------------------------------------

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        if self.worker is not None:
            self.worker.on_sample(reading, now)

    def snapshot(self) -> FleetSnapshot:
        return FleetSnapshot(
            role=self.role.name,
            lead=_lead_figures(self.lead) if self.lead is not None else None,
            worker=_worker_figures(self.worker) if self.worker is not None else None,
        )


def _lead_figures(lead: Lead) -> LeadFigures:
    links = lead.links
    serving_bytes, serving_tokens = lead.serving_traffic()
    return LeadFigures(
        model=lead.model.id,
        state=lead.state,
        error=lead.error,
        layers=tuple(r.as_dict() for r in lead.plan.ranges) if lead.plan else (),
        workers=tuple(
            {
                **view.peer.public(),
                "state": view.state,
                "free_memory_mb": round(view.free_bytes / 2**20, 1)
                if view.free_bytes is not None
                else None,
                "bytes_sent": links[node_id].traffic.bytes_sent,
                "bytes_received": links[node_id].traffic.bytes_received,
                "error": view.error,
            }
            for node_id, view in lead.workers.items()
        ),
        bytes_sent=sum(link.traffic.bytes_sent for link in links.values()),
        bytes_received=sum(link.traffic.bytes_received for link in links.values()),
        tokens=lead.tokens_total,
        serving_bytes=serving_bytes,
        serving_tokens=serving_tokens,
        recoveries=lead.recoveries,
        last_recovery_s=lead.last_recovery_s,
    )


def _worker_figures(worker: Worker) -> WorkerFigures:
    stats = worker.tunnel.stats
    return WorkerFigures(
        rpc_endpoint=worker.rpc.endpoint,
        tunnel=f"{worker.tunnel.host}:{worker.tunnel.port}",
        lead=stats.lead,
        bytes_sent=stats.traffic.bytes_sent,
        bytes_received=stats.traffic.bytes_received,
        refused=stats.refused,
        last_refusal=stats.last_refusal,
        cpu_s=worker.rpc.cpu_s(),
        energy_kwh=worker.energy_kwh,
    )
