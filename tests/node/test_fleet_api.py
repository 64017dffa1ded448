"""/api/fleet on a real in-process node: pairing, roles, and what each role runs.

Real parts: the node app on 127.0.0.1, its TLS keys, ggml's RPC server process, the
lead's engine process with the real SmolLM2 GGUF. Faked: the power sensor (the suite's
StaticHardware) and, in one test, the free memory the split plan reads (to make a
model that does not fit without its worker on any machine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import dataclasses
from pathlib import Path
import socket
import time
from typing import Any

import pytest

from heatcompute_node.app import create_app
from heatcompute_node.fleet import keys
from heatcompute_node.settings import Settings

from .conftest import MakeClient, NodeClient, StaticHardware, auth

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"{MODEL.name} not in models/")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, fleet_port=_free_port(), llm_threads=1, llm_slots=2)


def _peer(
    tmp_path: Path, node_id: str = "peer00000001", address: str | None = None
) -> dict[str, Any]:
    key = keys.load_or_create(tmp_path / node_id, node_id)
    return {
        "node_id": node_id,
        "name": "kitchen",
        "certificate": key.certificate,
        "address": address,
    }


async def _json(client: NodeClient, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await client.request(method, path, json=body, headers=auth())
    return response.status, await response.json()


async def _until(
    client: NodeClient, ready: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, body = await _json(client, "GET", "/api/fleet")
        if ready(body):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s; last {body}")


async def test_pairing_answers_this_nodes_certificate_and_survives_a_restart(
    socket_enabled: None,
    settings: Settings,
    hardware: StaticHardware,
    make_client: MakeClient,
    tmp_path: Path,
) -> None:
    client = await make_client(create_app(settings, hardware=hardware))
    status, fleet = await _json(client, "GET", "/api/fleet")
    assert status == 200
    assert fleet["role"] == "off"
    assert fleet["peers"] == []
    assert fleet["fingerprint"] == keys.fingerprint(fleet["certificate"])
    assert "PRIVATE" not in fleet["certificate"]

    peer = _peer(tmp_path, address="10.0.0.2:8766")
    status, answer = await _json(client, "POST", "/api/fleet/pairing", peer)
    assert status == 200
    assert answer["fingerprint"] == fleet["fingerprint"]
    assert answer["tunnel_port"] == settings.fleet_port
    await client.close()

    again = await make_client(create_app(settings, hardware=hardware))
    _, fleet_after = await _json(again, "GET", "/api/fleet")
    assert fleet_after["fingerprint"] == fleet["fingerprint"]
    assert fleet_after["peers"] == [
        {
            "node_id": peer["node_id"],
            "name": "kitchen",
            "address": "10.0.0.2:8766",
            "fingerprint": keys.fingerprint(peer["certificate"]),
        }
    ]
    status, deleted = await _json(again, "DELETE", f"/api/fleet/pairing/{peer['node_id']}")
    assert (status, deleted) == (200, {"node_id": peer["node_id"], "deleted": True})
    assert (await _json(again, "GET", "/api/fleet"))[1]["peers"] == []


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}, 400,
         "invalid_certificate"),
        ({"name": ""}, 400, "invalid_peer"),
        ({"address": "no-port"}, 400, "invalid_peer"),
        ({"address": "host:99999"}, 400, "invalid_peer"),
        ({"node_id": "../x"}, 400, "invalid_peer"),
        ({"password": "x"}, 400, "unknown_field"),
    ],
)  # fmt: skip
async def test_pairing_refuses_what_it_cannot_trust(
    client: NodeClient, tmp_path: Path, change: dict[str, Any], status: int, code: str
) -> None:
    got, body = await _json(client, "POST", "/api/fleet/pairing", {**_peer(tmp_path), **change})
    assert got == status, body
    assert body["error"]["code"] == code
    assert (await _json(client, "GET", "/api/fleet"))[1]["peers"] == []


async def test_pairing_with_itself_or_unknown_peers(client: NodeClient) -> None:
    _, fleet = await _json(client, "GET", "/api/fleet")
    own = {"node_id": fleet["node_id"], "name": "me", "certificate": fleet["certificate"]}
    status, body = await _json(client, "POST", "/api/fleet/pairing", own)
    assert (status, body["error"]["code"]) == (400, "invalid_peer")
    status, body = await _json(client, "DELETE", "/api/fleet/pairing/nobody")
    assert (status, body["error"]["code"]) == (404, "peer_not_found")
    response = await client.post("/api/fleet/pairing", data=b"x", headers={
        **auth(), "Content-Type": "text/plain"})  # fmt: skip
    assert response.status == 415


async def test_a_renewed_key_is_a_new_certificate(client: NodeClient) -> None:
    _, before = await _json(client, "GET", "/api/fleet")
    status, after = await _json(client, "POST", "/api/fleet/pairing", {"renew_key": True})
    assert status == 200
    assert after["fingerprint"] != before["fingerprint"]
    assert (await _json(client, "GET", "/api/fleet"))[1]["fingerprint"] == after["fingerprint"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"role": "boss"}, 400, "invalid_role"),
        ({"role": "worker", "model": "x"}, 400, "invalid_role"),
        ({"role": "lead", "model": "x"}, 400, "invalid_role"),
        ({"role": "lead", "model": "x", "workers": ["nobody"]}, 404, "peer_not_found"),
        ({"role": "lead", "workers": "nobody"}, 400, "invalid_role"),
    ],
)
async def test_roles_that_cannot_be_taken(
    client: NodeClient, body: dict[str, Any], status: int, code: str
) -> None:
    got, answer = await _json(client, "POST", "/api/fleet/role", body)
    assert got == status, answer
    assert answer["error"]["code"] == code
    assert (await _json(client, "GET", "/api/fleet"))[1]["role"] == "off"


async def test_a_lead_needs_a_model_it_has_and_a_worker_with_an_address(
    client: NodeClient, tmp_path: Path
) -> None:
    await _json(client, "POST", "/api/fleet/pairing", _peer(tmp_path, "noaddress001"))
    await _json(
        client, "POST", "/api/fleet/pairing", _peer(tmp_path, "kitchen00001", "127.0.0.1:9")
    )
    status, body = await _json(
        client,
        "POST",
        "/api/fleet/role",
        {"role": "lead", "model": "x", "workers": ["noaddress001"]},
    )
    assert (status, body["error"]["code"]) == (409, "worker_without_address")
    status, body = await _json(
        client,
        "POST",
        "/api/fleet/role",
        {"role": "lead", "model": "x", "workers": ["kitchen00001"]},
    )
    assert (status, body["error"]["code"]) == (404, "model_not_found")


async def test_a_worker_keeps_ggml_on_loopback_and_stops_with_its_role(
    client: NodeClient, settings: Settings
) -> None:
    status, fleet = await _json(client, "POST", "/api/fleet/role", {"role": "worker"})
    assert status == 200, fleet
    worker = fleet["worker"]
    host, _, port = worker["rpc_endpoint"].rpartition(":")
    assert host == "127.0.0.1"
    assert worker["tunnel"] == f"127.0.0.1:{settings.fleet_port}"
    _, tunnel = await asyncio.open_connection("127.0.0.1", settings.fleet_port)
    tunnel.close()
    status_body = await (await client.get("/api/status", headers=auth())).json()
    assert status_body["fleet"]["role"] == "worker"
    assert status_body["fleet"]["worker"]["serving"] is False

    status, fleet = await _json(client, "POST", "/api/fleet/role", {"role": "off"})
    assert (status, fleet["worker"]) == (200, None)
    for closed in (settings.fleet_port, int(port)):
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", closed)


@needs_model
async def test_a_lead_without_its_worker_serves_alone_where_the_model_fits(
    socket_enabled: None,
    settings: Settings,
    hardware: StaticHardware,
    make_client: MakeClient,
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(settings, models=(MODEL,), llm_context=1024)
    client = await make_client(create_app(settings, hardware=hardware))
    nobody_there = f"127.0.0.1:{_free_port()}"
    await _json(client, "POST", "/api/fleet/pairing", _peer(tmp_path, "kitchen00001", nobody_there))
    status, _ = await _json(client, "POST", "/api/fleet/role", {
        "role": "lead", "model": MODEL.stem, "workers": ["kitchen00001"]})  # fmt: skip
    assert status == 200
    fleet = await _until(client, lambda b: b["lead"]["state"] == "local", "serving alone")
    assert fleet["lead"]["workers"][0]["state"] == "lost"
    assert fleet["lead"]["layers"] == [
        {"node_id": fleet["node_id"], "name": settings.node_name, "first_layer": 0,
         "last_layer": 29, "layers": 30}
    ]  # fmt: skip
    status, answer = await _json(client, "POST", "/v1/chat/completions", {
        "model": MODEL.stem, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
        "temperature": 0})  # fmt: skip
    assert status == 200, answer
    assert answer["usage"]["completion_tokens"] == 4


@needs_model
async def test_a_model_that_does_not_fit_without_its_worker_is_unavailable(
    socket_enabled: None,
    settings: Settings,
    hardware: StaticHardware,
    make_client: MakeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lead with 1 MiB free: the 145 MB model needs its (unreachable) worker.
    monkeypatch.setattr("heatcompute_node.fleet.lead.available_bytes", lambda: 2**20)
    settings = dataclasses.replace(settings, models=(MODEL,))
    client = await make_client(create_app(settings, hardware=hardware))
    await _json(client, "POST", "/api/fleet/pairing",
                _peer(tmp_path, "kitchen00001", f"127.0.0.1:{_free_port()}"))  # fmt: skip
    await _json(client, "POST", "/api/fleet/role", {
        "role": "lead", "model": MODEL.stem, "workers": ["kitchen00001"]})  # fmt: skip
    fleet = await _until(client, lambda b: b["lead"]["state"] == "unavailable", "unavailable")
    assert "does not fit" in fleet["lead"]["error"]
    status, answer = await _json(client, "POST", "/v1/chat/completions", {
        "model": MODEL.stem, "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip
    assert status == 503
    assert answer["error"]["code"] == "model_unavailable"
    assert answer["error"]["type"] == "service_unavailable_error"
    assert "does not fit" in answer["error"]["message"]
    # Other models and the control plane go on.
    assert (await client.get("/api/status", headers=auth())).status == 200
