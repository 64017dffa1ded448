"""The document index's backlog as heat work: one standing job the planner schedules.

The files waiting to be indexed are useful, deferrable work, exactly what heat should
buy. They are shown to the planner as a job of kind ``index``: low priority (people's
jobs go first), due by the freshness deadline (the oldest change not yet searchable +
``index_freshness_h``), its remaining work the backlog's estimated chunks. So the
planner runs it while heat is wanted, and with no heat wanted only once its deadline
forces it, like any job; and filler, which only runs with no job at all, never runs
while the backlog is not empty.

The work runs in bounded batches (``index_some``), one at a time. The index's embedding
worker has no knobs of its own, so the governor's knobs reach index work here, as they
reach the embedding jobs in ``llm_runner.py``: after a batch that took t seconds the
next one waits t·(1−u)/u, u being the CPU share the knobs give background work. A batch
is small (16 chunks), and none starts while someone's request is in flight on the node:
the executor asks before it starts one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import logging
import time
from typing import Any, Literal, Protocol

from ..index.backlog import IndexBacklog, IndexProgress, iso
from ..index.embed import IndexUnavailableError
from .executor_state import InflightTable
from .governor import PAUSED, BackgroundKnobs
from .jobs import Job
from .scheduling import Plan

_LOGGER = logging.getLogger(__name__)

type IndexState = Literal["idle", "waiting", "running"]
"""idle: nothing to index; waiting: a backlog, not run now; running: batches run."""
type IndexReason = Literal["heat", "deadline"]

INDEX_JOB_PREFIX = "index_"
BATCH_CHUNKS = 16
# A batch that failed because the index can't work (no embedding model): ask again later.
UNAVAILABLE_BACKOFF_S = 60.0
FAILED_BACKOFF_S = 1.0
_MAX_PAUSE_S = 5.0


class DocumentBacklog(Protocol):
    """What heat control needs of the document index (``index/document_index.py``)."""

    def backlog(self) -> IndexBacklog: ...

    async def index_some(self, max_chunks: int) -> IndexProgress: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexWorkFigures:
    """What the status's ``work`` section shows of index work."""

    state: IndexState = "idle"
    reason: IndexReason | None = None
    deadline: float | None = None
    """Unix time by which the backlog must be searchable."""
    chunks_indexed: int = 0
    """Chunks embedded by heat work since the node started."""

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.state,
            "index_reason": self.reason,
            "index_chunks_indexed": self.chunks_indexed,
        }


class IndexWork:
    """The backlog as a job for the planner, and its batches under the governor's knobs.

    Also a ``BackgroundControl``: the governor's knobs reach it with every engine's.
    """

    def __init__(
        self,
        index: DocumentBacklog,
        *,
        freshness_s: float,
        engine_threads: Callable[[], int],
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        batch_chunks: int = BATCH_CHUNKS,
    ) -> None:
        self.index = index
        self.freshness_s = freshness_s
        self.batch_chunks = batch_chunks
        self.knobs: BackgroundKnobs = PAUSED
        self.chunks_indexed = 0
        self._engine_threads = engine_threads
        self._clock = clock
        self._monotonic = monotonic
        self._job: Job | None = None
        self._episodes = 0
        self._unavailable_until = 0.0
        self._knobs_changed = asyncio.Event()
        self._reported: tuple[IndexState, IndexReason | None] = ("idle", None)
        self._reason: IndexReason = "heat"
        self._in_batch = False
        self._batches = 0

    # --- the governor's knobs -------------------------------------------------------

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> object:
        self.knobs = BackgroundKnobs(
            max_background=max_background or 0,
            background_threads=background_threads or 1,
            duty_cycle=duty_cycle or 0.0,
        )
        self._knobs_changed.set()  # a pause ends early when the share grows
        return None

    @property
    def share(self) -> float:
        """The CPU share the knobs give background work (threads × duty / threads)."""
        knobs = self.knobs
        if knobs.paused:
            return 0.0
        threads = max(1, self._engine_threads())
        return min(1.0, knobs.background_threads * knobs.duty_cycle / threads)

    # --- the job the planner sees ----------------------------------------------------

    def job(self) -> Job | None:
        """The backlog as a job (the same object while the backlog lasts), or None."""
        backlog = self.index.backlog()
        if backlog.empty or self._monotonic() < self._unavailable_until:
            # The backlog empties within the batch that does its last file: the job ends
            # (and the "idle" event goes out) once that batch is counted.
            if backlog.empty and not self._in_batch:
                self._job = None
            return None
        if self._job is None:
            self._episodes += 1
            self._job = Job(
                id=f"{INDEX_JOB_PREFIX}{self._episodes}",
                kind="index",
                priority="low",
                created_at=self._clock(),
                total_items=0,
            )
        job = self._job
        # The freshness clock starts when the change happened, or when this node first
        # saw it if that is later: an archive of old files put in a folder today (or
        # found when the index is first switched on) is due a day from now, not long ago.
        changed = backlog.oldest_change
        since = job.created_at if changed is None else max(changed, job.created_at)
        job.deadline = since + self.freshness_s
        # Removals are cheap but not free: a backlog is never estimated as no work.
        job.total_items = job.done_items + max(1, backlog.chunks_estimate)
        return job

    @property
    def current(self) -> Job | None:
        """The job as last shown to the planner (None: no backlog)."""
        return self._job

    def is_index_job(self, job_id: str) -> bool:
        return self._job is not None and job_id == self._job.id

    def back_off(self, seconds: float) -> None:
        """Keep the backlog from the planner for a while (the index could not work)."""
        self._unavailable_until = self._monotonic() + seconds

    # --- what status and events show ----------------------------------------------------

    def figures(self, plan: Plan) -> IndexWorkFigures:
        job = self._job
        if job is None:
            return IndexWorkFigures(chunks_indexed=self.chunks_indexed)
        if job.id in plan.run:
            self._reason = "deadline" if job.id in plan.forced else "heat"
        running = job.id in plan.run or self._in_batch
        return IndexWorkFigures(
            state="running" if running else "waiting",
            reason=self._reason if running else None,
            deadline=job.deadline,
            chunks_indexed=self.chunks_indexed,
        )

    def report(self, plan: Plan) -> dict[str, Any] | None:
        """An ``index`` event's data when the work's state or reason changed, else None."""
        figures = self.figures(plan)
        key = (figures.state, figures.reason)
        if key == self._reported:
            return None
        self._reported = key
        return {
            "state": figures.state,
            "reason": figures.reason,
            "deadline": iso(figures.deadline),
            "chunks_indexed": figures.chunks_indexed,
            "backlog": self.index.backlog().as_json(self.freshness_s),
        }

    # --- running ---------------------------------------------------------------------

    def on_plan(self, plan: Plan, inflight: InflightTable) -> dict[str, Any] | None:
        """Take a new plan: the job waits or runs; an ``index`` event's data if that changed."""
        job = self._job
        if job is not None and not inflight.count(job.id):
            job.state = "running" if job.id in plan.run else "queued"
        return self.report(plan)

    def start_batch(self, inflight: InflightTable, wake: Callable[[], None]) -> None:
        """Start a batch as the job's item in flight, unless one runs; ``wake`` at its end."""
        job = self._job
        if job is None or inflight.count(job.id):
            return
        job.state = "running"
        if job.started_at is None:
            job.started_at = self._clock()
        self._batches += 1
        number = self._batches
        inflight.add(job.id, number, asyncio.create_task(self._batch(job, number, inflight, wake)))

    async def _batch(
        self, job: Job, number: int, inflight: InflightTable, wake: Callable[[], None]
    ) -> None:
        try:
            progress = await self.run_batch()
        except Exception:  # a broken file is the index's to report; this is worse
            _LOGGER.exception("index work failed")
            self.back_off(FAILED_BACKOFF_S)
            progress = None
        finally:
            inflight.remove(job.id, number)
        if progress is not None:
            # Counted like a job's items: the throughput estimate learns from it.
            inflight.add_units("index", float(progress.chunks_embedded))
        wake()

    async def run_batch(self) -> IndexProgress | None:
        """One batch, then the pause that holds it to the knobs' share. None: no index work
        can be done now (no embedding model): the backlog waits a minute before the
        planner sees it again."""
        started = self._monotonic()
        self._in_batch = True
        try:
            progress = await self.index.index_some(self.batch_chunks)
        except IndexUnavailableError:
            self.back_off(UNAVAILABLE_BACKOFF_S)
            return None
        finally:
            self._in_batch = False
        self.chunks_indexed += progress.chunks_embedded
        if self._job is not None:
            self._job.done_items += progress.chunks_embedded
        await self._pause(self._monotonic() - started)
        return progress

    async def _pause(self, busy_s: float) -> None:
        """Wait busy_s·(1−u)/u (at most 5 s), u followed as the governor moves it."""
        start = self._monotonic()
        while True:
            share = self.share
            if share >= 1.0:
                return
            pause = _MAX_PAUSE_S if share <= 0 else busy_s * (1 - share) / share
            left = start + min(pause, _MAX_PAUSE_S) - self._monotonic()
            if left <= 0:
                return
            self._knobs_changed.clear()
            try:
                async with asyncio.timeout(left):
                    await self._knobs_changed.wait()
            except TimeoutError:
                return
