"""ONNX dynamic batching: the node's batcher against no batching and against onnxruntime
in-process, in one run.

Throughput (inferences/s) and p95 latency at 1, 8, 32 and 64 concurrent clients, each
sending one sample at a time (closed loop, binary tensors over /v2), on rapidocr's
text-direction classifier and PP-OCRv6 recogniser, for

  (a) the node with dynamic batching (max_batch_size 64, preferred 16/32/64),
  (b) the node with max_batch_size 1 (requests run one by one),
  (c) onnxruntime in this process at batch 1 (no server at all),
  (d) onnxruntime in this process at its best batch size (the kernels' ceiling).

(a) and (b) are one node process (two model folders each); the clients run in this
process, on the same cores (``bench/onnx_load.py``: a light keep-alive client, or
aiohttp's with ``--client aiohttp``). CPU time is measured on both sides, so a cell says
what a request cost, not only how long it took on a machine that may be shared.

``--baseline DIR`` starts a second node from another checkout's ``addon/`` folder (e.g.
``git archive <commit> addon | tar -x -C DIR``) and measures its (a) and (b) in the same
interleaved rounds: before/after figures from one run.

Every cell is measured in interleaved rounds (best of ``--rounds``) so that a busy
neighbour slows all of them alike. Goals: (a) >= 3x (b) at 64 clients with a p95 no
worse than (b)'s, and (a) >= 0.7x (d). The first needs the kernel itself to run x3
faster per sample in batches: (d)/(c), the ceiling, is printed beside it. Ratios are
given in throughput and in CPU per inference (node + client against the kernel's own):
the second holds when neighbours take the cores, the first only on a quiet machine.

    .venv/bin/python bench/onnx_batching.py [--seconds 3] [--rounds 2] [--threads 2]
        [--client raw|aiohttp] [--instances 1] [--baseline DIR]
    .venv/bin/python bench/onnx_batching.py --kernel-curve [--seconds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.onnx_load import (  # noqa: E402
    TOKEN,
    Busy,
    Cell,
    busy_between,
    model_stats,
    node_cell,
    p95,
)
from scripts.onnx_models import SOURCES, package_file  # noqa: E402

CLIENTS = (1, 8, 32, 64)
BATCHES = (1, 4, 8, 16, 32, 64)
"""Batch sizes onnxruntime runs in-process, for (c), (d) and --kernel-curve."""
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


def free_port() -> int:
    # The bench's own port range (18600-18699), first free one.
    for port in range(18600, 18700):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 18600-18699")


def repository(target: Path, instances: int = 1) -> Path:
    for kind, (source_name, _) in MODELS.items():
        package, relative = SOURCES[source_name]
        for suffix, base in (("batched", BATCHED), ("unbatched", UNBATCHED)):
            config = {**base, "instance_count": instances}
            folder = target / f"{kind}-{suffix}"
            (folder / "1").mkdir(parents=True)
            shutil.copyfile(package_file(package, relative), folder / "1" / "model.onnx")
            (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def start_node(
    repo: Path, port: int, data_dir: Path, threads: int, addon: Path = ROOT / "addon"
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(addon), "HEATCOMPUTE_TOKEN": TOKEN}
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

    def sweep(self, batches: tuple[int, ...], seconds: float, passes: int = 4) -> dict[int, Cell]:
        """Each batch size in turn, ``passes`` times over: a load that drifts while they
        are measured meets them all alike, so their ratios hold on a shared machine."""
        latencies: dict[int, list[float]] = {batch: [] for batch in batches}
        cpu = dict.fromkeys(batches, 0.0)
        feeds = {
            batch: np.random.default_rng(0)
            .uniform(-1, 1, size=(batch, *self.shape))
            .astype(np.float32)
            for batch in batches
        }
        for batch in batches:
            self.session.run(None, {"x": feeds[batch]})  # warm
        for _ in range(passes):
            for batch in batches:
                started_cpu = time.process_time()
                deadline = time.perf_counter() + seconds / passes
                while True:  # at least one run per slice, however slow the batch
                    started = time.perf_counter()
                    self.session.run(None, {"x": feeds[batch]})
                    latencies[batch].append(time.perf_counter() - started)
                    if started >= deadline:
                        break
                cpu[batch] += time.process_time() - started_cpu
        return {
            batch: Cell(
                per_s=batch * len(latencies[batch]) / sum(latencies[batch]),
                p95_ms=p95(latencies[batch]) * 1000,
                cpu_ms=cpu[batch] * 1000 / (batch * len(latencies[batch])),
            )
            for batch in batches
        }

    def floor_and_ceiling(self, seconds: float) -> tuple[Cell, Cell, int]:
        """(c) batch 1 and (d) the best batch, from one interleaved sweep."""
        cells = self.sweep(BATCHES, seconds)
        best = max(cells, key=lambda b: cells[b].per_s)
        return cells[1], cells[best], best


def better[T](old: tuple[Cell, T] | None, new: tuple[Cell, T]) -> tuple[Cell, T]:
    return new if old is None or new[0].per_s > old[0].per_s else old


async def measure(
    base: str,
    name: str,
    kind: str,
    clients: int,
    args: argparse.Namespace,
    node_pid: int,
) -> tuple[Cell, Busy | None]:
    before = await model_stats(base, name)
    started = time.perf_counter()
    cell = await node_cell(
        base, name, MODELS[kind][1], clients, args.seconds, node_pid=node_pid, client=args.client
    )
    busy = busy_between(before, await model_stats(base, name), time.perf_counter() - started)
    return cell, busy


type Results = dict[tuple[str, str, int], tuple[Cell, Busy | None]]


async def run_rounds(
    args: argparse.Namespace,
    nodes: dict[str, tuple[str, subprocess.Popen[bytes]]],
    local: dict[str, InProcess],
    best_batches: dict[str, int],
) -> Results:
    """Every cell once per round, in the same order; the best of the rounds."""
    results: Results = {}
    for round_no in range(args.rounds):
        for kind in args.models.split(","):
            for clients in CLIENTS:
                for name, suffix in (("a", "batched"), ("b", "unbatched")):
                    for tag, (base, node) in nodes.items():
                        key = (kind, name + tag, clients)
                        measured = await measure(
                            base, f"{kind}-{suffix}", kind, clients, args, node.pid
                        )
                        results[key] = better(results.get(key), measured)
            floor, ceiling, batch = local[kind].floor_and_ceiling(args.seconds * 2)
            if (kind, "d", 0) not in results or ceiling.per_s > results[(kind, "d", 0)][0].per_s:
                # (c) and (d) from the same sweep: their ratio is the kernel ceiling.
                results[(kind, "c", 1)] = (floor, None)
                results[(kind, "d", 0)] = (ceiling, None)
                best_batches[kind] = batch
        print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="classifier,recogniser")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="instance_count of (a) and (b): batches at once, sharing --threads",
    )
    parser.add_argument(
        "--baseline", type=Path, help="another checkout's addon/ folder, measured beside"
    )
    parser.add_argument(
        "--kernel-curve",
        action="store_true",
        help="only onnxruntime in-process: samples/s and CPU per sample by batch size",
    )
    args = parser.parse_args()
    kinds = args.models.split(",")
    if args.kernel_curve:
        kernel_curve(kinds, args.threads, args.seconds)
        return
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        repo = repository(Path(tmp) / "repo", args.instances)
        nodes: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
        try:
            addons = {"": ROOT / "addon"}
            if args.baseline is not None:
                addons["0"] = args.baseline.resolve()
            for tag, addon in addons.items():
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                node = start_node(repo, port, Path(tmp) / f"data{tag}", args.threads, addon)
                nodes[tag] = (base, node)
                await wait_ready(
                    base, node, [f"{k}-{s}" for k in kinds for s in ("batched", "unbatched")]
                )
            local = {kind: InProcess(kind, args.threads) for kind in kinds}
            best_batches: dict[str, int] = {}
            results = await run_rounds(args, nodes, local, best_batches)
        finally:
            for _, node in nodes.values():
                node.terminate()
                node.wait(timeout=30)

    load_after = os.getloadavg()
    print(
        f"onnxruntime threads: {args.threads}; {args.seconds} s per cell; best of "
        f"{args.rounds} interleaved rounds; {args.client} client; {args.instances} "
        f"instance(s) in the node; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)"
    )
    for kind in kinds:
        report(kind, results, best_batches[kind], baseline=args.baseline is not None)


def kernel_curve(kinds: list[str], threads: int, seconds: float) -> None:
    """What batching gives the kernel alone: the ceiling of any batcher in front of it."""
    print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs); {seconds} s per cell")
    print("| model | threads | batch | samples/s | CPU ms per sample |")
    print("|---|---:|---:|---:|---:|")
    for kind in kinds:
        for count in sorted({1, threads}):
            for batch, cell in InProcess(kind, count).sweep(BATCHES, seconds).items():
                print(f"| {kind} | {count} | {batch} | {cell.per_s:.0f} | {cell.cpu_ms:.2f} |")


def report(kind: str, results: Results, best_batch: int, *, baseline: bool) -> None:
    def cell(name: str, clients: int) -> Cell:
        return results[(kind, name, clients)][0]

    c, d = cell("c", 1), cell("d", 0)
    print(f"\n{kind} ({MODELS[kind][0]}, x[N,{','.join(map(str, MODELS[kind][1]))}])")
    print(
        "| clients | (a) batched /s | p95 ms | CPU ms node+client | (b) max_batch 1 /s "
        "| p95 ms | CPU ms node+client | (a)/(b) | (a)/(d) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for clients in CLIENTS:
        a, b = cell("a", clients), cell("b", clients)
        print(
            f"| {clients} | {a.per_s:.0f} | {a.p95_ms:.0f} | "
            f"{a.node_cpu_ms:.2f}+{a.client_cpu_ms:.2f} | {b.per_s:.0f} | {b.p95_ms:.0f} | "
            f"{b.node_cpu_ms:.2f}+{b.client_cpu_ms:.2f} | x{a.per_s / b.per_s:.2f} | "
            f"x{a.per_s / d.per_s:.2f} |"
        )
    if baseline:
        print("\nthe baseline node (--baseline), same rounds:")
        print(
            "| clients | (a) before /s | p95 ms | CPU ms node "
            "| (b) before /s | p95 ms | CPU ms node |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for clients in CLIENTS:
            a0, b0 = cell("a0", clients), cell("b0", clients)
            print(
                f"| {clients} | {a0.per_s:.0f} | {a0.p95_ms:.0f} | {a0.node_cpu_ms:.2f} | "
                f"{b0.per_s:.0f} | {b0.p95_ms:.0f} | {b0.node_cpu_ms:.2f} |"
            )
    for name in ("a", "b", "a0", "b0"):
        busy = results.get((kind, name, 64), (None, None))[1]
        if busy is not None:
            print(
                f"({name}) at 64 clients, from the node's statistics: a batch computing "
                f"{busy.busy:.0%} of the time, {busy.kernel_per_s:.0f} samples/s while it "
                f"did, mean batch {busy.mean_batch:.1f}"
            )
    print(
        f"(c) in-process batch 1: {c.per_s:.0f}/s (p95 {c.p95_ms:.1f} ms per call, "
        f"{c.cpu_ms:.2f} ms CPU per sample)"
    )
    print(
        f"(d) in-process best batch ({best_batch}): {d.per_s:.0f}/s "
        f"({d.cpu_ms:.2f} ms CPU per sample)"
    )
    print(
        f"kernel ceiling for (a)/(b): batching makes the kernel x{d.per_s / c.per_s:.2f} "
        f"faster in samples/s and x{c.cpu_ms / d.cpu_ms:.2f} cheaper in CPU per sample "
        "((d)/(c)); a node without overhead would reach that ratio, no more"
    )
    a64, b64 = cell("a", 64), cell("b", 64)
    a64_cpu = a64.node_cpu_ms + a64.client_cpu_ms
    b64_cpu = b64.node_cpu_ms + b64.client_cpu_ms
    print(
        f"goals at 64 clients: (a)/(b) x{a64.per_s / b64.per_s:.2f} (>= 3: "
        f"{'met' if a64.per_s >= 3 * b64.per_s else 'not met'}; by CPU per inference "
        f"x{b64_cpu / a64_cpu:.2f}), p95 {a64.p95_ms:.0f} vs {b64.p95_ms:.0f} ms "
        f"({'met' if a64.p95_ms <= b64.p95_ms else 'not met'}); (a)/(d) "
        f"x{a64.per_s / d.per_s:.2f} (>= 0.7: "
        f"{'met' if a64.per_s >= 0.7 * d.per_s else 'not met'}; by CPU per inference "
        f"x{d.cpu_ms / a64_cpu:.2f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
