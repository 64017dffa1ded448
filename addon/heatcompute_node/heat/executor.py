"""The job executor: feeds job items to the runner as the plan allows, records results.

One asyncio task fills the engine with at most ``max_inflight`` background items (the
governor's ``max_background``: 0 while background work is paused, so nothing piles up
in the engine's queue in front of interactive requests). Each item's result is
committed with the job's progress before the next state change; after a crash the items
without a result are run again and the store refuses a second result for any item.

Every change of a job (state, progress) is written to the store first and only then made
in memory and published, in the job's turn to write (``job_writes.py``): what the API
and the events show is always what a restart would find. A ``job`` event goes out on
every state change, and with the job's progress at most once a second.

The document index's backlog runs here too, as the planner's ``index`` job
(``index_work.py``): one batch in flight at most, started only while no one else's
request is in the engines, its energy and throughput counted like a job's. It has no
record in the store (the index keeps its own) and an ``index`` event tells when it
starts, waits or is done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
import contextlib
from dataclasses import replace
import logging
from pathlib import Path
import time
from typing import Any

from .executor_state import InflightTable, ProgressReports
from .index_work import IndexWork
from .job_folders import image_file, read_text_file, resolve_folder
from .job_runner import ItemFailed, ItemOutput, JobRunner, RunnerBusy
from .job_store import JobStore
from .job_writes import JobWrites
from .jobs import TERMINAL_STATES, Job, JobState
from .scheduling import IDLE_PLAN, Plan, Planner

_LOGGER = logging.getLogger(__name__)

BUSY_BACKOFF_S = 1.0
MAX_FINISHED_KEPT = 500
PROGRESS_EVENT_INTERVAL_S = 1.0

type Publish = Callable[[str, dict[str, Any]], None]


class JobExecutor:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        *,
        planner: Planner | None = None,
        job_folders: tuple[Path, ...] = (),
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        index_work: IndexWork | None = None,
        people_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.runner = runner
        self.planner = planner or Planner()
        self.job_folders = job_folders
        self._publish = publish or (lambda _name, _data: None)
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self.plan: Plan = IDLE_PLAN
        self.max_inflight = 0
        self._todo: dict[str, deque[int]] = {}
        self._inflight = InflightTable(monotonic)
        self._writes = JobWrites()
        self._progress = ProgressReports(PROGRESS_EVENT_INTERVAL_S, monotonic)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy_until = 0.0
        self._stopping = False
        self.filler_items = 0
        self.index_work = index_work
        self._people_waiting = people_waiting

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        for job in await asyncio.to_thread(self.store.load_jobs):
            self.jobs[job.id] = job
            if job.terminal:
                continue
            if job.remaining_items <= 0:
                # Its last result was committed but not its end: nothing is left to run.
                await self._finish(job)
            elif job.state == "running":
                # It was running when the process stopped: resume from its results.
                _LOGGER.info(
                    "resuming job %s at %d/%d items", job.id, job.done_items, job.total_items
                )
                await self._set_state(job, "queued")
        self._task = asyncio.create_task(self._loop(), name="heatcompute-jobs")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._inflight.cancel_all()
        # Writes begun before the stop end, so the store is left as last reported.
        await self._writes.drain()

    # --- what the API and the controller use -------------------------------------------

    @property
    def inflight(self) -> int:
        """Job and filler items submitted to the runner and not finished."""
        return self._inflight.total

    @property
    def pending(self) -> list[Job]:
        return [job for job in self.jobs.values() if not job.terminal]

    def plannable(self) -> list[Job]:
        """What the planner chooses from: the jobs not finished, and the index's backlog."""
        index_job = self.index_work.job() if self.index_work is not None else None
        return self.pending if index_job is None else [*self.pending, index_job]

    def _job(self, job_id: str) -> Job | None:
        if self.index_work is not None and self.index_work.is_index_job(job_id):
            return self.index_work.current
        return self.jobs.get(job_id)

    def update(self, plan: Plan, *, max_inflight: int) -> None:
        """Take the latest plan and the engine's room for background items.

        Called at each control step, which also publishes the progress held back.
        """
        self.plan, self.max_inflight = plan, max_inflight
        self._wake.set()
        if self.index_work is not None:
            event = self.index_work.on_plan(plan, self._inflight)
            if event is not None:
                self._publish("index", event)
        for job_id in self._progress.ready():
            job = self.jobs.get(job_id)
            if job is None:
                self._progress.forget(job_id)
            else:
                self._emit(job)

    def account(
        self, *, dt_s: float, power_w: float | None, intensity: float, heat_wanted: bool
    ) -> None:
        """Share one sample interval's energy among the jobs that ran; learn throughput.

        By item-seconds: a job whose items ran for the whole interval, alone, gets all of
        its energy; one that ran a tenth of it gets a tenth; items running side by side
        split it. Filler items count as running too (their share is no job's)."""
        counts = self._inflight.per_job()
        busy, seconds = self._inflight.take_busy()
        filler_s = self._inflight.filler * seconds
        share_of = max(sum(busy.values()) + filler_s, seconds)
        energy_wh = (power_w or 0.0) * dt_s / 3600.0
        for job_id, job_s in busy.items():
            job = self._job(job_id)
            if job is None or share_of <= 0:
                continue
            job.energy_wh += energy_wh * job_s / share_of
        if not heat_wanted:
            # By the time its items ran, like the energy: a job that starts and ends
            # between two samples was forced all the same (capped at the interval when
            # its items ran side by side).
            for job_id, job_s in busy.items():
                forced_job = self._job(job_id)
                if job_id in self.plan.forced and forced_job is not None:
                    forced_job.forced_s += min(job_s, dt_s)
        kinds = {job.kind for job in map(self._job, counts) if job is not None}
        done = self._inflight.take_units()
        if len(kinds) == 1 and not self._inflight.filler:
            kind = next(iter(kinds))
            self.planner.estimator.observe(
                kind, intensity_s=intensity * dt_s, units=done.get(kind, 0.0), wall_s=dt_s
            )

    async def submit(self, job: Job, items: list[dict[str, Any]]) -> Job:
        async def insert() -> None:
            await asyncio.to_thread(self.store.insert_job, job, items)
            self.jobs[job.id] = job
            self._emit(job)

        await self._writes.run(job.id, insert)
        self._wake.set()
        return job

    async def cancel(self, job: Job) -> Job:
        """Cancel a job unless it ends first (then it is returned as it ended)."""
        if job.terminal:
            return job
        self._todo[job.id] = deque()  # no new item of it starts while the cancel is written
        try:
            await self._set_state(job, "cancelled", finished_at=self.clock())
        finally:
            if not job.terminal:  # not (yet) cancelled: its items left come from the store
                self._todo.pop(job.id, None)
        return job

    async def delete(self, job: Job) -> None:
        """Forget a finished job and its results."""

        async def delete() -> None:
            await asyncio.to_thread(self.store.delete_job, job.id)
            self.jobs.pop(job.id, None)

        await self._writes.run(job.id, delete)
        self._writes.forget(job.id)
        self._progress.forget(job.id)

    # --- the loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._fill()
            except Exception:  # a bad job must not stop every other job
                _LOGGER.exception("job executor step failed")

    async def _fill(self) -> None:
        plan, loop = self.plan, asyncio.get_running_loop()
        runnable = set(plan.run)
        # Jobs that were running but may not now wait again, keeping their results.
        for waiting in self.pending:
            if (
                waiting.state == "running"
                and waiting.id not in runnable
                and not self._inflight.count(waiting.id)
            ):
                await self._set_state(waiting, "queued")
        if loop.time() < self._busy_until:
            return
        for job_id in plan.run:
            if self.index_work is not None and self.index_work.is_index_job(job_id):
                self._start_index_batch()
            else:
                await self._fill_job(job_id)
            if self._inflight.total >= self.max_inflight:
                return
        while plan.filler and not plan.run and self._inflight.total < self.max_inflight:
            self._inflight.add_filler(asyncio.create_task(self._run_filler()))

    async def _fill_job(self, job_id: str) -> None:
        """Start the job's items while the engine has room for background items."""
        job = self.jobs.get(job_id)
        if job is None or job.terminal:
            return
        if job.remaining_items <= 0:  # its end could not be written after its last result
            await self._finish(job)
            return
        todo = await self._todo_of(job)
        while todo and self._inflight.total < self.max_inflight:
            if job.state == "queued":
                started_at = self.clock() if job.started_at is None else job.started_at
                await self._set_state(job, "running", started_at=started_at)
            if job.terminal or not todo:  # cancelled while the state was written
                break
            index = todo.popleft()
            self._inflight.add(job.id, index, asyncio.create_task(self._run_item(job, index)))

    async def _todo_of(self, job: Job) -> deque[int]:
        todo = self._todo.get(job.id)
        if todo is None:
            pending = await asyncio.to_thread(self.store.pending_indices, job.id)
            todo = deque(i for i in pending if not self._inflight.has(job.id, i))
            self._todo[job.id] = todo
        return todo

    async def _run_item(self, job: Job, index: int) -> None:
        try:
            result, failed, output = await self._execute(job, index)
        except RunnerBusy as err:
            _LOGGER.debug("runner busy (%s): item %s/%d waits", err, job.id, index)
            self._requeue(job, index)
            return
        finally:
            self._inflight.remove(job.id, index)
        if await self._writes.run(
            job.id, lambda: self._record(job, index, result, failed=failed, output=output)
        ):
            await self._prune()
        self._wake.set()

    async def _record(
        self,
        job: Job,
        index: int,
        result: dict[str, Any],
        *,
        failed: bool,
        output: ItemOutput | None,
    ) -> bool:
        """Store an item's result with the job's progress, then count it.

        Runs in the job's turn to write. True if this result ended the job.
        """
        if job.terminal:
            return False  # cancelled while the item ran: its result is not wanted
        prompt, completion = (output.prompt_tokens, output.completion_tokens) if output else (0, 0)
        progress: dict[str, Any] = {
            "done_items": job.done_items + 1,
            "failed_items": job.failed_items + int(failed),
            "prompt_tokens": job.prompt_tokens + prompt,
            "completion_tokens": job.completion_tokens + completion,
        }
        try:
            stored = await asyncio.to_thread(
                self.store.add_result, replace(job, **progress), index, result, failed=failed
            )
        except Exception:
            _LOGGER.exception(
                "cannot store the result of %s item %d; it will run again", job.id, index
            )
            self._requeue(job, index)
            return False
        if not stored:  # already had one (cannot happen unless run twice): count it once
            return False
        for name, value in progress.items():
            setattr(job, name, value)
        self._inflight.add_units(job.kind, job.work_units_per_item)
        if job.remaining_items > 0:
            if self._progress.changed(job.id):
                self._emit(job)
            return False
        state, changes = self._ending(job)
        return await self._write_state(job, state, **changes)

    async def _execute(
        self, job: Job, index: int
    ) -> tuple[dict[str, Any], bool, ItemOutput | None]:
        """Run one item; a failure of the item itself becomes its result."""
        try:
            payload = (await asyncio.to_thread(self.store.items, job.id, [index]))[index]
            if "file" in payload and job.kind == "read_text":
                # Images are read by the runner (bytes, not text); the path is checked here.
                path = await asyncio.to_thread(self._image_path, job, payload["file"])
                payload = {"path": str(path), "file": payload["file"]}
            elif "file" in payload:
                payload = {"input": await asyncio.to_thread(self._read_file, job, payload["file"])}
            output = await self.runner.run_item(job, payload)
        except (ItemFailed, ValueError, OSError) as err:
            return {"error": str(err)}, True, None
        except (RunnerBusy, asyncio.CancelledError):
            raise
        except Exception as err:
            _LOGGER.exception("job %s item %d failed unexpectedly", job.id, index)
            return {"error": f"internal error: {err}"}, True, None
        return output.result, False, output

    def _image_path(self, job: Job, relative: str) -> Path:
        assert job.folder is not None
        return image_file(resolve_folder(job.folder, self.job_folders), relative)

    def _read_file(self, job: Job, relative: str) -> str:
        # Checked again at read time: the allowed folders may have changed since.
        assert job.folder is not None
        return read_text_file(resolve_folder(job.folder, self.job_folders), relative)

    def _start_index_batch(self) -> None:
        """One index batch at a time, and only while no one's request is in flight on
        the node or in the engines (people first: a batch is short, so they wait for at
        most the one running when they came)."""
        if self.index_work is None or self._inflight.total >= self.max_inflight:
            return
        if self._people_waiting() or self.runner.external_requests(self._inflight.total) > 0:
            return  # the next control step looks again
        self.index_work.start_batch(self._inflight, self._wake.set)

    async def _run_filler(self) -> None:
        try:
            await self.runner.run_filler()
            self.filler_items += 1
        except RunnerBusy:
            self._busy_until = asyncio.get_running_loop().time() + BUSY_BACKOFF_S
        except Exception:
            _LOGGER.exception("filler work failed")
        finally:
            self._inflight.remove_filler()
            self._wake.set()

    def _requeue(self, job: Job, index: int) -> None:
        if not job.terminal:
            self._todo.setdefault(job.id, deque()).appendleft(index)
        loop = asyncio.get_running_loop()
        self._busy_until = loop.time() + BUSY_BACKOFF_S
        loop.call_later(BUSY_BACKOFF_S, self._wake.set)

    async def _finish(self, job: Job) -> None:
        state, changes = self._ending(job)
        if await self._set_state(job, state, **changes):
            await self._prune()

    def _ending(self, job: Job) -> tuple[JobState, dict[str, Any]]:
        """The state and record changes that end a job whose every item has a result."""
        changes: dict[str, Any] = {"finished_at": self.clock()}
        if job.failed_items >= job.total_items:
            changes["error"] = "every item failed; see the results for each item's error"
            return "failed", changes
        return "completed", changes

    async def _prune(self) -> None:
        if self._stopping:  # the store is about to close; a later end prunes
            return
        finished = sorted(
            (job for job in self.jobs.values() if job.terminal), key=lambda j: j.finished_at or 0
        )
        for job in finished[: max(0, len(finished) - MAX_FINISHED_KEPT)]:
            await self.delete(job)

    async def _set_state(self, job: Job, state: JobState, **changes: Any) -> bool:
        """Move a job to ``state`` (with ``changes`` to its record): stored, then shown.

        False, changing nothing, if the job has ended meanwhile: an ended job stays so.
        """
        return await self._writes.run(job.id, lambda: self._write_state(job, state, **changes))

    async def _write_state(self, job: Job, state: JobState, **changes: Any) -> bool:
        """``_set_state`` for a caller already in the job's turn to write."""
        if job.terminal:
            return False
        await asyncio.to_thread(self.store.update_job, replace(job, state=state, **changes))
        job.state = state
        for name, value in changes.items():
            setattr(job, name, value)
        self._emit(job)
        if state in TERMINAL_STATES:
            self._todo.pop(job.id, None)
            await self._inflight.cancel_job(job.id)  # a cancelled job's items stop in the engine
        return True

    def _emit(self, job: Job) -> None:
        self._publish("job", job.as_dict(self.clock()))
        self._progress.published(job.id)
