"""The document index's backlog as the planner sees it (heat/index_work.py + scheduling.py).

Pure planning on a clock the test moves: the backlog is a value the test sets (the
index's own behaviour is tested with the real index in test_index_heat.py and the index's
tests). What is checked: the backlog runs with heat and instead of filler, waits without
heat until its freshness deadline forces it, and its deadline counts from when the node
first saw a change, not from an old file's mtime.
"""

from __future__ import annotations

from dataclasses import dataclass

from heatcompute_node.heat.governor import knobs_for
from heatcompute_node.heat.index_work import IndexWork
from heatcompute_node.heat.jobs import Job
from heatcompute_node.heat.scheduling import Planner
from heatcompute_node.index.backlog import EMPTY_BACKLOG, IndexBacklog, IndexProgress

DAY_S = 86_400.0


@dataclass
class Backlog:
    """What the index reports; set by the test (``DocumentBacklog``)."""

    now: float = 1_000_000.0
    files: int = 0
    chunks: int = 0
    oldest_change: float | None = None

    def backlog(self) -> IndexBacklog:
        if not self.files:
            return EMPTY_BACKLOG
        return IndexBacklog(
            files_pending=self.files,
            files_removed=0,
            bytes_pending=self.chunks * 600,
            chunks_estimate=self.chunks,
            oldest_change=self.oldest_change,
            scanned_at=self.now,
        )

    async def index_some(self, max_chunks: int) -> IndexProgress:
        raise AssertionError("planning only")


def work_on(backlog: Backlog, freshness_s: float = DAY_S) -> IndexWork:
    return IndexWork(
        backlog,
        freshness_s=freshness_s,
        engine_threads=lambda: 4,
        clock=lambda: backlog.now,
        monotonic=lambda: backlog.now,
    )


def plannable(work: IndexWork, jobs: list[Job] | None = None) -> list[Job]:
    job = work.job()
    return [*(jobs or []), *([job] if job is not None else [])]


def test_with_heat_the_backlog_runs_instead_of_filler() -> None:
    backlog = Backlog(files=3, chunks=40, oldest_change=1_000_000.0 - 60)
    work, planner = work_on(backlog), Planner()
    plan = planner.plan(
        plannable(work), now=backlog.now, heat_wanted=True, jobs_allowed=True, filler_allowed=True
    )
    job = work.current
    assert job is not None
    assert job.kind == "index"
    assert plan.run == (job.id,)
    assert plan.filler is False
    assert plan.reason == "heat"
    assert work.figures(plan).state == "running"
    # Once the backlog is indexed, filler (if on) is what heat buys.
    backlog.files = backlog.chunks = 0
    plan = planner.plan(
        plannable(work), now=backlog.now, heat_wanted=True, jobs_allowed=True, filler_allowed=True
    )
    assert plan.run == ()
    assert plan.filler is True
    assert work.figures(plan).state == "idle"


def test_people_s_jobs_go_before_the_backlog() -> None:
    backlog = Backlog(files=1, chunks=5, oldest_change=1_000_000.0)
    work, planner = work_on(backlog), Planner()
    job = Job(
        id="job_1",
        kind="embeddings",
        created_at=backlog.now,
        total_items=3,
        priority="low",
        deadline=backlog.now + DAY_S,
    )
    plan = planner.plan(
        plannable(work, [job]),
        now=backlog.now,
        heat_wanted=True,
        jobs_allowed=True,
        filler_allowed=False,
    )
    index_job = work.current
    assert index_job is not None
    assert plan.run == ("job_1", index_job.id)


def test_without_heat_the_backlog_waits_until_its_deadline_forces_it() -> None:
    start = 1_000_000.0
    backlog = Backlog(now=start, files=10, chunks=600, oldest_change=start)
    work, planner = work_on(backlog, freshness_s=3600.0), Planner()
    # 600 chunks at the prior's full-power second each, ×1.5, plus 2 minutes of margin:
    # forced once fewer than 1020 s are left before the deadline.
    first_forced = None
    for step in range(0, 3600, 10):
        backlog.now = start + step
        plan = planner.plan(
            plannable(work),
            now=backlog.now,
            heat_wanted=False,
            jobs_allowed=True,
            filler_allowed=True,
        )
        if plan.run:
            first_forced = step
            assert plan.reason == "deadline"
            assert work.figures(plan).reason == "deadline"
            break
        assert work.figures(plan).state == "waiting"
        assert plan.filler is False
    assert first_forced is not None
    assert 3600 - 600 * 1.5 - 120 - 10 <= first_forced <= 3600 - 600 * 1.5 - 120


def test_an_old_file_found_now_is_due_a_day_from_now() -> None:
    backlog = Backlog(files=1, chunks=2, oldest_change=1_000_000.0 - 365 * DAY_S)
    work = work_on(backlog)
    job = work.job()
    assert job is not None
    assert job.deadline == backlog.now + DAY_S
    # A change after the node first saw the backlog counts from the change.
    backlog.oldest_change = backlog.now + 50
    assert job is work.job()
    assert job.deadline == backlog.now + 50 + DAY_S


def test_a_new_backlog_is_a_new_job() -> None:
    """A backlog forced once and emptied doesn't pass its forcing on to the next one."""
    backlog = Backlog(files=1, chunks=2, oldest_change=1_000_000.0)
    work = work_on(backlog)
    first = work.job()
    backlog.files = 0
    assert work.job() is None
    backlog.files = 1
    second = work.job()
    assert first is not None
    assert second is not None
    assert first.id != second.id


def test_index_work_paces_itself_by_the_governor_s_knobs() -> None:
    work = work_on(Backlog())
    assert work.share == 0.0  # paused until the governor says otherwise
    for intensity in (0.1, 0.35, 0.8, 1.0):
        knobs = knobs_for(intensity, n_threads=4, max_parallel=4)
        work.set_knobs(
            max_background=knobs.max_background,
            background_threads=knobs.background_threads,
            duty_cycle=knobs.duty_cycle,
        )
        assert abs(work.share - intensity) < 0.01
