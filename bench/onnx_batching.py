"""ONNX dynamic batching: the node's batcher against no batching and against onnxruntime
in-process, in one run.

Throughput (inferences/s) and p95 latency at 1, 8, 32 and 64 concurrent clients, each
sending one sample at a time (closed loop, binary tensors over /v2), on rapidocr's
text-direction classifier and PP-OCRv6 recogniser, for

  (a) the node with dynamic batching, as shipped (the model's config in
      ``engines/onnx/defaults.py``; ``--instances`` replaces its instance_count),
  (b) the same node config with max_batch_size 1 (requests run one by one),
  (c) onnxruntime in this process at batch 1 (no server at all),
  (d) onnxruntime in this process at its best: the best batch size, run one batch at a
      time on every thread or one batch per thread, several at once (the kernels'
      ceiling on these threads, whichever way a server could run them),

and two floors under any node written in Python on aiohttp, at 64 clients:

  (e) aiohttp alone (``bench/http_floor.py``): the body read, a recorded answer sent;
  (f) the least dynamic batcher on aiohttp (``bench/batching_floor.py``): the request
      parsed, queued, computed in batches on long-lived threads, answered; nothing else.
      The best of a few layouts (instances, largest batch) is kept.

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
        [--client raw|aiohttp] [--instances N] [--baseline DIR]
    .venv/bin/python bench/onnx_batching.py --kernel-curve [--seconds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
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
sys.path[:0] = [str(ROOT), str(ROOT / "addon")]
from bench.onnx_load import (  # noqa: E402
    TOKEN,
    Busy,
    Cell,
    binary_request,
    busy_between,
    model_stats,
    node_cell,
    p95,
)
from heatcompute_node.engines.onnx.defaults import config_without_check_set  # noqa: E402
from scripts.onnx_models import SOURCES, package_file  # noqa: E402

CLIENTS = (1, 8, 32, 64)
FLOOR_BATCHES = (4, 8)
"""Largest batches (f) tries (the shipped preferred sizes of the classifier)."""
BATCHES = (1, 4, 8, 16, 32, 64)
"""Batch sizes onnxruntime runs in-process, for (c), (d) and --kernel-curve."""
MODELS = {
    "classifier": ("text-direction", (3, 48, 192)),
    "recogniser": ("text-recognition", (3, 48, 320)),
}


def configs(source_name: str, instances: int | None) -> dict[str, dict[str, Any]]:
    """(a) the model's shipped config (engines/onnx/defaults.py), as a user gets it;
    (b) the same with max_batch_size 1. Neither checks an int8 variant: float is timed."""
    shipped = config_without_check_set(source_name)
    if instances is not None:
        shipped["instance_count"] = instances
    batching = shipped["dynamic_batching"]
    unbatched = {
        **shipped,
        "max_batch_size": 1,
        "dynamic_batching": {
            key: value
            for key, value in batching.items()
            if key not in ("preferred_batch_size", "max_queue_delay_microseconds")
        },
    }
    return {"batched": shipped, "unbatched": unbatched}


def free_port() -> int:
    # The bench's own port range (18600-18699), first free one.
    for port in range(18600, 18700):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 18600-18699")


def repository(target: Path, instances: int | None) -> Path:
    for kind, (source_name, _) in MODELS.items():
        package, relative = SOURCES[source_name]
        for suffix, config in configs(source_name, instances).items():
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


def floor_process(port: int, answers: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.http_floor", "--port", str(port), "--answers", str(answers)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def start_floor(
    tmp: Path, node_base: str, kinds: list[str]
) -> tuple[str, subprocess.Popen[bytes]]:
    """(e) bench/http_floor.py, answering every request with the node's own answer."""
    answers: dict[str, list[str]] = {}
    async with aiohttp.ClientSession() as session:
        for kind in kinds:
            sample = np.zeros((1, *MODELS[kind][1]), dtype=np.float32)
            body, headers = binary_request(sample)
            url = f"{node_base}/v2/models/{kind}-batched/infer"
            async with session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
                size = response.headers["Inference-Header-Content-Length"]
            answers[f"{kind}-batched"] = [base64.b64encode(answer).decode(), size]
    path = tmp / "answers.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    port = free_port()
    process = floor_process(port, path)
    await wait_listening(port, process)
    return f"http://127.0.0.1:{port}", process


def floor_layouts(threads: int) -> list[tuple[int, int]]:
    """(f)'s layouts: one instance per thread (as the node runs) and two per thread (more
    batches at once than cores: one computes while another waits for the GIL)."""
    return [(instances, batch) for instances in (threads, 2 * threads) for batch in FLOOR_BATCHES]


def batching_floor_process(
    port: int, instances: int, batch: int, models: list[str]
) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "bench.batching_floor", "--port", str(port),
        "--instances", str(instances), "--max-batch", str(batch), *models,
    ]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def start_batching_floors(
    kinds: list[str], threads: int
) -> dict[tuple[int, int], tuple[str, subprocess.Popen[bytes]]]:
    """(f) bench/batching_floor.py, one process per layout, serving every model."""
    servers: dict[tuple[int, int], tuple[str, subprocess.Popen[bytes]]] = {}
    models = []
    for kind in kinds:
        package, relative = SOURCES[MODELS[kind][0]]
        models += ["--model", f"{kind}-batched={package_file(package, relative)}"]
    for instances, batch in floor_layouts(threads):
        port = free_port_after(servers)
        process = batching_floor_process(port, instances, batch, models)
        servers[(instances, batch)] = (f"http://127.0.0.1:{port}", process)
        await wait_listening(port, process)
    return servers


def free_port_after(servers: dict[Any, tuple[str, subprocess.Popen[bytes]]]) -> int:
    """A free port none of ``servers`` took (one may not be listening yet)."""
    taken = {int(base.rsplit(":", 1)[1]) for base, _ in servers.values()}
    for port in range(18600, 18700):
        with socket.socket() as probe:
            if port not in taken and probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 18600-18699")


async def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server on port {port} did not start")


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
    """onnxruntime on this process's threads: the floor (batch 1) and the ceiling.

    ``callers`` sessions-worth of work run at once, as a node with that many instances
    runs them: one session whose ``threads // callers`` intra-op threads each caller's
    run uses, called from ``callers`` Python threads (onnxruntime releases the GIL).
    """

    def __init__(self, kind: str, threads: int, callers: int = 1) -> None:
        import onnxruntime as ort

        source_name, self.shape = MODELS[kind]
        package, relative = SOURCES[source_name]
        self.callers = callers
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads // callers)
        options.inter_op_num_threads = 1
        # The node's session options (no spinning threads), so (c) and (d) measure the
        # same kernels the node runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(package_file(package, relative)), options, providers=["CPUExecutionProvider"]
        )

    @property
    def layout(self) -> str:
        return f"{self.callers} at once" if self.callers > 1 else "one at a time"

    def sweep(self, batches: tuple[int, ...], seconds: float, passes: int = 4) -> dict[int, Cell]:
        """Each batch size in turn, ``passes`` times over: a load that drifts while they
        are measured meets them all alike, so their ratios hold on a shared machine."""
        latencies: dict[int, list[float]] = {batch: [] for batch in batches}
        cpu = dict.fromkeys(batches, 0.0)
        wall = dict.fromkeys(batches, 0.0)
        feeds = {
            batch: np.random.default_rng(0)
            .uniform(-1, 1, size=(batch, *self.shape))
            .astype(np.float32)
            for batch in batches
        }
        for batch in batches:
            self.session.run(None, {"x": feeds[batch]})  # warm

        def caller(batch: int, deadline: float, times: list[float]) -> None:
            while True:  # at least one run per slice, however slow the batch
                started = time.perf_counter()
                self.session.run(None, {"x": feeds[batch]})
                times.append(time.perf_counter() - started)
                if started >= deadline:
                    break

        with ThreadPoolExecutor(max_workers=self.callers) as pool:
            for _ in range(passes):
                for batch in batches:
                    started_cpu, started = time.process_time(), time.perf_counter()
                    deadline = started + seconds / passes
                    parts: list[list[float]] = [[] for _ in range(self.callers)]
                    for done in [pool.submit(caller, batch, deadline, t) for t in parts]:
                        done.result()
                    wall[batch] += time.perf_counter() - started
                    cpu[batch] += time.process_time() - started_cpu
                    for times in parts:
                        latencies[batch].extend(times)
        return {
            batch: Cell(
                # Samples over the wall time: with callers at once, the calls overlap.
                per_s=batch * len(latencies[batch]) / wall[batch],
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
    floor_server: tuple[str, subprocess.Popen[bytes]],
    batching_floors: dict[tuple[int, int], tuple[str, subprocess.Popen[bytes]]],
    local: dict[str, dict[int, InProcess]],
    best_batches: dict[tuple[str, int], int],
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
                floor_base, floor_pid = floor_server[0], floor_server[1].pid
                cell = await node_cell(
                    floor_base,
                    f"{kind}-batched",
                    MODELS[kind][1],
                    clients,
                    args.seconds,
                    node_pid=floor_pid,
                    client=args.client,
                )
                key = (kind, "e", clients)
                results[key] = better(results.get(key), (cell, None))
            for (instances, batch), (base, server) in batching_floors.items():
                cell = await node_cell(
                    base,
                    f"{kind}-batched",
                    MODELS[kind][1],
                    64,
                    args.seconds,
                    node_pid=server.pid,
                    client=args.client,
                )
                key = (kind, f"f{instances}x{batch}", 64)
                results[key] = better(results.get(key), (cell, None))
            for callers, kernel in local[kind].items():
                floor, ceiling, batch = kernel.floor_and_ceiling(args.seconds * 2)
                best = results.get((kind, "d", callers))
                if best is None or ceiling.per_s > best[0].per_s:
                    # (c) and (d) from the same sweep: their ratio is the kernel ceiling.
                    results[(kind, "c", callers)] = (floor, None)
                    results[(kind, "d", callers)] = (ceiling, None)
                    best_batches[(kind, callers)] = batch
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
        help="instance_count of (a) and (b) instead of the shipped one: batches at once, "
        "sharing --threads",
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
        processes: list[subprocess.Popen[bytes]] = []
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
            floor_server = await start_floor(Path(tmp), nodes[""][0], kinds)
            processes.append(floor_server[1])
            batching_floors = await start_batching_floors(kinds, args.threads)
            processes += [server for _, server in batching_floors.values()]
            # The kernel alone, run one batch at a time on every thread and (with more
            # than one thread) one thread per batch, several at once: (d) is the better.
            layouts = sorted({1, args.threads})
            local = {kind: {n: InProcess(kind, args.threads, n) for n in layouts} for kind in kinds}
            best_batches: dict[tuple[str, int], int] = {}
            results = await run_rounds(
                args, nodes, floor_server, batching_floors, local, best_batches
            )
        finally:
            for process in [*(node for _, node in nodes.values()), *processes]:
                process.terminate()
                process.wait(timeout=30)

    load_after = os.getloadavg()
    print(
        f"onnxruntime threads: {args.threads}; {args.seconds} s per cell; best of "
        f"{args.rounds} interleaved rounds; {args.client} client; instances in the node: "
        f"{args.instances or 'as shipped'}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after ({os.cpu_count()} CPUs)"
    )
    for kind in kinds:
        shipped = configs(MODELS[kind][0], args.instances)["batched"]
        # The engine computes at most one batch per thread at once (engine.instances).
        instances = min(shipped.get("instance_count", 1), args.threads)
        report(
            kind,
            results,
            best_batches,
            instances,
            baseline=args.baseline is not None,
            threads=args.threads,
        )


def kernel_curve(kinds: list[str], threads: int, seconds: float) -> None:
    """What batching gives the kernel alone: the ceiling of any batcher in front of it."""
    print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs); {seconds} s per cell")
    print("| model | threads | batches at once | batch | samples/s | CPU ms per sample |")
    print("|---|---:|---:|---:|---:|---:|")
    layouts = sorted({(1, 1), (threads, 1), (threads, threads)})
    for kind in kinds:
        for count, callers in layouts:
            cells = InProcess(kind, count, callers).sweep(BATCHES, seconds)
            for batch, cell in cells.items():
                print(
                    f"| {kind} | {count} | {callers} | {batch} | {cell.per_s:.0f} "
                    f"| {cell.cpu_ms:.2f} |"
                )


def a64_cpu_own(a: Cell, floor: Cell, d: Cell) -> float:
    """The node's own CPU per inference: beyond the kernel's and aiohttp's floor."""
    return a.node_cpu_ms - d.cpu_ms - floor.node_cpu_ms


def report(
    kind: str,
    results: Results,
    best_batches: dict[tuple[str, int], int],
    instances: int,
    *,
    baseline: bool,
    threads: int,
) -> None:
    def cell(name: str, clients: int) -> Cell:
        return results[(kind, name, clients)][0]

    layouts = sorted(callers for (k, name, callers) in results if k == kind and name == "d")
    # (d) is the kernel's best over batch sizes and over the ways to run it on the threads;
    # (c) and the ceiling for (a)/(b) are the node's own way (one batch per instance).
    mine = instances if instances in layouts else 1
    d_callers = max(layouts, key=lambda n: cell("d", n).per_s)
    c, d = cell("c", mine), cell("d", d_callers)
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
    for callers in layouts:
        lc, ld = cell("c", callers), cell("d", callers)
        way = f"{callers} batches at once" if callers > 1 else "one batch at a time"
        print(
            f"in-process, {way}: (c) batch 1 {lc.per_s:.0f}/s (p95 {lc.p95_ms:.1f} ms per "
            f"call, {lc.cpu_ms:.2f} ms CPU per sample); best batch "
            f"({best_batches[(kind, callers)]}) {ld.per_s:.0f}/s ({ld.cpu_ms:.2f} ms CPU per "
            f"sample){'  <- (d)' if callers == d_callers else ''}"
        )
    e64 = cell("e", 64)
    floor_cpu = e64.node_cpu_ms + e64.client_cpu_ms
    print(
        "(e) aiohttp's floor (bench/http_floor.py: the body read, the node's answer sent, "
        "nothing else), by clients: "
        + ", ".join(
            f"{n}: {cell('e', n).per_s:.0f}/s, {cell('e', n).node_cpu_ms:.2f}+"
            f"{cell('e', n).client_cpu_ms:.2f} ms CPU"
            for n in CLIENTS
        )
    )
    print(
        f"a node on aiohttp at 64 clients, with nothing of its own beyond the floor: "
        f"(a)/(d) at most x{d.cpu_ms / (d.cpu_ms + floor_cpu):.2f} by CPU per inference "
        f"(kernel {d.cpu_ms:.2f} + floor {floor_cpu:.2f} ms); the node's own part at 64 "
        f"clients: {a64_cpu_own(cell('a', 64), e64, d):.2f} ms"
    )
    floors = {layout: cell(f"f{layout[0]}x{layout[1]}", 64) for layout in floor_layouts(threads)}
    best_layout = max(floors, key=lambda layout: floors[layout].per_s)
    f = floors[best_layout]
    print(
        "(f) the least dynamic batcher on aiohttp (bench/batching_floor.py) at 64 clients, "
        "by instances x largest batch: "
        + ", ".join(
            f"{i}x{b}: {floors[(i, b)].per_s:.0f}/s, p95 {floors[(i, b)].p95_ms:.0f} ms, "
            f"{floors[(i, b)].node_cpu_ms:.2f}+{floors[(i, b)].client_cpu_ms:.2f} ms CPU"
            for i, b in floors
        )
    )
    print(
        f"the most a node in Python on aiohttp reached here, (f)/(d) = x{f.per_s / d.per_s:.2f} "
        f"({best_layout[0]} instances, batches of up to {best_layout[1]}; x"
        f"{d.cpu_ms / (f.node_cpu_ms + f.client_cpu_ms):.2f} by CPU per inference); "
        f"the node reaches x{cell('a', 64).per_s / f.per_s:.2f} of it"
    )
    print(
        f"kernel ceiling for (a)/(b) run as the node runs it ({mine} batch(es) at once): "
        f"batching makes the kernel x{cell('d', mine).per_s / c.per_s:.2f} faster in "
        f"samples/s and x{c.cpu_ms / cell('d', mine).cpu_ms:.2f} cheaper in CPU per sample; "
        "a node without overhead would reach that ratio, no more"
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
