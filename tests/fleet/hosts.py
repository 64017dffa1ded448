"""Nodes and clients inside the test's namespaces (netns.py)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import signal
import sys
import time
from typing import Any

from .netns import Host

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
MODEL_ID = MODEL.stem
TOKEN = "fleet-test-token"
API_PORT = 8765
TUNNEL_PORT = 8766


class NsClient:
    """ns_client.py in a namespace: the test's hands there."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, host: Host) -> NsClient:
        process = await asyncio.create_subprocess_exec(
            *host.command(sys.executable, str(Path(__file__).with_name("ns_client.py"))),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _order(self, order: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(order).encode() + b"\n")
        await self.process.stdin.drain()

    async def answer(self, timeout_s: float = 180.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        if not line:
            raise AssertionError("the namespace client ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, order: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            await self._order(order)
            return await self.answer()

    async def api(
        self, method: str, path: str, body: Any = None, *, port: int = API_PORT
    ) -> dict[str, Any]:
        return await self.call(
            {
                "op": "http",
                "method": method,
                "url": f"http://127.0.0.1:{port}{path}",
                "body": body,
                "token": TOKEN,
            }
        )

    async def send_stream(self, path: str, body: Any) -> None:
        """Start a streaming request; read its events with `answer()`."""
        await self._order(
            {"op": "stream", "url": f"http://127.0.0.1:{API_PORT}{path}", "body": body,
             "token": TOKEN}
        )  # fmt: skip

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


class NodeProcess:
    """`python -m heatcompute_node` in a namespace, as a user runs it."""

    def __init__(self, host: Host, data_dir: Path, name: str, *extra: str) -> None:
        self.host, self.data_dir, self.name, self.extra = host, data_dir, name, extra
        self.process: asyncio.subprocess.Process | None = None
        self.log = data_dir.parent / f"{name}.log"

    async def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HEATCOMPUTE_")},
            "HEATCOMPUTE_TOKEN": TOKEN,
            "PYTHONPATH": str(ROOT / "addon"),
        }
        argv = [
            sys.executable, "-m", "heatcompute_node",
            "--host", "0.0.0.0", "--port", str(API_PORT), "--fleet-port", str(TUNNEL_PORT),
            "--data-dir", str(self.data_dir), "--node-name", self.name,
            "--hardware", "twin", "--no-zeroconf", "--model", str(MODEL),
            # Two nodes and their engine processes share this machine's cores.
            "--llm-threads", "1", "--llm-slots", "4", "--llm-context", "2048",
            "--llm-prompt-cache-mb", "0", "--log-level", "INFO", *self.extra,
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.host.command(*argv), env=env, stdout=log, stderr=log
            )

    def kill(self) -> float:
        """SIGKILL, as a crash or a pulled plug would; returns when (monotonic)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        return time.monotonic()

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
        await self.process.wait()


async def wait_for(
    client: NsClient, path: str, ready: Any, *, timeout_s: float = 120.0, what: str
) -> dict[str, Any]:
    """Poll a GET until ``ready(body)``; bounded, and says what it last saw."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = await client.api("GET", path)
        if last.get("status") == 200 and ready(last["body"]):
            return dict(last["body"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s} s; last answer {last}")


async def pair(lead: NsClient, worker: NsClient, worker_address: str) -> dict[str, Any]:
    """What Home Assistant does: each node gets the other's certificate, then roles."""
    lead_id = (await lead.api("GET", "/api/fleet"))["body"]
    worker_id = (await worker.api("GET", "/api/fleet"))["body"]
    paired = await lead.api(
        "POST",
        "/api/fleet/pairing",
        {
            "node_id": worker_id["node_id"],
            "name": worker_id["name"],
            "certificate": worker_id["certificate"],
            "address": f"{worker_address}:{worker_id['tunnel_port']}",
        },
    )
    assert paired["status"] == 200, paired
    assert paired["body"]["fingerprint"] == lead_id["fingerprint"]
    paired = await worker.api(
        "POST",
        "/api/fleet/pairing",
        {
            "node_id": lead_id["node_id"],
            "name": lead_id["name"],
            "certificate": lead_id["certificate"],
        },
    )
    assert paired["status"] == 200, paired
    role = await lead.api(
        "POST",
        "/api/fleet/role",
        {"role": "lead", "model": MODEL_ID, "workers": [worker_id["node_id"]]},
    )
    assert role["status"] == 200, role
    return dict(worker_id)
