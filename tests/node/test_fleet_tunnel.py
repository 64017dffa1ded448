"""The fleet tunnel's two ends on 127.0.0.1: who gets in, and whom a lead trusts.

Real TLS with keys made as pairing makes them; the worker end's ping needs no ggml
server behind it (the RPC stream is shown end to end in tests/fleet).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
import socket

import pytest

from heatcompute_node.fleet import keys
from heatcompute_node.fleet.lead import EngineShape
from heatcompute_node.fleet.service import FleetService
from heatcompute_node.fleet.state import Peer
from heatcompute_node.fleet.tls import context
from heatcompute_node.fleet.tunnel_client import WorkerLink, WorkerUnreachableError
from heatcompute_node.fleet.tunnel_server import TunnelServer


def _peer(key: keys.NodeKey, node_id: str, address: str | None = None) -> Peer:
    return Peer(
        node_id=node_id,
        name=node_id,
        certificate=key.certificate,
        fingerprint=key.fingerprint,
        address=address,
    )


@pytest.fixture
def node_keys(tmp_path: Path) -> dict[str, keys.NodeKey]:
    return {
        name: keys.load_or_create(tmp_path / name, name) for name in ("lead", "worker", "other")
    }


@pytest.fixture
async def worker_end(
    socket_enabled: None, node_keys: dict[str, keys.NodeKey]
) -> AsyncIterator[TunnelServer]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    paired = {"lead": _peer(node_keys["lead"], "lead")}
    server = TunnelServer(
        "127.0.0.1",
        port,
        rpc_endpoint=lambda: None,
        tls=lambda: context(
            node_keys["worker"], [p.certificate for p in paired.values()], server=True
        ),
        peers=lambda: paired,
        ping=lambda: {"node_id": "worker", "free_memory": 123},
    )
    await server.start()
    yield server
    await server.stop()


def _link(lead_key: keys.NodeKey, trusted: keys.NodeKey, port: int) -> WorkerLink:
    worker = _peer(trusted, "worker", f"127.0.0.1:{port}")
    return WorkerLink(worker, lambda: context(lead_key, [trusted.certificate], server=False),
                      lambda _id, _why: None)  # fmt: skip


async def test_a_paired_lead_pings_its_worker(
    worker_end: TunnelServer, node_keys: dict[str, keys.NodeKey]
) -> None:
    answer = await _link(node_keys["lead"], node_keys["worker"], worker_end.port).ping()
    assert answer == {"node_id": "worker", "free_memory": 123}
    assert worker_end.stats.refused == 0


async def test_an_unpaired_node_is_refused_at_the_handshake(
    worker_end: TunnelServer, node_keys: dict[str, keys.NodeKey]
) -> None:
    stranger = _link(node_keys["other"], node_keys["worker"], worker_end.port)
    with pytest.raises(WorkerUnreachableError):
        await stranger.ping()
    assert worker_end.stats.refused == 1
    assert "TLS handshake refused" in (worker_end.stats.last_refusal or "")


async def test_a_lead_trusts_only_the_worker_it_paired(
    socket_enabled: None, node_keys: dict[str, keys.NodeKey], tmp_path: Path
) -> None:
    """The lead's context for a worker holds that worker's certificate alone: another
    paired node answering on its address is not taken for it."""
    lead = FleetService(
        node_id="lead00000001",
        name="living room",
        data_dir=tmp_path / "lead-data",
        host="127.0.0.1",
        port=1,
        worker_by_default=False,
        find_model=lambda model_id: Path(model_id),
        shape=EngineShape(threads=1, context=256, slots=1),
    )
    await lead.start()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kitchen = _peer(node_keys["worker"], "kitchen", f"127.0.0.1:{port}")
    attic = _peer(node_keys["other"], "attic", f"127.0.0.1:{port}")
    await lead.pair(kitchen)
    await lead.pair(attic)
    lead_peer = {"lead": Peer(node_id="lead00000001", name="lead", certificate=lead.key.certificate,
                              fingerprint=lead.key.fingerprint)}  # fmt: skip
    # The kitchen's tunnel, which admits the lead.
    server = TunnelServer(
        "127.0.0.1",
        port,
        rpc_endpoint=lambda: None,
        tls=lambda: context(node_keys["worker"], [lead.key.certificate], server=True),
        peers=lambda: lead_peer,
        ping=lambda: {"node_id": "kitchen"},
    )
    await server.start()
    try:
        to_kitchen = WorkerLink(kitchen, lambda: lead.client_tls(kitchen), lambda _i, _w: None)
        assert (await to_kitchen.ping())["node_id"] == "kitchen"
        # The attic is paired too, but the kitchen's certificate is not the attic's.
        to_attic = WorkerLink(attic, lambda: lead.client_tls(attic), lambda _i, _w: None)
        with pytest.raises(WorkerUnreachableError, match="certificate verify failed"):
            await to_attic.ping()
        # Unpaired: the lead trusts the kitchen no more.
        await lead.unpair("kitchen")
        with pytest.raises(WorkerUnreachableError, match="certificate verify failed"):
            await to_kitchen.ping()
    finally:
        await server.stop()
        await lead.stop()
