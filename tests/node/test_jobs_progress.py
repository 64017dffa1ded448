"""Job progress reaches the event stream: at most once a second per job, never left stale."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from heatcompute_node.heat.job_runner import ItemOutput
from heatcompute_node.heat.jobs import Job
from heatcompute_node.heat.scheduling import Plan

from .executor_harness import started_executor
from .fake_runner import FakeRunner


class OneByOne(FakeRunner):
    """Each item waits until the test lets one through; ``waiting`` lists those that did."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[str] = []
        self.steps = asyncio.Semaphore(0)

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        self.waiting.append(item["prompt"])
        self._note()
        await self.steps.acquire()
        return await super().run_item(job, item)

    async def step(self, then_waiting: int) -> None:
        """Let one item through, and return once its result is counted.

        Items run one at a time: the next one starts only after the last result was
        stored and counted, so the next item waiting is the sign.
        """
        self.steps.release()
        await self.wait_for(lambda: len(self.waiting) == then_waiting)


async def test_progress_is_published_at_most_once_a_second_and_always_follows(
    tmp_path: Path,
) -> None:
    now = [100.0]
    runner = OneByOne()
    async with started_executor(tmp_path, runner, monotonic=lambda: now[0]) as node:
        job = await node.run("a", "b", "c", "d", "e", at_once=1)
        await runner.wait_for(lambda: len(runner.waiting) == 1)

        def progress() -> list[tuple[str, int]]:
            return [
                (event["state"], event["progress"]["done"])
                for event in node.published.events
                if event["id"] == job.id
            ]

        assert progress() == [("queued", 0), ("running", 0)]
        now[0] = 100.5  # half a second after the last event: held back
        await runner.step(then_waiting=2)
        assert job.done_items == 1
        assert progress()[-1] == ("running", 0)
        now[0] = 101.2  # more than a second since: published at once
        await runner.step(then_waiting=3)
        assert progress()[-1] == ("running", 2)
        now[0] = 101.5
        await runner.step(then_waiting=4)
        node.executor.update(Plan(run=(job.id,)), max_inflight=1)
        assert progress()[-1] == ("running", 2)  # a control step within the second: still
        now[0] = 102.3  # the first control step after the second publishes it
        node.executor.update(Plan(run=(job.id,)), max_inflight=1)
        assert progress()[-1] == ("running", 3)
        node.executor.update(Plan(run=(job.id,)), max_inflight=1)
        assert progress().count(("running", 3)) == 1  # nothing new: nothing sent again
        # Item 4 is held back (0.1 s), then the end is a state change: published at once.
        now[0] = 102.4
        await runner.step(then_waiting=5)
        runner.steps.release()
        await node.published.state(job.id, "completed")
        assert progress() == [
            ("queued", 0),
            ("running", 0),
            ("running", 2),
            ("running", 3),
            ("completed", 5),
        ]
