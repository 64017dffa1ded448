"""Two simulated days of bench/heat_season.py's model: the policy's claims hold in small.

Not a benchmark (no timing): it checks on a short run what the benchmark measures on
weeks, so a change that breaks deferral or deadlines fails here first.
"""

from __future__ import annotations

from bench.season_model import simulate, summer, winter


def test_winter_defers_jobs_into_wanted_heat_and_meets_every_deadline() -> None:
    ours = simulate(winter(1), 2, 1, baseline=False)
    base = simulate(winter(1), 2, 1, baseline=True)
    assert ours.deadlines_met == len(ours.jobs) > 10
    assert ours.reuse > base.reuse
    assert ours.unwanted_other_kwh == 0.0  # no work without heat unless a deadline forced it
    assert base.unwanted_other_kwh > 0.0
    # The same work was done either way.
    assert abs(ours.total_kwh - base.total_kwh) < 0.02 * base.total_kwh


def test_summer_runs_jobs_only_when_their_deadline_forces_them() -> None:
    ours = simulate(summer(2), 2, 2, baseline=False)
    assert ours.deadlines_met == len(ours.jobs)
    assert ours.unwanted_other_kwh == 0.0
    assert ours.unwanted_forced_kwh > 0.0
