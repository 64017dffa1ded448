"""Issue 16: one model split over two real nodes in two network namespaces.

Each node is a real `python -m heatcompute_node` in a namespace of its own, joined by
a veth pair (10.77.16.0/30, made and removed by the test); the model is the real
SmolLM2-135M Q8_0 GGUF, split by llama.cpp's RPC backend through the nodes' mutual-TLS
tunnel. Only the hardware is simulated (the twin), as everywhere in the node's tests.

It shows: the split model's greedy output equals one node's, token for token; the
worker's ggml RPC port answers nobody outside its own loopback; a peer with a key that
was not paired is refused at the tunnel; a killed worker fails the running request
within seconds, the lead then serves alone, and the split comes back with the worker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
import subprocess
import time
from typing import Any

import pytest

from heatcompute_node.fleet.keys import load_or_create

from .hosts import MODEL, MODEL_ID, TUNNEL_PORT, NodeProcess, NsClient, pair, wait_for
from .netns import Host, two_hosts, unavailable_reason

pytestmark = [
    pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())),
    pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL.name} is not in models/"),
]

CHAT = {
    "model": MODEL_ID,
    "messages": [{"role": "user", "content": "Name three colours and say why you like them."}],
    "max_tokens": 32,
    "temperature": 0,
}
LOST_WITHIN_S = 5.0
UNREACHABLE_WITHIN_S = 10.0
"""TCP keepalive (1 s idle, 3 probes a second apart) and a 4 s user timeout (tls.py)."""


class House:
    def __init__(self, lead: Host, worker: Host, tmp: Path) -> None:
        self.lead_host, self.worker_host = lead, worker
        self.lead = NodeProcess(lead, tmp / "lead", "living-room")
        self.worker = NodeProcess(worker, tmp / "worker", "kitchen", "--fleet-worker")
        self.clients: list[NsClient] = []

    async def client(self, host: Host) -> NsClient:
        client = await NsClient.start(host)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for node in (self.lead, self.worker):
            await node.stop()


@pytest.fixture
async def house(tmp_path: Path) -> AsyncIterator[House]:
    with two_hosts() as (lead, worker):
        house = House(lead, worker, tmp_path)
        try:
            yield house
        finally:
            await house.close()


def _healthy(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") == "ok"


def _lead_state(state: str, *, ranges: int) -> Any:
    def ready(body: dict[str, Any]) -> bool:
        lead = body.get("lead") or {}
        return lead.get("state") == state and len(lead.get("layers", [])) == ranges

    return ready


async def _chat(client: NsClient) -> dict[str, Any]:
    answer = await client.api("POST", "/v1/chat/completions", CHAT)
    assert answer["status"] == 200, answer
    body: dict[str, Any] = answer["body"]
    return body


def _same_tokens(split: dict[str, Any], single: dict[str, Any]) -> None:
    """Greedy: the same text from the same number of tokens, stopped by max_tokens."""
    assert split["choices"][0]["message"]["content"] == single["choices"][0]["message"]["content"]
    assert split["usage"]["completion_tokens"] == single["usage"]["completion_tokens"] == 32
    assert split["choices"][0]["finish_reason"] == "length"


async def test_split_model_over_two_namespaces(house: House, tmp_path: Path) -> None:
    await house.worker.start()
    await house.lead.start()
    at_lead = await house.client(house.lead_host)
    at_worker = await house.client(house.worker_host)
    await wait_for(at_worker, "/health", _healthy, what="the worker node is up")
    await wait_for(at_lead, "/health", _healthy, what="the lead node is up")

    # One node alone: the reference answer (the worker serves the model itself).
    single = await _chat(at_worker)

    worker_id = await pair(at_lead, at_worker, house.worker_host.address)
    fleet = await wait_for(
        at_lead, "/api/fleet", _lead_state("split", ranges=2), what="the split is serving"
    )
    layers = fleet["lead"]["layers"]
    assert [r["name"] for r in layers] == ["living-room", "kitchen"]
    assert layers[0]["first_layer"] == 0
    assert layers[1]["first_layer"] == layers[0]["last_layer"] + 1
    assert layers[1]["last_layer"] == 29  # SmolLM2-135M has 30 layers

    # The split model answers like the single node, token for token.
    before = (await at_lead.api("GET", "/api/status"))["body"]["fleet"]["lead"]["traffic"]
    split = await _chat(at_lead)
    _same_tokens(split, single)
    # The lead reads the engine's token count when the request is done (a moment later).
    status = (
        await wait_for(
            at_lead,
            "/api/status",
            lambda b: b["fleet"]["lead"]["traffic"]["tokens"] >= before["tokens"] + 32,
            timeout_s=10,
            what="the lead counts the split's tokens",
        )
    )["fleet"]["lead"]
    assert status["traffic"]["bytes_sent"] > before["bytes_sent"]
    assert status["traffic"]["bytes_received"] > before["bytes_received"]
    # One hidden state each way per token, and the graph of each step: not the logits
    # (the model's head stays on the lead), which alone would be 196 KB a token.
    assert 0 < status["traffic"]["bytes_per_token"] < 100_000

    # The worker counts the lead's work as its own (its room's heat).
    worker_status = (await at_worker.api("GET", "/api/status"))["body"]["fleet"]["worker"]
    assert worker_status["serving"] is True
    assert worker_status["lead"] == fleet["node_id"]
    assert worker_status["cpu_s"] > 0
    assert worker_status["bytes_received"] > 0

    # ggml's RPC server: on the worker's loopback, and nowhere else.
    rpc_host, _, rpc_port = worker_status["rpc_endpoint"].rpartition(":")
    assert rpc_host == "127.0.0.1"
    from_lead = await at_lead.call(
        {"op": "connect", "host": house.worker_host.address, "port": int(rpc_port)}
    )
    assert from_lead["connected"] is False, from_lead
    on_worker_lan = await at_worker.call(
        {"op": "connect", "host": house.worker_host.address, "port": int(rpc_port)}
    )
    assert on_worker_lan["connected"] is False, on_worker_lan
    # A key that was not paired is refused at the tunnel; the lead's own key is not.
    assert worker_status["refused"] == 0
    # A node that was never paired: its own fresh key, made as every node makes one.
    stranger_key = load_or_create(tmp_path / "stranger", "stranger")
    stranger = await at_lead.call(
        {"op": "tls", "host": house.worker_host.address, "port": TUNNEL_PORT,
         "cert": str(stranger_key.cert_path), "key": str(stranger_key.key_path)}
    )  # fmt: skip
    assert stranger["ok"] is False, stranger
    lead_dir = house.lead.data_dir / "fleet"
    paired = await at_lead.call(
        {"op": "tls", "host": house.worker_host.address, "port": TUNNEL_PORT,
         "cert": str(lead_dir / "node.crt"), "key": str(lead_dir / "node.key")}
    )  # fmt: skip
    assert paired["ok"] is True, paired
    refused = await wait_for(
        at_worker,
        "/api/fleet",
        lambda b: b["worker"]["refused"] >= 1,
        timeout_s=10,
        what="the worker counts the stranger as refused",
    )
    assert refused["worker"]["refused"] == 1  # the stranger; the paired lead was admitted
    assert "TLS handshake refused" in refused["worker"]["last_refusal"]

    tunnel = await at_lead.call(
        {"op": "connect", "host": house.worker_host.address, "port": TUNNEL_PORT}
    )
    assert tunnel["connected"] is True, tunnel  # the tunnel is what faces the network

    # A worker killed under a running request: the request fails within seconds.
    killed = await _lose_worker_under_a_request(house, house.worker.kill)
    print(f"killed worker noticed after {killed:.2f} s")
    assert killed < LOST_WITHIN_S, f"the killed worker took {killed:.1f} s to notice"

    # The lead serves the model alone (it fits), with the same greedy answer.
    alone = await wait_for(
        at_lead, "/api/fleet", _lead_state("local", ranges=1), what="the lead serves alone"
    )
    assert alone["lead"]["workers"][0]["state"] == "lost"
    _same_tokens(await _chat(at_lead), single)

    # The worker comes back (same data: same key, same pairing): the split returns.
    await house.worker.start()
    back = await wait_for(
        at_lead,
        "/api/fleet",
        lambda b: _lead_state("split", ranges=2)(b) and b["lead"]["recoveries"] >= 2,
        what="the split is restored",
    )
    assert back["lead"]["workers"][0]["node_id"] == worker_id["node_id"]
    _same_tokens(await _chat(at_lead), single)

    # The network to the worker is cut (its link down, the worker still running): the
    # tunnel's keepalive and user timeout notice within seconds too.
    cut = await _lose_worker_under_a_request(house, lambda: _link(house.worker_host, "down"))
    print(f"cut link noticed after {cut:.2f} s")
    assert cut < UNREACHABLE_WITHIN_S, f"the cut link took {cut:.1f} s to notice"
    await wait_for(
        at_lead, "/api/fleet", _lead_state("local", ranges=1), what="alone after the cut"
    )
    _link(house.worker_host, "up")
    await wait_for(
        at_lead,
        "/api/fleet",
        lambda b: _lead_state("split", ranges=2)(b) and b["lead"]["recoveries"] >= 4,
        what="the split is restored after the cut",
    )
    _same_tokens(await _chat(at_lead), single)


def _link(host: Host, state: str) -> float:
    subprocess.run(["ip", "-n", host.namespace, "link", "set", host.link, state], check=True)
    return time.monotonic()


async def _lose_worker_under_a_request(house: House, lose: Callable[[], float]) -> float:
    """Start a long streamed completion, lose the worker once tokens flow; returns the
    seconds until the stream ended with `fleet_worker_lost`."""
    streaming = await house.client(house.lead_host)
    await streaming.send_stream("/v1/completions", {
        "model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 1500,
        "temperature": 0, "stream": True,
    })  # fmt: skip
    first = await streaming.answer()
    assert "choices" in first.get("data", {}), first
    lost_at = lose()
    events = []
    while True:
        event = await streaming.answer(timeout_s=60)
        events.append(event)
        if event.get("done"):
            break
    after_s = time.monotonic() - lost_at
    errors = [
        e["data"]["error"]
        for e in events
        if isinstance(e.get("data"), dict) and "error" in e["data"]
    ]
    assert errors, events[-3:]
    assert errors[0]["code"] == "fleet_worker_lost", errors
    assert "kitchen" in errors[0]["message"]
    return after_s
