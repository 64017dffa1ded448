"""Jobs and the governor on the real LLM engine (a tiny random-weight model), end to end.

The node runs the real job runner, the real continuous-batching scheduler and the twin,
whose power is this process's CPU use: the heat comes from the work actually run.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
import os
from pathlib import Path
import signal
from typing import Any

import aiohttp
import pytest

from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.app import create_app
from heatcompute_node.engines.llm.models import EngineSettings
from heatcompute_node.hardware.twin import TwinSource
from heatcompute_node.settings import Settings
from tests.llm.tiny_model import build_tiny_model

from .conftest import TOKEN, MakeClient, NodeClient, auth
from .jobs_helpers import count_samples, get_job, job_events, set_heat, submit
from .test_main import free_port, start_node

SMALL_ENGINE = EngineSettings(n_ctx=1024, n_slots=8, n_threads=2, prefill_chunk=64)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture
async def engine_client(
    socket_enabled: None, settings: Settings, make_client: MakeClient, tiny_model: Path
) -> NodeClient:
    settings = replace(settings, models=(tiny_model,), max_power_w=150.0, idle_power_w=10.0)
    app = create_app(settings, hardware=TwinSource(idle_power_w=10.0, max_power_w=150.0))
    app[MANAGER_KEY].settings = SMALL_ENGINE
    return await make_client(app)


async def test_every_kind_of_job_runs_on_the_engine(engine_client: NodeClient) -> None:
    client = engine_client
    await set_heat(client, "heat", 120.0)
    async with job_events(client) as events:
        chat = await submit(
            client,
            {
                "kind": "chat",
                "items": [[{"role": "user", "content": f"Say {i}"}] for i in range(3)],
                "max_tokens": 8,
                "seed": 1,
            },
        )
        completions = await submit(
            client, {"kind": "completions", "items": ["a", "b c", "d e f"], "max_tokens": 8}
        )
        embeddings = await submit(client, {"kind": "embeddings", "items": ["x", "y z"]})
        for job in (chat, completions, embeddings):
            await events.state(job["id"], "completed", timeout=60)
    for job_id, key in ((chat["id"], "text"), (completions["id"], "text")):
        done = await get_job(client, job_id)
        assert [r["index"] for r in done["results"]] == [0, 1, 2]
        assert all(isinstance(r[key], str) and r["finish_reason"] for r in done["results"])
        assert done["usage"]["completion_tokens"] > 0
        assert done["usage"]["prompt_tokens"] > 0
        assert done["energy"]["wh"] > 0
    vectors = (await get_job(client, embeddings["id"]))["results"]
    assert len(vectors) == 2
    assert len(vectors[0]["embedding"]) == len(vectors[1]["embedding"]) > 0
    status = await (await client.get("/api/status", headers=auth())).json()
    assert status["energy"]["tokens_since_start"] > 0
    assert status["energy"]["wh_per_1k_tokens"] > 0
    # The engine runs with the governor's knobs.
    [engine] = status["llm"].values()
    assert engine["knobs"] == status["governor"]["knobs"]


async def test_no_heat_no_deadline_the_engine_stays_idle(engine_client: NodeClient) -> None:
    client = engine_client
    samples = count_samples(client)
    job = await submit(client, {"kind": "completions", "items": ["wait"], "max_tokens": 4})
    await samples.wait(10)
    assert (await get_job(client, job["id"]))["state"] == "queued"
    status = await (await client.get("/api/status", headers=auth())).json()
    assert status["intensity"] == 0.0
    assert status["work"]["requests_active"] == 0


async def test_a_deadline_runs_the_job_on_the_engine_without_heat(
    engine_client: NodeClient,
) -> None:
    client = engine_client
    samples = count_samples(client)
    async with job_events(client) as events:
        job = await submit(
            client,
            {"kind": "completions", "items": ["soon", "now"], "max_tokens": 8, "deadline_in_s": 90},
        )
        done = await events.state(job["id"], "completed", timeout=60)
    assert done["deadline_missed"] is False
    # A job this short may start and end between two power samples: its forced time is
    # counted at the next one, like its energy.
    await samples.wait(2)
    assert (await get_job(client, job["id"]))["energy"]["deadline_forced_s"] > 0


async def test_heat_going_away_stops_new_engine_work(engine_client: NodeClient) -> None:
    client = engine_client
    items = [f"Chapter {i}" for i in range(400)]
    async with job_events(client) as events:
        job = await submit(client, {"kind": "completions", "items": items, "max_tokens": 32})
        await set_heat(client, "heat", 120.0)
        samples = count_samples(client)
        async with asyncio.timeout(60):
            while (await get_job(client, job["id"]))["progress"]["done"] == 0:
                await samples.wait(1)
        await set_heat(client, "off")
        assert await events.states_until(job["id"], 3, timeout=60) == [
            "queued",
            "running",
            "queued",
        ]
    done = (await get_job(client, job["id"]))["progress"]["done"]
    assert 0 < done < len(items)
    status = await (await client.get("/api/status", headers=auth())).json()
    assert status["work"]["requests_active"] == 0
    assert status["governor"]["knobs"]["max_background"] == 0


async def wait_progress(
    session: aiohttp.ClientSession, base: str, job_id: str, done: int
) -> dict[str, Any]:
    """Poll the job until ``done`` items have results (bounded by a timeout); when that
    is all of them, also until the job's end is stored (the last result is written
    before the end, so there is a moment when both are true of a still-running job)."""
    async with asyncio.timeout(120):
        while True:
            async with session.get(f"{base}/api/jobs/{job_id}?limit=1000") as response:
                job: dict[str, Any] = await response.json()
            progress = job["progress"]
            finished = job["state"] in ("completed", "failed", "cancelled")
            if progress["done"] >= done and (done < progress["total"] or finished):
                return job
            await asyncio.sleep(0.1)


async def test_a_killed_node_resumes_its_job_on_the_engine(
    socket_enabled: None, tmp_path: Path, tiny_model: Path
) -> None:
    """SIGKILL the real node mid-job; restarted, it completes the job with each item once."""
    port, items = free_port(), [f"item {i}" for i in range(60)]
    env = {"HEATCOMPUTE_TOKEN": TOKEN, "HEATCOMPUTE_MODELS": str(tiny_model)}
    base, headers = f"http://127.0.0.1:{port}", auth()
    node = await start_node(port, tmp_path, **env)
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.post(
                f"{base}/api/jobs",
                json={"kind": "completions", "items": items, "max_tokens": 16, "seed": 7},
            ) as response:
                job = await response.json()
                assert response.status == 200, job
            async with session.put(f"{base}/api/heat", json={"mode": "heat", "target_w": 150}):
                pass
            await wait_progress(session, base, job["id"], 15)
    finally:
        node.send_signal(signal.SIGKILL)
        await node.wait()
    node = await start_node(port, tmp_path, **env)
    try:
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.put(f"{base}/api/heat", json={"mode": "heat", "target_w": 150}):
                pass
            done = await wait_progress(session, base, job["id"], len(items))
    finally:
        node.terminate()
        await node.wait()
    assert done["state"] == "completed"
    assert [r["index"] for r in done["results"]] == list(range(len(items)))
    assert all("text" in r for r in done["results"])
    assert os.path.exists(tmp_path / "jobs.sqlite3")
