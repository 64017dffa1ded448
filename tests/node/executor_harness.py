"""A job executor on a real store, driven directly: no node, no HTTP, no controller.

The store can hold a chosen write in its worker thread until the test releases it, and
every published ``job`` event is kept, so tests wait on what happened, never on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass
from pathlib import Path
import threading
import time
from typing import Any

from heatcompute_node.heat.executor import JobExecutor
from heatcompute_node.heat.job_store import STORE_FILE_NAME, JobStore
from heatcompute_node.heat.jobs import Job, JobState
from heatcompute_node.heat.scheduling import Plan

from .fake_runner import FakeRunner


class HeldStore(JobStore):
    """A job store whose writes of ``hold`` (a state, or "result") wait until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.hold: JobState | str | None = None
        self.entered = threading.Event()
        self.release = threading.Event()

    def update_job(self, job: Job) -> None:
        self._wait_if(job.state)
        super().update_job(job)

    def add_result(self, job: Job, index: int, result: dict[str, Any], *, failed: bool) -> bool:
        self._wait_if("result")
        return super().add_result(job, index, result, failed=failed)

    def _wait_if(self, write: str) -> None:
        if write == self.hold:
            self.entered.set()
            self.release.wait(timeout=30)

    async def held(self) -> None:
        """Return once a held write waits in the store."""
        assert await asyncio.to_thread(self.entered.wait, 10)

    async def stored(self, job_id: str) -> tuple[JobState, list[int]]:
        """The job's state and the items with a result, as a restart would find them."""
        jobs = {job.id: job for job in await asyncio.to_thread(self.load_jobs)}
        results = await asyncio.to_thread(self.results, job_id, 0, 100)
        return jobs[job_id].state, [result["index"] for result in results]


class Published:
    """The executor's ``job`` events, with a wait for one of them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        assert name == "job"
        self.events.append(data)
        self._arrived.set()

    def states(self, job_id: str) -> list[str]:
        """The job's published states in order, repeats folded."""
        states: list[str] = []
        for event in self.events:
            if event["id"] == job_id and (not states or states[-1] != event["state"]):
                states.append(event["state"])
        return states

    async def state(self, job_id: str, state: str) -> None:
        async with asyncio.timeout(10):
            while state not in self.states(job_id):
                self._arrived.clear()
                await self._arrived.wait()


@dataclass
class Node:
    store: HeldStore
    runner: FakeRunner
    executor: JobExecutor
    published: Published

    async def run(self, *items: str, at_once: int | None = None) -> Job:
        """Submit a job of ``items`` and let ``at_once`` of them (default: all) run at once."""
        job = Job(
            id=f"job_{len(self.executor.jobs)}",
            kind="completions",
            created_at=1.0,
            total_items=len(items),
            params={"max_tokens": 2},
        )
        await self.executor.submit(job, [{"prompt": item} for item in items])
        self.executor.update(Plan(run=(job.id,)), max_inflight=at_once or len(items))
        return job


@contextlib.asynccontextmanager
async def started_executor(
    tmp_path: Path, runner: FakeRunner, *, monotonic: Callable[[], float] = time.monotonic
) -> AsyncIterator[Node]:
    """A started executor on a fresh store; stopped (with every write released) after."""
    store = HeldStore(tmp_path / STORE_FILE_NAME)
    published = Published()
    executor = JobExecutor(store, runner, publish=published, monotonic=monotonic)
    await executor.start()
    try:
        yield Node(store, runner, executor, published)
    finally:
        store.release.set()  # never leave a worker thread waiting
        runner.gate.set()
        await executor.stop()
        store.close()
