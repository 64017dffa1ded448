"""MCP bridge: tools/call latency for two everyday reads, through a real node on 127.0.0.1.

  read_text_file   a 100 KB text file in a shared folder
  ha_get_history   one day of one sensor from a 100,000-row recorder-like database
                   (10 sensors, a state every 5 minutes; the recorder's tables, columns
                   and index), thinned to at most 300 points

Each call is a full Streamable HTTP request (auth, guard, JSON-RPC, a worker thread,
the JSON answer), sequential, after a few warm-up calls. The baseline, measured in the
same run, does the same read directly in this process (open the file and read it; one
indexed SELECT on the database): the ratio is what the bridge costs on top.

    .venv/bin/python bench/mcp_calls.py --calls 200
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from pathlib import Path
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "addon"))

from heatcompute_node.app import create_app  # noqa: E402
from heatcompute_node.settings import Settings  # noqa: E402
from tests.node.mcp_home import NOW, build_recorder  # noqa: E402

TOKEN = "bench-token-0123456789"
SENSORS = 10
ROWS = 100_000
STEP_S = 300.0


def build_database(path: Path) -> str:
    """The recorder's schema, then 100,000 states over 10 sensors ending at NOW."""
    build_recorder(path, hours=1)
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO states_meta (metadata_id, entity_id) VALUES (?, ?)",
        ((i + 10, f"sensor.room_{i}_temperature") for i in range(SENSORS)),
    )
    per_sensor = ROWS // SENSORS
    first = NOW.timestamp() - STEP_S * per_sensor
    db.executemany(
        "INSERT INTO states (state, last_updated_ts, metadata_id) VALUES (?, ?, ?)",
        (
            (f"{19 + (n % 50) / 10:.1f}", first + n * STEP_S, 10 + sensor)
            for n in range(per_sensor)
            for sensor in range(SENSORS)
        ),
    )
    db.commit()
    db.close()
    return "sensor.room_3_temperature"


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


async def time_calls(
    session: aiohttp.ClientSession, url: str, tool: str, arguments: dict[str, Any], calls: int
) -> list[float]:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json, text/event-stream"}
    samples = []
    for index in range(calls + 5):
        started = time.perf_counter()
        async with session.post(url, json=body, headers=headers) as response:
            answer = await response.json()
        elapsed = time.perf_counter() - started
        assert answer["result"]["isError"] is False, answer
        if index >= 5:
            samples.append(elapsed)
    return samples


def time_direct(function: Any, calls: int) -> list[float]:
    samples = []
    for index in range(calls + 5):
        started = time.perf_counter()
        function()
        if index >= 5:
            samples.append(time.perf_counter() - started)
    return samples


async def main(calls: int, port: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        share = root / "share"
        share.mkdir()
        text = share / "notes.md"
        text.write_text(
            "".join(f"line {i:05d} of the heating notes, some words\n" for i in range(2300))
        )
        size_kb = text.stat().st_size / 1024
        recorder = root / "home-assistant_v2.db"
        entity = build_database(recorder)
        settings = Settings(
            host="127.0.0.1",
            port=port,
            data_dir=root / "data",
            token=TOKEN,
            zeroconf=False,
            hardware="twin",
            mcp_folders=(share,),
            mcp_recorder_db=recorder,
            log_level="WARNING",
        )
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}/mcp"
        start, end = (NOW - timedelta(days=1)).isoformat(), NOW.isoformat()
        try:
            async with aiohttp.ClientSession() as session:
                file_calls = await time_calls(
                    session, url, "read_text_file", {"path": str(text)}, calls
                )
                history_calls = await time_calls(
                    session,
                    url,
                    "ha_get_history",
                    {"entity_id": entity, "start": start, "end": end, "max_points": 300},
                    calls,
                )
        finally:
            await runner.cleanup()

        def read_file() -> None:
            text.read_text(encoding="utf-8")

        def query_day() -> None:
            db = sqlite3.connect(f"file:{recorder}?mode=ro", uri=True)
            db.execute(
                "SELECT state, last_updated_ts FROM states JOIN states_meta USING (metadata_id) "
                "WHERE entity_id = ? AND last_updated_ts >= ? AND last_updated_ts < ? "
                "ORDER BY last_updated_ts",
                (entity, NOW.timestamp() - 86400, NOW.timestamp()),
            ).fetchall()
            db.close()

        print(f"{ROWS} state rows, {SENSORS} sensors; {size_kb:.0f} KB file; {calls} calls each")
        print(f"{'read':<34}{'p50 ms':>9}{'p95 ms':>9}{'p95 vs direct':>15}")
        for name, bridged, direct in (
            (f"read_text_file ({size_kb:.0f} KB)", file_calls, time_direct(read_file, calls)),
            ("ha_get_history (1 day, 288 rows)", history_calls, time_direct(query_day, calls)),
        ):
            p50, p95 = quantiles(bridged)
            d50, d95 = quantiles(direct)
            print(f"{name:<34}{p50 * 1000:>9.2f}{p95 * 1000:>9.2f}{p95 / d95:>14.1f}x")
            print(f"{'  direct, in-process':<34}{d50 * 1000:>9.2f}{d95 * 1000:>9.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--port", type=int, default=18501)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.port))
