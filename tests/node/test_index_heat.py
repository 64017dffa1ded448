"""Indexing is heat work: a real node, its real document index and the twin.

Real: the node app on 127.0.0.1, the document index of a folder the test writes, the
embedding model (all-MiniLM-L6-v2 on llama.cpp), the heat controller and planner. The
hardware is the twin (no power sensor is readable here): its power is this process's CPU
use, so the watts come from the indexing the node really does.

- With heat wanted, a backlog and filler off, the power follows the heat target (two
  steps) from indexing alone: no job is queued and no filler runs.
- With no heat wanted, the backlog waits (no chunk embedded, the governor idle) until
  its freshness deadline forces it; then it is indexed before that deadline.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import takewhile
from pathlib import Path
import statistics
import time

import pytest

from heatcompute_node.api.index import INDEX_KEY
from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.app import create_app
from heatcompute_node.engines.llm.models import EngineSettings
from heatcompute_node.hardware.base import HardwareReading
from heatcompute_node.hardware.twin import TwinSource
from heatcompute_node.index.backlog import IndexProgress
from heatcompute_node.settings import Settings

from .conftest import MakeClient, NodeClient, auth
from .jobs_helpers import JobEvents, count_samples, job_events, node_of, set_heat

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "models" / "all-MiniLM-L6-v2.gguf"
IDLE_W, MAX_W = 10.0, 150.0
ENGINE = EngineSettings(n_ctx=1024, n_slots=4, n_threads=2)

TOPICS = (
    "The boiler was serviced in October; the engineer replaced the ignition electrode",
    "Our home insurance covers water damage with a deductible of three hundred euros",
    "The dishwasher's warranty runs for two years from the date on the receipt",
    "Recipe: simmer the lentils with cumin, garlic and a bay leaf for forty minutes",
    "The school trip to the museum leaves at eight; bring a packed lunch and a raincoat",
    "Meter reading for the gas supply, taken on the first of the month in the cellar",
)


def write_documents(folder: Path, files: int, paragraphs: int) -> None:
    """Notes of a household, each a few passages long, none alike."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        text = "\n\n".join(
            f"{TOPICS[(number + p) % len(TOPICS)]} (note {number}, part {p}). "
            f"Written down so it can be found again: item {number * 31 + p} of the "
            f"household's papers, filed under {TOPICS[p % len(TOPICS)].split()[1]}."
            for p in range(paragraphs)
        )
        (folder / f"note-{number:04d}.md").write_text(text, encoding="utf-8")


@dataclass
class PowerLog:
    """The node's power samples; wakes a waiting test on each one."""

    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=4000))
    ticked: asyncio.Event = field(default_factory=asyncio.Event)

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        if reading.power_w is not None:
            self.samples.append((now, reading.power_w))
        self.ticked.set()

    def mean_over(self, seconds: float) -> float | None:
        if not self.samples:
            return None
        last = self.samples[-1][0]
        recent = [p for t, p in self.samples if t >= last - seconds]
        span = last - self.samples[0][0]
        return statistics.fmean(recent) if span >= seconds else None

    async def settles_at(
        self, target_w: float, *, band: float, hold_s: float, timeout: float
    ) -> float:
        """Seconds until the mean over ``hold_s`` is within ``band`` of the target."""
        start = time.monotonic()
        self.samples.clear()
        async with asyncio.timeout(timeout):
            while True:
                self.ticked.clear()
                await self.ticked.wait()
                mean = self.mean_over(hold_s)
                if mean is not None and abs(mean - target_w) <= band * target_w:
                    return time.monotonic() - start


@pytest.fixture(scope="session")
def minilm() -> Path:
    if not MINILM.exists():
        pytest.skip("all-MiniLM-L6-v2 is not converted into models/ (run scripts/setup)")
    return MINILM


async def index_node(
    settings: Settings,
    make_client: MakeClient,
    minilm: Path,
    folder: Path,
    freshness_h: float = 24.0,
    chat_model: Path | None = None,
) -> NodeClient:
    settings = replace(
        settings,
        models=(minilm,) if chat_model is None else (chat_model, minilm),
        mcp_folders=(folder,),
        max_power_w=MAX_W,
        idle_power_w=IDLE_W,
        status_interval_s=0.1,
        index_freshness_h=freshness_h,
    )
    app = create_app(settings, hardware=TwinSource(idle_power_w=IDLE_W, max_power_w=MAX_W))
    app[MANAGER_KEY].settings = ENGINE
    return await make_client(app)


@pytest.fixture
async def heat_events(
    socket_enabled: None, settings: Settings, make_client: MakeClient, minilm: Path, tmp_path: Path
) -> AsyncIterator[tuple[NodeClient, JobEvents]]:
    folder = tmp_path / "papers"
    write_documents(folder, files=1500, paragraphs=6)
    client = await index_node(settings, make_client, minilm, folder)
    async with job_events(client) as events:
        yield client, events


async def test_power_follows_the_heat_target_from_indexing_alone(
    heat_events: tuple[NodeClient, JobEvents],
) -> None:
    client, events = heat_events
    node = node_of(client)
    log = PowerLog()
    node.add_sample_listener(log)
    index = client.app[INDEX_KEY] if client.app is not None else None
    assert index is not None
    assert not index.backlog().empty
    # What this process can draw now (the machine is shared: other programs' load takes
    # CPU this process would turn into watts): all-out indexing for a few seconds.
    await set_heat(client, "heat", MAX_W)
    await log.settles_at(MAX_W, band=1.0, hold_s=4.0, timeout=60)  # 4 s of samples
    full_w = log.mean_over(4.0)
    assert full_w is not None
    assert full_w - IDLE_W >= 8.0, f"indexing all out drew only {full_w:.1f} W: machine too busy"
    for share in (0.6, 0.3):
        target = IDLE_W + share * (full_w - IDLE_W)
        await set_heat(client, "heat", target)
        settled = await log.settles_at(target, band=0.1, hold_s=3.0, timeout=90)
        status = node.status()
        work = status["work"]
        assert work["index"] == "running", work
        assert work["index_reason"] == "heat"
        assert work["background"] == "heat"
        # Indexing alone: no job, no filler (off, as by default).
        assert work["jobs_pending"] == 0
        assert work["filler_items"] == 0
        assert status["config"]["filler"] is False
        print(f"target {target:.0f} W (all out {full_w:.0f} W): within 10 % after {settled:.1f} s")
    running = await events.wait(
        lambda e: e.name == "index" and e.data["state"] == "running", timeout=5
    )
    assert running["reason"] == "heat"
    # The heat bought passages: they are searchable.
    status = node.status()
    assert status["documents"]["chunks"] > 0
    assert status["work"]["index_chunks_indexed"] > 0
    assert index.backlog().chunks_estimate > 0, "the backlog ran out: the test proved nothing"


async def test_without_heat_indexing_waits_for_its_deadline(
    socket_enabled: None,
    settings: Settings,
    make_client: MakeClient,
    minilm: Path,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "papers"
    write_documents(folder, files=3, paragraphs=2)
    freshness_s = 150.0
    client = await index_node(settings, make_client, minilm, folder, freshness_h=freshness_s / 3600)
    node = node_of(client)
    async with job_events(client) as events:
        await count_samples(client).wait(2)
        waiting_since = time.monotonic()
        work = node.status()["work"]
        assert work["index"] == "waiting", work
        assert work["index_chunks_indexed"] == 0
        forced = await events.wait(
            lambda e: e.name == "index" and e.data["state"] == "running", timeout=freshness_s
        )
        waited = time.monotonic() - waiting_since
        assert forced["reason"] == "deadline"
        assert forced["chunks_indexed"] == 0
        # The prior (a second per chunk, x1.5, plus 2 minutes of margin) leaves about
        # 20 s of waiting for this small backlog.
        assert waited > 10, waited
        # While it waited: no heat wanted, so the governor had nothing to run.
        before = list(takewhile(lambda e: e.name != "index", events.seen))
        assert all(e.data["intensity"] == 0.0 for e in before if e.name == "status")
        done = await events.wait(
            lambda e: e.name == "index" and e.data["state"] == "idle", timeout=120
        )
    assert done["chunks_indexed"] > 0
    deadline = datetime.fromisoformat(forced["deadline"]).timestamp()
    assert time.time() <= deadline, "indexed after its freshness deadline"
    status = node.status()
    assert status["documents"]["files"] == 3
    assert status["documents"]["backlog"]["files_pending"] == 0


SMOLLM2 = ROOT / "models" / "SmolLM2-135M-Instruct.Q8_0.gguf"


async def test_indexing_yields_to_a_person_s_request(
    socket_enabled: None,
    settings: Settings,
    make_client: MakeClient,
    minilm: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While someone's chat streams, no index batch starts (the one running may end)."""
    if not SMOLLM2.exists():
        pytest.skip("SmolLM2 is not in models/ (run scripts/setup)")
    folder = tmp_path / "papers"
    write_documents(folder, files=400, paragraphs=6)
    client = await index_node(settings, make_client, minilm, folder, chat_model=SMOLLM2)
    assert client.app is not None
    index = client.app[INDEX_KEY]
    # Watch when batches start (the real index does them).
    batch_starts: list[float] = []
    index_some = index.index_some

    async def watched(max_chunks: int) -> IndexProgress:
        batch_starts.append(time.monotonic())
        return await index_some(max_chunks)

    monkeypatch.setattr(index, "index_some", watched)
    samples = count_samples(client)
    async with job_events(client) as events:
        await set_heat(client, "heat", MAX_W)
        await events.wait(lambda e: e.name == "index" and e.data["state"] == "running")
        async with asyncio.timeout(120):
            while len(batch_starts) < 3:  # the embedding model is loaded, batches flow
                await samples.wait(1)
        body = {
            "messages": [{"role": "user", "content": "Tell me a long story about a lighthouse."}],
            "max_tokens": 400,
            "ignore_eos": True,
            "stream": True,
        }
        asked = time.monotonic()
        response = await client.post("/v1/chat/completions", json=body, headers=auth())
        assert response.status == 200
        async for _line in response.content:
            pass
        answered = time.monotonic()
        during = [t for t in batch_starts if asked + 0.2 < t < answered]
        before = [t for t in batch_starts if asked - (answered - asked) <= t < asked]
        assert during == [], (len(during), answered - asked)
        assert before, "no batch started in as long before the request: it shows nothing"
        # Once the person is served, indexing goes on.
        served = len(batch_starts)
        async with asyncio.timeout(60):
            while len(batch_starts) <= served:
                await samples.wait(1)
