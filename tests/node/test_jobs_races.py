"""A job's writes race nothing: what is reported is stored, and cancel and the end never both win.

The store holds a chosen write (a job state in ``update_job``, or a result) in its worker
thread until the test releases it, so each race's window stays open as long as the test
needs: nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from heatcompute_node.heat.executor import JobExecutor
from heatcompute_node.heat.job_store import STORE_FILE_NAME, JobStore
from heatcompute_node.heat.jobs import Job

from .executor_harness import Node, Published, started_executor
from .fake_runner import FakeRunner


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with started_executor(tmp_path, FakeRunner(gated=True)) as node:
        yield node


async def still_waiting(task: asyncio.Task[Any]) -> bool:
    """True if ``task`` is still waiting for its turn (a held write keeps it waiting)."""
    done, _ = await asyncio.wait({task}, timeout=0.05)
    return not done


async def test_a_job_ends_in_memory_and_events_only_once_its_end_is_stored(node: Node) -> None:
    node.store.hold = "completed"
    job = await node.run("a")
    node.runner.gate.set()
    await node.store.held()
    # The result is committed, the end is not: nothing may report the end yet.
    assert await node.store.stored(job.id) == ("running", [0])
    assert (job.state, job.done_items) == ("running", 1)
    assert node.published.states(job.id) == ["queued", "running"]
    node.store.release.set()
    await node.published.state(job.id, "completed")
    assert job.state == "completed"
    assert await node.store.stored(job.id) == ("completed", [0])


async def test_stop_waits_for_a_state_write_in_flight(node: Node) -> None:
    node.store.hold = "completed"
    job = await node.run("a")
    node.runner.gate.set()
    await node.store.held()
    stopping = asyncio.create_task(node.executor.stop())
    assert await still_waiting(stopping)
    node.store.release.set()
    await stopping
    # Stopped, and the store says what was last reported: no job left "running".
    assert await node.store.stored(job.id) == ("completed", [0])
    assert job.state == "completed"
    assert node.published.states(job.id) == ["queued", "running", "completed"]


async def test_a_cancel_arriving_while_the_end_is_written_loses(node: Node) -> None:
    node.store.hold = "completed"
    job = await node.run("a", "b")
    node.runner.gate.set()
    await node.store.held()
    assert not job.terminal  # so the API sends the DELETE to cancel()
    cancelling = asyncio.create_task(node.executor.cancel(job))
    assert await still_waiting(cancelling)
    node.store.release.set()
    assert (await cancelling).state == "completed"
    assert await node.store.stored(job.id) == ("completed", [0, 1])
    assert node.published.states(job.id) == ["queued", "running", "completed"]


async def test_an_item_ending_while_the_cancel_is_written_loses(node: Node) -> None:
    node.store.hold = "cancelled"
    job = await node.run("a")
    await node.runner.wait_for(lambda: node.runner.started == ["a"])
    cancelling = asyncio.create_task(node.executor.cancel(job))
    await node.store.held()
    node.runner.gate.set()  # the item's result arrives during the cancel's write
    # Once the runner has returned it, the item waits for its turn to store the result.
    await node.runner.wait_for(lambda: node.runner.finished == ["a"])
    assert node.executor.inflight == 0
    assert job.state == "running"  # not cancelled before the store says so
    node.store.release.set()
    assert (await cancelling).state == "cancelled"
    assert (job.state, job.done_items) == ("cancelled", 0)
    assert await node.store.stored(job.id) == ("cancelled", [])
    assert node.published.states(job.id) == ["queued", "running", "cancelled"]


async def test_a_result_being_stored_cannot_undo_a_cancel(node: Node) -> None:
    # The result's write carries the job's record too: it must not land after the cancel.
    node.store.hold = "result"
    job = await node.run("a", "b", at_once=1)  # "b" starts only once "a" is stored
    node.runner.gate.set()
    await node.store.held()
    cancelling = asyncio.create_task(node.executor.cancel(job))
    assert await still_waiting(cancelling)
    node.store.release.set()
    await cancelling
    assert await node.store.stored(job.id) == ("cancelled", [0])
    assert (job.state, job.done_items) == ("cancelled", 1)
    assert node.runner.started == ["a"]
    assert node.published.states(job.id) == ["queued", "running", "cancelled"]


async def test_a_job_whose_end_was_not_stored_ends_on_start(tmp_path: Path) -> None:
    store = JobStore(tmp_path / STORE_FILE_NAME)
    job = Job(id="job_x", kind="embeddings", created_at=1.0, total_items=1, state="running")
    store.insert_job(job, [{"input": "a"}])
    store.add_result(job, 0, {"embedding": [1.0]}, failed=False)  # then the process died
    published = Published()
    executor = JobExecutor(store, FakeRunner(), publish=published)
    await executor.start()
    await executor.stop()
    [ended] = store.load_jobs()
    store.close()
    assert (ended.state, ended.done_items) == ("completed", 1)
    assert executor.jobs[job.id].state == "completed"
    assert published.states(job.id) == ["completed"]
