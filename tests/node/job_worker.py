"""A job executor in its own process, for the killed-process test.

    python -m tests.node.job_worker DATA_DIR submit N   # queue a job of N items, then run
    python -m tests.node.job_worker DATA_DIR resume     # run what the store holds

It prints ``done <index>`` after each item's result is committed and ``finished`` when
no job is left, so the test can kill it at a known point without guessing at timing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import sys
import time
from typing import Any

from heatcompute_node.heat.executor import JobExecutor
from heatcompute_node.heat.job_runner import ItemOutput
from heatcompute_node.heat.job_store import STORE_FILE_NAME, JobStore
from heatcompute_node.heat.jobs import Job, JobKind
from heatcompute_node.heat.scheduling import Planner


class EchoRunner:
    def unavailable(self, kind: JobKind, model: str | None) -> str | None:
        return None

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        await asyncio.sleep(0.002)  # an engine takes a while; lets the kill land mid-job
        return ItemOutput(result={"text": item["prompt"].upper()}, completion_tokens=1)

    async def run_filler(self) -> ItemOutput:
        raise NotImplementedError

    def engine(self) -> None:
        return None

    def tokens_total(self) -> int:
        return 0

    def engine_threads(self) -> int | None:
        return None

    def external_requests(self, own: int) -> int:
        return 0


def _printer(name: str, data: dict[str, Any]) -> None:
    print(f"{name} {data['state']} {data['progress']['done']}", flush=True)


async def main(data_dir: Path, mode: str, count: int) -> None:
    store = JobStore(data_dir / STORE_FILE_NAME)
    executor = JobExecutor(store, EchoRunner(), planner=Planner(), publish=_printer)
    await executor.start()
    if mode == "submit":
        job = Job(
            id="job_kill",
            kind="completions",
            created_at=time.time(),
            total_items=count,
            params={"max_tokens": 1},
        )
        await executor.submit(job, [{"prompt": f"item {i}"} for i in range(count)])
    original = executor.store.add_result

    def add_result(job: Job, index: int, result: dict[str, Any], *, failed: bool) -> bool:
        stored = original(job, index, result, failed=failed)
        print(f"done {index}", flush=True)
        return stored

    executor.store.add_result = add_result  # type: ignore[method-assign]
    while executor.pending:
        plan = executor.planner.plan(
            executor.pending,
            now=time.time(),
            heat_wanted=True,
            jobs_allowed=True,
            filler_allowed=False,
        )
        executor.update(plan, max_inflight=4)
        await asyncio.sleep(0.01)  # the controller's sample interval
    print("finished", flush=True)
    await executor.stop()
    store.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
