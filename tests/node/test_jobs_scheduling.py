"""The scheduling policy on its own: who runs with and without heat, deadlines, estimates."""

from __future__ import annotations

import pytest

from heatcompute_node.heat.jobs import Job, JobPriority
from heatcompute_node.heat.scheduling import Planner, ThroughputEstimator

NOW = 1_000_000.0


def job(
    job_id: str,
    *,
    items: int = 10,
    deadline_in: float | None = None,
    priority: JobPriority = "normal",
    created: float = 0.0,
    max_tokens: int = 100,
) -> Job:
    return Job(
        id=job_id,
        kind="completions",
        priority=priority,
        deadline=None if deadline_in is None else NOW + deadline_in,
        created_at=NOW - 1000 + created,
        total_items=items,
        params={"max_tokens": max_tokens},
    )


def planner(seconds_per_token: float = 0.1) -> Planner:
    estimator = ThroughputEstimator(
        {"chat": 0.1, "completions": seconds_per_token, "embeddings": 0.2}
    )
    return Planner(estimator=estimator, safety_factor=1.5, margin_s=120.0)


def test_with_heat_everything_runs_by_priority_deadline_age() -> None:
    jobs = [
        job("old-low", priority="low"),
        job("new", created=5),
        job("old", created=1),
        job("due", deadline_in=86_400, created=9),
        job("high", priority="high", created=8),
    ]
    plan = planner().plan(jobs, now=NOW, heat_wanted=True, jobs_allowed=True, filler_allowed=True)
    assert plan.run == ("high", "due", "old", "new", "old-low")
    assert plan.reason == "heat"
    assert not plan.filler  # jobs are queued


def test_without_heat_only_jobs_that_would_be_late_run() -> None:
    # 10 items x 100 tokens x 0.1 s = 100 s of work, 150 s with the safety factor.
    jobs = [job("relaxed", deadline_in=3600), job("tight", deadline_in=260), job("none")]
    plan = planner().plan(jobs, now=NOW, heat_wanted=False, jobs_allowed=True, filler_allowed=True)
    assert plan.run == ("tight",)
    assert plan.forced == {"tight"}
    assert plan.reason == "deadline"
    assert (
        planner()
        .plan(
            [job("ok", deadline_in=280)],
            now=NOW,
            heat_wanted=False,
            jobs_allowed=True,
            filler_allowed=False,
        )
        .run
        == ()
    )


def test_jobs_due_earlier_are_forced_with_a_later_one_that_needs_them_done() -> None:
    """Each fits alone; together they don't: both run now, least slack first."""
    jobs = [job("b", deadline_in=400, items=12), job("a", deadline_in=300)]
    plan = planner().plan(jobs, now=NOW, heat_wanted=False, jobs_allowed=True, filler_allowed=False)
    assert set(plan.run) == {"a", "b"}
    # slack a = 300 - 150 = 150; slack b = 400 - 180 = 220
    assert plan.run == ("a", "b")


def test_forced_stays_forced_until_done() -> None:
    p = planner()
    tight = job("tight", deadline_in=260)
    assert p.plan([tight], now=NOW, heat_wanted=False, jobs_allowed=True, filler_allowed=False).run
    tight.done_items = 9  # most of it done: on its own it would have lots of slack now
    assert p.plan([tight], now=NOW, heat_wanted=False, jobs_allowed=True, filler_allowed=False).run
    tight.state = "completed"
    assert (
        p.plan([tight], now=NOW, heat_wanted=False, jobs_allowed=True, filler_allowed=False).run
        == ()
    )


def test_background_jobs_off_still_runs_forced_jobs() -> None:
    jobs = [job("tight", deadline_in=200), job("free")]
    plan = planner().plan(jobs, now=NOW, heat_wanted=True, jobs_allowed=False, filler_allowed=True)
    assert plan.run == ("tight",)
    assert not plan.filler


def test_filler_needs_heat_permission_and_an_empty_queue() -> None:
    p = planner()
    assert p.plan([], now=NOW, heat_wanted=True, jobs_allowed=True, filler_allowed=True).filler
    assert not p.plan([], now=NOW, heat_wanted=False, jobs_allowed=True, filler_allowed=True).filler
    assert not p.plan([], now=NOW, heat_wanted=True, jobs_allowed=True, filler_allowed=False).filler
    done = job("done")
    done.state = "completed"
    plan = p.plan([done], now=NOW, heat_wanted=True, jobs_allowed=True, filler_allowed=True)
    assert plan.filler
    assert plan.reason == "filler"


def test_the_estimator_replaces_its_prior_then_follows_measurements() -> None:
    estimator = ThroughputEstimator({"chat": 1.0, "completions": 1.0, "embeddings": 1.0})
    assert not estimator.measured("completions")
    # 4 s at half intensity, 100 tokens: not a full window yet (5 s)
    estimator.observe("completions", intensity_s=2.0, units=100, wall_s=4.0)
    assert estimator.seconds_per_unit("completions") == 1.0
    estimator.observe("completions", intensity_s=0.5, units=0, wall_s=1.0)
    assert estimator.measured("completions")
    assert estimator.seconds_per_unit("completions") == pytest.approx(2.5 / 100)
    estimator.observe("completions", intensity_s=5.0, units=100, wall_s=5.0)
    assert estimator.seconds_per_unit("completions") == pytest.approx(0.025 + 0.3 * (0.05 - 0.025))
    j = job("x", items=4, max_tokens=10)
    assert estimator.remaining_s(j) == pytest.approx(
        4 * 10 * estimator.seconds_per_unit("completions")
    )
    assert estimator.seconds_per_unit("embeddings") == 1.0
