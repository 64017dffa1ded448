"""Closed-loop load on a node's /v2 infer route, and what it cost on both sides.

Each client sends one sample at a time (binary tensors) and waits for the answer. The
clients are a small keep-alive HTTP/1.1 client on asyncio streams: a prepared request,
the answer read by its Content-Length. aiohttp's client cost more CPU per request than
the node's own handling of it, and a load generator on the same cores as the node takes
every cycle it burns from the node it measures. CPU time is counted on both sides: the
node's from /proc, the clients' from this process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import json
import os
from pathlib import Path
import time
from typing import Any

import aiohttp
import numpy as np

TOKEN = "bench-token-0123456789abcdef"


@dataclass(frozen=True, slots=True)
class Cell:
    per_s: float
    p95_ms: float
    node_cpu_ms: float = 0.0
    """The node process's CPU time per inference (all its threads, kernels included)."""
    client_cpu_ms: float = 0.0
    """The clients' CPU time per inference (this process)."""
    cpu_ms: float = 0.0
    """In-process cells: CPU time per sample of the onnxruntime run."""


@dataclass(frozen=True, slots=True)
class Busy:
    """What the node's statistics say about one cell: its kernel's share of the time."""

    busy: float
    """Share of the wall time some batch was computing."""
    kernel_per_s: float
    """Samples per second while a batch was computing (the kernel's rate in the node)."""
    mean_batch: float


def p95(values: list[float]) -> float:
    if not values:  # nothing answered within the cell (a starved machine)
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def binary_request(sample: np.ndarray[Any, Any]) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(sample.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": sample.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Inference-Header-Content-Length": str(len(head)),
    }
    return head + sample.tobytes(), headers


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_request(base: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One prepared HTTP/1.1 request (keep-alive), ready to write as it is."""
    host = base.removeprefix("http://")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


async def raw_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send one request and read its whole answer; the HTTP status."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def node_cell(
    base: str,
    model: str,
    shape: tuple[int, ...],
    clients: int,
    seconds: float,
    *,
    node_pid: int,
    client: str = "raw",
) -> Cell:
    sample = np.random.default_rng(0).uniform(-1, 1, size=(1, *shape)).astype(np.float32)
    body, headers = binary_request(sample)
    path = f"/v2/models/{model}/infer"
    request = http_request(base, path, body, headers)
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    deadline = 0.0

    async def raw_client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status = await raw_exchange(reader, writer, request)
                if status != 200:
                    raise RuntimeError(f"{model}: HTTP {status}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    async def aiohttp_client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.post(base + path, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{model}: HTTP {response.status}")
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        node_cpu, client_cpu = process_cpu_s(node_pid), time.process_time()
        started = time.perf_counter()
        deadline = started + seconds
        if client == "raw":
            await asyncio.gather(*(raw_client() for _ in range(clients)))
        else:
            await asyncio.gather(*(aiohttp_client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
        node_cpu = process_cpu_s(node_pid) - node_cpu
        client_cpu = time.process_time() - client_cpu
    count = max(1, len(latencies))
    return Cell(
        per_s=len(latencies) / elapsed,
        p95_ms=p95(latencies) * 1000,
        node_cpu_ms=node_cpu * 1000 / count,
        client_cpu_ms=client_cpu * 1000 / count,
    )


async def model_stats(base: str, model: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/v2/models/{model}/stats", headers=headers) as response,
    ):
        [stats] = (await response.json())["model_stats"]
    return dict(stats)


def busy_between(before: dict[str, Any], after: dict[str, Any], seconds: float) -> Busy:
    samples = after["inference_count"] - before["inference_count"]
    batches = after["execution_count"] - before["execution_count"]
    compute_ns = (
        after["inference_stats"]["compute_infer"]["ns"]
        - before["inference_stats"]["compute_infer"]["ns"]
    )
    return Busy(
        busy=compute_ns / 1e9 / seconds,
        kernel_per_s=samples / max(compute_ns / 1e9, 1e-9),
        mean_batch=samples / max(1, batches),
    )
