"""The governor on the real LLM engine: heat-target steps and interactive latency.

    PYTHONPATH=addon .venv/bin/python -m bench.heat_engine [--model FILE.gguf]

A real node (in this process, on 127.0.0.1) with the twin as hardware: its power is
idle + (max − idle) × this process's CPU share, so the watts come from the inference the
node really runs. The bench
1. queues a large background job, asks for heat at 60 % of the range and records how
   long the power takes to settle within 5 % of the target (2 s moving average);
2. steps the target down to 35 % and records the settling again;
3. switches heat off and records how fast the node is back at its idle floor;
4. measures interactive latency (chat, 32 tokens, temperature 0) in interleaved rounds:
   heat off and no background sequence running (the idle node), then heat on with the
   background job running, and again; the ratio of the medians is the figure, and each
   round's own ratio shows how much the machine's other load moved it.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import os
from pathlib import Path
import statistics
import tempfile
import time
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.app import create_app
from heatcompute_node.hardware.base import HardwareReading
from heatcompute_node.hardware.twin import TwinSource
from heatcompute_node.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789"
IDLE_W, MAX_W = 15.0, 115.0
SAMPLE_S = 0.5


@dataclass
class PowerLog:
    samples: list[tuple[float, float]] = field(default_factory=list)

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        if reading.power_w is not None:
            self.samples.append((now, reading.power_w))

    def settling_s(self, since: float, target_w: float, band: float = 0.05) -> float | None:
        """Seconds from ``since`` until the 2 s average stays within the band."""
        window = int(2.0 / SAMPLE_S)
        after = [(t, p) for t, p in self.samples if t >= since]
        last_outside = None
        for i in range(window - 1, len(after)):
            mean = statistics.fmean(p for _, p in after[i - window + 1 : i + 1])
            if abs(mean - target_w) > band * target_w:
                last_outside = after[i][0]
        if len(after) < window or (after and last_outside == after[-1][0]):
            return None
        return 0.0 if last_outside is None else last_outside - since

    def mean_since(self, since: float) -> float:
        return statistics.fmean(p for t, p in self.samples if t >= since)


async def chat_latency(session: aiohttp.ClientSession, base: str, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        body = {
            "messages": [{"role": "user", "content": f"Name three birds. ({i})"}],
            "max_tokens": 32,
            "temperature": 0,
        }
        start = time.monotonic()
        async with session.post(f"{base}/v1/chat/completions", json=body) as response:
            assert response.status == 200, await response.text()
            await response.json()
        latencies.append(time.monotonic() - start)
    return latencies


async def put_heat(session: aiohttp.ClientSession, base: str, mode: str, watts: float) -> None:
    async with session.put(f"{base}/api/heat", json={"mode": mode, "target_w": watts}) as r:
        assert r.status == 200


async def status(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/api/status") as response:
        data: dict[str, Any] = await response.json()
        return data


async def wait_for(
    session: aiohttp.ClientSession, base: str, ready: Callable[[dict[str, Any]], bool]
) -> None:
    for _ in range(1200):
        if ready(await status(session, base)):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the node never reached the state the bench waits for")


async def latency_rounds(
    session: aiohttp.ClientSession, base: str, rounds: int, n_requests: int
) -> None:
    """Idle and busy phases alternate, so other load on the machine hits both alike."""
    idle: list[float] = []
    busy: list[float] = []
    for round_no in range(1, rounds + 1):
        await put_heat(session, base, "off", 0.0)
        await wait_for(session, base, lambda s: s["work"]["requests_active"] == 0)
        idle_round = await chat_latency(session, base, n_requests)
        await put_heat(session, base, "heat", IDLE_W + 0.6 * (MAX_W - IDLE_W))
        await wait_for(session, base, lambda s: s["work"]["requests_active"] >= 2)
        busy_round = await chat_latency(session, base, n_requests)
        active = (await status(session, base))["work"]["requests_active"]
        idle += idle_round
        busy += busy_round
        print(
            f"  round {round_no}: idle median {statistics.median(idle_round):.3f} s, "
            f"with background ({active} requests active) "
            f"{statistics.median(busy_round):.3f} s: "
            f"x{statistics.median(busy_round) / statistics.median(idle_round):.2f}"
        )
    await put_heat(session, base, "off", 0.0)
    ratio = statistics.median(busy) / statistics.median(idle)
    print(
        f"interactive latency over {rounds} rounds of {n_requests}: idle median "
        f"{statistics.median(idle):.3f} s, with background work "
        f"{statistics.median(busy):.3f} s: x{ratio:.2f}"
    )


async def run(model: Path, seconds: float, n_requests: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            token=TOKEN,
            zeroconf=False,
            models=(model,),
            max_power_w=MAX_W,
            idle_power_w=IDLE_W,
            status_interval_s=SAMPLE_S,
            watchdog_min=60.0,
        )
        hardware = TwinSource(idle_power_w=IDLE_W, max_power_w=MAX_W)
        app = create_app(settings, hardware=hardware)
        log = PowerLog()
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        app[NODE_KEY].add_sample_listener(log)
        base = f"http://127.0.0.1:{server.port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            await chat_latency(session, base, 2)  # load the model, warm the caches
            job = {
                "kind": "completions",
                "items": [f"Chapter {i}. The lighthouse keeper" for i in range(5000)],
                "max_tokens": 128,
            }
            async with session.post(f"{base}/api/jobs", json=job) as response:
                assert response.status == 200, await response.text()
            print(f"cpus {os.process_cpu_count()}, load average {os.getloadavg()[0]:.2f}")
            for share in (0.6, 0.35):
                target = IDLE_W + share * (MAX_W - IDLE_W)
                step_at = time.monotonic()
                await put_heat(session, base, "heat", target)
                await asyncio.sleep(seconds)  # a benchmark: it measures over wall time
                settle = log.settling_s(step_at, target)
                tail = log.mean_since(time.monotonic() - 10.0)
                now = await status(session, base)
                print(
                    f"step to {target:.1f} W: settled within 5 % after "
                    f"{'never' if settle is None else f'{settle:.1f} s'}; last 10 s mean "
                    f"{tail:.1f} W ({tail / target - 1:+.1%}); intensity {now['intensity']}, "
                    f"knobs {now['governor']['knobs']}, {now['work']['tokens_per_s']} tok/s"
                )
            off_at = time.monotonic()
            await put_heat(session, base, "off", 0.0)
            await asyncio.sleep(seconds / 2)
            back = log.settling_s(off_at, IDLE_W, band=0.1)
            print(f"heat off: back within 10 % of the {IDLE_W:g} W floor after {back} s")
            await latency_rounds(session, base, rounds, n_requests)
        await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--model", type=Path, default=ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="per target step")
    parser.add_argument("--requests", type=int, default=6, help="per phase and round")
    parser.add_argument("--rounds", type=int, default=5, help="idle/busy latency rounds")
    args = parser.parse_args()
    asyncio.run(run(args.model, args.seconds, args.requests, args.rounds))


if __name__ == "__main__":
    main()
