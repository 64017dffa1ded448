"""One model split over two nodes vs the same model on one node, on this machine.

Two real nodes (`python -m heatcompute_node`) in two network namespaces joined by a
veth pair (tests/fleet/netns.py; needs root), the real SmolLM2-135M Q8_0 GGUF: the lead
holds the first layers, the worker the rest, through llama.cpp's RPC backend and the
nodes' mutual-TLS tunnel. The baseline, in the same run and interleaved round by round,
is the worker node serving the whole model itself. Both with the same threads.

Measured:
- generation tokens/s: one request at a time, and `--concurrency` requests at once
  (continuous batching in both);
- bytes through the tunnel per generated token (both directions; the weights sent
  once at load are not counted);
- recovery: a worker killed (SIGKILL) -> the lead serves alone again; the worker back
  -> the split restored.

    .venv/bin/python bench/fleet_split.py --rounds 3 --tokens 64 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fleet.hosts import (  # noqa: E402
    MODEL_ID,
    NodeProcess,
    NsClient,
    pair,
    wait_for,
)
from tests.fleet.netns import two_hosts, unavailable_reason  # noqa: E402

PROMPT = "Write a long story about a cat who lives in a lighthouse by the sea."


def _split_ready(recoveries: int) -> Any:
    def ready(body: dict[str, Any]) -> bool:
        lead = body.get("lead") or {}
        return lead.get("state") == "split" and lead.get("recoveries", 0) >= recoveries

    return ready


async def _generate(clients: list[NsClient], tokens: int) -> tuple[float, int]:
    """`len(clients)` requests at once; (wall seconds, completion tokens)."""
    body = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "temperature": 0,
    }
    started = time.perf_counter()
    answers = await asyncio.gather(*(c.api("POST", "/v1/chat/completions", body) for c in clients))
    wall = time.perf_counter() - started
    for answer in answers:
        if answer["status"] != 200:
            raise SystemExit(f"a request failed: {answer}")
    return wall, sum(a["body"]["usage"]["completion_tokens"] for a in answers)


async def _traffic(client: NsClient) -> int:
    status = (await client.api("GET", "/api/status"))["body"]["fleet"]["lead"]["traffic"]
    return int(status["bytes_sent"]) + int(status["bytes_received"])


async def run(rounds: int, tokens: int, concurrency: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, two_hosts() as (lead_host, worker_host):
        extra = ("--llm-threads", str(threads), "--log-level", "WARNING")
        lead = NodeProcess(lead_host, Path(tmp) / "lead", "living-room", *extra)
        worker = NodeProcess(worker_host, Path(tmp) / "worker", "kitchen", "--fleet-worker", *extra)
        clients: list[NsClient] = []
        try:
            await worker.start()
            await lead.start()
            at_lead = [await NsClient.start(lead_host) for _ in range(concurrency)]
            at_worker = [await NsClient.start(worker_host) for _ in range(concurrency)]
            clients = at_lead + at_worker

            def healthy(b: Any) -> bool:
                return isinstance(b, dict) and b.get("status") == "ok"

            await wait_for(at_worker[0], "/health", healthy, what="worker up")
            await wait_for(at_lead[0], "/health", healthy, what="lead up")
            await pair(at_lead[0], at_worker[0], worker_host.address)
            fleet = await wait_for(at_lead[0], "/api/fleet", _split_ready(0), what="split")
            ranges = ", ".join(
                f"{r['name']} {r['first_layer']}-{r['last_layer']}" for r in fleet["lead"]["layers"]
            )
            print(f"split: {ranges}; {threads} threads per node; {tokens} tokens per request")
            await _generate(at_worker[:1], 8)  # warm both up
            await _generate(at_lead[:1], 8)

            rates: dict[str, list[float]] = {}
            moved, generated = 0, 0
            for _ in range(rounds):
                for width in sorted({1, concurrency}):
                    wall, n = await _generate(at_worker[:width], tokens)
                    rates.setdefault(f"one node, {width} at once", []).append(n / wall)
                    before = await _traffic(at_lead[0])
                    wall, n = await _generate(at_lead[:width], tokens)
                    moved += await _traffic(at_lead[0]) - before
                    generated += n
                    rates.setdefault(f"split, {width} at once", []).append(n / wall)
            print(f"{'':28} {'tok/s (median of ' + str(rounds) + ')':>22}  all rounds")
            for name, values in rates.items():
                shown = " ".join(f"{v:.1f}" for v in values)
                print(f"{name:28} {statistics.median(values):>22.1f}  {shown}")
            for width in sorted({1, concurrency}):
                ratio = statistics.median(rates[f"split, {width} at once"]) / statistics.median(
                    rates[f"one node, {width} at once"]
                )
                print(f"split / one node, {width} at once: {ratio:.2f}x")
            print(f"tunnel bytes per generated token: {moved / generated:,.0f} (both ways)")

            # A lost worker, and its return.
            killed_at = worker.kill()
            await wait_for(at_lead[0], "/api/fleet",
                           lambda b: (b.get("lead") or {}).get("state") == "local",
                           what="serving alone")  # fmt: skip
            await _generate(at_lead[:1], 1)
            alone_s = time.monotonic() - killed_at
            await worker.start()
            await wait_for(at_worker[0], "/health", healthy, what="worker back")
            back_at = time.monotonic()
            await wait_for(at_lead[0], "/api/fleet", _split_ready(2), what="split restored")
            restored_s = time.monotonic() - back_at
            print(f"worker killed -> the lead answers alone: {alone_s:.1f} s")
            print(f"worker back (healthy) -> split restored: {restored_s:.1f} s")
        finally:
            for client in clients:
                await client.close()
            await lead.stop()
            await worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"cannot run: {reason}")
    asyncio.run(run(args.rounds, args.tokens, args.concurrency, args.threads))


if __name__ == "__main__":
    main()
