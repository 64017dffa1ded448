"""ONNX dynamic batching: the node's batcher against no batching and against onnxruntime
in-process, in one run.

Throughput (inferences/s) and p95 latency at 1, 8, 32 and 64 concurrent clients, each
sending one sample at a time (closed loop, binary tensors over /v2), on rapidocr's
text-direction classifier and PP-OCRv6 recogniser, for

  (a) the node with dynamic batching (max_batch_size 64, preferred 16/32/64),
  (b) the node with max_batch_size 1 (requests run one by one),
  (c) onnxruntime in this process at batch 1 (no server at all),
  (d) onnxruntime in this process at its best batch size (the kernels' ceiling).

(a) and (b) are one node process (two model folders each); the client runs in this
process. Every cell is measured in interleaved rounds (best of ``--rounds``) so that a
busy neighbour slows all of them alike. Goals: (a) >= 3x (b) at 64 clients with a p95
no worse than (b)'s, and (a) >= 0.7x (d).

    .venv/bin/python bench/onnx_batching.py [--seconds 3] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.onnx_models import SOURCES, package_file  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
CLIENTS = (1, 8, 32, 64)
MODELS = {
    "classifier": ("text-direction", (3, 48, 192)),
    "recogniser": ("text-recognition", (3, 48, 320)),
}
BATCHED = {
    "max_batch_size": 64,
    "dynamic_batching": {
        "preferred_batch_size": [16, 32, 64],
        "max_queue_delay_microseconds": 2000,
        "default_queue_policy": {"max_queue_size": 1024},
    },
}
UNBATCHED = {
    "max_batch_size": 1,
    "dynamic_batching": {"default_queue_policy": {"max_queue_size": 1024}},
}


@dataclass(frozen=True, slots=True)
class Cell:
    per_s: float
    p95_ms: float


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def free_port() -> int:
    # The bench's own port range (18600-18699), first free one.
    for port in range(18600, 18700):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 18600-18699")


def repository(target: Path) -> Path:
    for kind, (source_name, _) in MODELS.items():
        package, relative = SOURCES[source_name]
        for suffix, config in (("batched", BATCHED), ("unbatched", UNBATCHED)):
            folder = target / f"{kind}-{suffix}"
            (folder / "1").mkdir(parents=True)
            shutil.copyfile(package_file(package, relative), folder / "1" / "model.onnx")
            (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def start_node(repo: Path, port: int, data_dir: Path, threads: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "addon"), "HEATCOMPUTE_TOKEN": TOKEN}
    cmd = [
        sys.executable, "-m", "heatcompute_node", "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir), "--hardware", "twin", "--no-zeroconf",
        "--onnx-repository", str(repo), "--llm-threads", str(threads), "--log-level", "WARNING",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_ready(base: str, process: subprocess.Popen[bytes], names: list[str]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError("the node exited")
            try:
                ready = 0
                for name in names:
                    async with session.get(f"{base}/v2/models/{name}/ready", headers=headers) as r:
                        ready += r.status == 200
                if ready == len(names):
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the node did not get ready")


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


async def node_cell(
    base: str, model: str, shape: tuple[int, ...], clients: int, seconds: float
) -> Cell:
    sample = np.random.default_rng(0).uniform(-1, 1, size=(1, *shape)).astype(np.float32)
    body, headers = binary_request(sample)
    url = f"{base}/v2/models/{model}/infer"
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{model}: HTTP {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return Cell(per_s=len(latencies) / elapsed, p95_ms=p95(latencies) * 1000)


async def mean_batch(base: str, model: str) -> float:
    """Samples per batch the node ran for ``model`` (its Triton statistics)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/v2/models/{model}/stats", headers=headers) as response,
    ):
        [stats] = (await response.json())["model_stats"]
    return float(stats["inference_count"]) / max(1, int(stats["execution_count"]))


class InProcess:
    """onnxruntime on this process's threads: the floor (batch 1) and the ceiling."""

    def __init__(self, kind: str, threads: int) -> None:
        import onnxruntime as ort

        source_name, self.shape = MODELS[kind]
        package, relative = SOURCES[source_name]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The node's session options (no spinning threads), so (c) and (d) measure the
        # same kernels the node runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(package_file(package, relative)), options, providers=["CPUExecutionProvider"]
        )
        self.best_batch = 1

    def cell(self, batch: int, seconds: float) -> Cell:
        x = np.random.default_rng(0).uniform(-1, 1, size=(batch, *self.shape)).astype(np.float32)
        self.session.run(None, {"x": x})
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            self.session.run(None, {"x": x})
            latencies.append(time.perf_counter() - started)
        return Cell(per_s=batch * len(latencies) / sum(latencies), p95_ms=p95(latencies) * 1000)

    def best(self, seconds: float) -> Cell:
        cells = {batch: self.cell(batch, seconds) for batch in (8, 16, 32, 64)}
        self.best_batch = max(cells, key=lambda b: cells[b].per_s)
        return cells[self.best_batch]


def better(old: Cell | None, new: Cell) -> Cell:
    return new if old is None or new.per_s > old.per_s else old


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="classifier,recogniser")
    args = parser.parse_args()
    kinds = args.models.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        repo = repository(Path(tmp) / "repo")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        node = start_node(repo, port, Path(tmp) / "data", args.threads)
        try:
            await wait_ready(
                base, node, [f"{k}-{s}" for k in kinds for s in ("batched", "unbatched")]
            )
            local = {kind: InProcess(kind, args.threads) for kind in kinds}
            results: dict[tuple[str, str, int], Cell] = {}
            for round_no in range(args.rounds):
                for kind in kinds:
                    shape = MODELS[kind][1]
                    for clients in CLIENTS:
                        for name, suffix in (("a", "batched"), ("b", "unbatched")):
                            cell = await node_cell(
                                base, f"{kind}-{suffix}", shape, clients, args.seconds
                            )
                            results[(kind, name, clients)] = better(
                                results.get((kind, name, clients)), cell
                            )
                    results[(kind, "c", 1)] = better(
                        results.get((kind, "c", 1)), local[kind].cell(1, args.seconds)
                    )
                    results[(kind, "d", 0)] = better(
                        results.get((kind, "d", 0)), local[kind].best(args.seconds / 2)
                    )
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
            batch_sizes = {kind: await mean_batch(base, f"{kind}-batched") for kind in kinds}
        finally:
            node.terminate()
            node.wait(timeout=30)

    print(
        f"onnxruntime threads: {args.threads}; {args.seconds} s per cell; "
        f"best of {args.rounds} interleaved rounds"
    )
    for kind in kinds:
        c, d = results[(kind, "c", 1)], results[(kind, "d", 0)]
        print(f"\n{kind} ({MODELS[kind][0]}, x[N,{','.join(map(str, MODELS[kind][1]))}])")
        print("| clients | (a) batched /s | p95 ms | (b) max_batch 1 /s | p95 ms |", end="")
        print(" (a)/(b) | (a)/(d) |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for clients in CLIENTS:
            a, b = results[(kind, "a", clients)], results[(kind, "b", clients)]
            print(
                f"| {clients} | {a.per_s:.0f} | {a.p95_ms:.0f} | {b.per_s:.0f} | {b.p95_ms:.0f} | "
                f"x{a.per_s / b.per_s:.2f} | x{a.per_s / d.per_s:.2f} |"
            )
        print(f"(a)'s mean batch size over the run: {batch_sizes[kind]:.1f}")
        print(f"(c) in-process batch 1: {c.per_s:.0f}/s (p95 {c.p95_ms:.1f} ms per call)")
        print(
            f"(d) in-process best batch ({local[kind].best_batch}): {d.per_s:.0f}/s "
            f"(x{d.per_s / c.per_s:.2f} of batch 1)"
        )
        a64, b64 = results[(kind, "a", 64)], results[(kind, "b", 64)]
        print(
            f"goals at 64 clients: (a)/(b) x{a64.per_s / b64.per_s:.2f} (>= 3: "
            f"{'met' if a64.per_s >= 3 * b64.per_s else 'not met'}), p95 {a64.p95_ms:.0f} vs "
            f"{b64.p95_ms:.0f} ms ({'met' if a64.p95_ms <= b64.p95_ms else 'not met'}); "
            f"(a)/(d) x{a64.per_s / d.per_s:.2f} "
            f"(>= 0.7: {'met' if a64.per_s >= 0.7 * d.per_s else 'not met'})"
        )


if __name__ == "__main__":
    asyncio.run(main())
