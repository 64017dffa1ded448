"""A winter week and a summer week on the twin: this scheduler vs "run each job at once".

    .venv/bin/python -m bench.heat_season [--seeds 5] [--plot docs/heat_winter_day.png]

Both schedulers get the same weather, the same room, the same thermostat and the same
jobs (about ten a day, 10-60 full-power minutes each, due 4-24 h after they arrive).
Reported per season: heat reuse (energy drawn while heat was wanted / all energy),
deadlines met, and the energy drawn while no heat was wanted, split into the idle floor
(paid by any machine that is on), deadline-forced work, and other work. Figures for this
scheduler are also given as ratios to the baseline measured in the same run.

A third run adds a household's documents for the index (bench/household_documents.py:
the archive found when the index is switched on, and what arrives each day), planned as
the node plans them (heat work, due 24 h after each change). For every run: the share of
the wanted heat asked of the node that useful work (jobs, indexing) covered, the hours
filler would have run had it been on (heat wanted, no useful work), and the documents
searchable within 24 h.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
import statistics

from bench.household_documents import EMBED_S_PER_CHUNK, household
from bench.season_model import Result, Season, simulate, summer, winter
from heatcompute_node.hardware.twin import DAY_S, HOUR_S

DAYS = 7


@dataclass(frozen=True, slots=True)
class Row:
    scheduler: str
    reuse: float
    met: int
    jobs: int
    total_kwh: float
    unwanted_idle_kwh: float
    unwanted_forced_kwh: float
    unwanted_other_kwh: float
    backup_kwh: float
    useful_share: float
    filler_h: float
    docs_in_time: int = 0
    docs: int = 0


def _row(name: str, results: list[Result]) -> Row:
    def mean(values: list[float]) -> float:
        return statistics.fmean(values)

    return Row(
        scheduler=name,
        reuse=mean([r.reuse for r in results]),
        met=sum(r.deadlines_met for r in results),
        jobs=sum(len(r.jobs) for r in results),
        total_kwh=mean([r.total_kwh for r in results]),
        unwanted_idle_kwh=mean([r.unwanted_idle_kwh for r in results]),
        unwanted_forced_kwh=mean([r.unwanted_forced_kwh for r in results]),
        unwanted_other_kwh=mean([r.unwanted_other_kwh for r in results]),
        backup_kwh=mean([r.backup_kwh for r in results]),
        useful_share=mean([r.useful_share for r in results]),
        filler_h=mean([r.filler_h for r in results]),
        docs_in_time=sum(r.index.searchable_in_time()[0] for r in results if r.index),
        docs=sum(r.index.searchable_in_time()[1] for r in results if r.index),
    )


def run_season(
    make: Callable[[int], Season], seeds: list[int], passage_s: float = EMBED_S_PER_CHUNK
) -> tuple[Row, Row, Row, list[Result], list[Result]]:
    ours, baseline, with_docs = [], [], []
    for seed in seeds:
        season = make(seed)
        ours.append(simulate(season, DAYS, seed, baseline=False))
        baseline.append(simulate(season, DAYS, seed, baseline=True))
        documents = household(seed, DAYS, embed_s=passage_s)
        with_docs.append(simulate(season, DAYS, seed, baseline=False, documents=documents))
    return (
        _row("heatcompute", ours),
        _row("run at once", baseline),
        _row("+ documents", with_docs),
        ours,
        with_docs,
    )


def print_table(season: str, ours: Row, base: Row, docs: Row) -> None:
    weeks = max(1, len(SEEDS))
    print(f"\n{season} week ({ours.jobs // weeks} jobs a week, mean of {weeks} seeds)")
    print(
        f"{'scheduler':<12} {'reuse':>7} {'deadlines':>11} {'total kWh':>10} "
        f"{'unwanted: idle':>15} {'forced':>7} {'other':>7} {'backup kWh':>11} "
        f"{'useful':>7} {'filler h':>9} {'docs in 24 h':>15}"
    )
    for row in (ours, base, docs):
        documents = f"{row.docs_in_time}/{row.docs}" if row.docs else "-"
        print(
            f"{row.scheduler:<12} {row.reuse:>7.1%} {row.met:>5}/{row.jobs:<5} "
            f"{row.total_kwh:>10.2f} {row.unwanted_idle_kwh:>15.2f} "
            f"{row.unwanted_forced_kwh:>7.2f} "
            f"{row.unwanted_other_kwh:>7.2f} {row.backup_kwh:>11.1f} "
            f"{row.useful_share:>7.1%} {row.filler_h:>9.1f} {documents:>15}"
        )
    unwanted_ours = ours.unwanted_forced_kwh + ours.unwanted_other_kwh
    unwanted_base = base.unwanted_forced_kwh + base.unwanted_other_kwh
    print(
        f"ratios vs baseline: reuse x{ours.reuse / base.reuse:.2f}, "
        f"work energy when no heat was wanted x{unwanted_ours / unwanted_base:.2f}, "
        f"total energy x{ours.total_kwh / base.total_kwh:.3f}, "
        f"backup heat x{ours.backup_kwh / base.backup_kwh:.3f}"
    )


def plot_day(
    result: Result, day: int, path: Path, title: str = "heatcompute on the twin: one winter day"
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trace = result.trace
    start, end = day * DAY_S, (day + 1) * DAY_S
    idx = [i for i, t in enumerate(trace.t) if start <= t < end]
    hours = [(trace.t[i] - start) / HOUR_S for i in idx]
    fig, (ax_power, ax_room, ax_jobs) = plt.subplots(
        3, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2, 2]}
    )
    ax_power.step(
        hours,
        [trace.target_w[i] for i in idx],
        where="post",
        label="heat target (W)",
        color="tab:red",
    )
    ax_power.plot(
        hours, [trace.power_w[i] for i in idx], label="node power (W)", color="tab:blue", lw=1
    )
    ax_power.set_ylabel("W")
    ax_power.legend(loc="upper right")
    ax_power.set_title(title)
    ax_room.plot(hours, [trace.room_c[i] for i in idx], label="room (°C)", color="tab:orange")
    ax_room.step(
        hours,
        [trace.setpoint_c[i] for i in idx],
        where="post",
        label="set point (°C)",
        color="grey",
        ls="--",
    )
    ax_room.set_ylabel("°C")
    ax_room.legend(loc="upper right")
    jobs = [j for j in result.jobs if j.created_at < end and (j.finished_at or end) > start]
    for row, job in enumerate(jobs):
        assert job.deadline is not None
        arrive = max(0.0, (job.created_at - start) / HOUR_S)
        due = min(24.0, (job.deadline - start) / HOUR_S)
        ax_jobs.broken_barh([(arrive, due - arrive)], (row - 0.3, 0.6), color="lightgrey")
        ran = [(trace.t[i] - start) / HOUR_S for i in idx if trace.running[i] == job.id]
        step_h = (trace.t[1] - trace.t[0]) / HOUR_S
        ax_jobs.broken_barh([(h, step_h) for h in ran], (row - 0.3, 0.6), color="tab:green")
        if (job.deadline - start) / HOUR_S <= 24:
            ax_jobs.plot([due, due], [row - 0.45, row + 0.45], color="black", lw=2)
    step_h = (trace.t[1] - trace.t[0]) / HOUR_S
    indexing = [(trace.t[i] - start) / HOUR_S for i in idx if trace.indexing[i]]
    if indexing:  # the document index's backlog, one row above the jobs
        row = len(jobs)
        ax_jobs.broken_barh([(h, step_h) for h in indexing], (row - 0.3, 0.6), color="tab:purple")
        ax_jobs.text(0.2, row + 0.4, "documents indexed", fontsize=8, color="tab:purple")
    ax_jobs.set_ylabel("jobs")
    ax_jobs.set_yticks([])
    ax_jobs.set_xlabel("hour of day (jobs: grey from arrival to deadline |, green while running)")
    ax_jobs.set_xlim(0, 24)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"\nplot of winter day {day + 1}: {path}")


def _by_day(results: list[Result]) -> list[float]:
    """Mean over the weeks of each day's useful share (the days of the week proper)."""
    weeks = [r.useful_share_by_day()[:DAYS] for r in results]
    return [statistics.fmean(day) for day in zip(*weeks, strict=True)]


def print_days(season: str, ours: list[Result], docs: list[Result]) -> None:
    """The useful share day by day: the archive is indexed in the first hours."""
    days_ours, days_docs = _by_day(ours), _by_day(docs)
    print(f"{season}, useful share by day (without / with documents):")
    print(
        "  "
        + "  ".join(
            f"day {day + 1}: {a:.0%} / {b:.0%}"
            for day, (a, b) in enumerate(zip(days_ours, days_docs, strict=False))
        )
    )


SEEDS: list[int] = []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5, help="weeks per season (default 5)")
    parser.add_argument("--plot", type=Path, help="write a plot of one winter day here (PNG)")
    parser.add_argument("--plot-day", type=int, default=2, help="which day of the first week")
    parser.add_argument(
        "--plot-documents", type=Path, help="plot the first winter day with documents here"
    )
    parser.add_argument(
        "--passage-s",
        type=float,
        default=EMBED_S_PER_CHUNK,
        help=f"full-power seconds to index one passage (default {EMBED_S_PER_CHUNK})",
    )
    args = parser.parse_args()
    SEEDS[:] = list(range(1, args.seeds + 1))
    win_ours, win_base, win_docs, win_results, win_doc_results = run_season(
        winter, SEEDS, args.passage_s
    )
    print_table("winter", win_ours, win_base, win_docs)
    print_days("winter", win_results, win_doc_results)
    sum_ours, sum_base, sum_docs, _, _ = run_season(summer, SEEDS, args.passage_s)
    print_table("summer", sum_ours, sum_base, sum_docs)
    if args.plot is not None:
        plot_day(win_results[0], args.plot_day, args.plot)
    if args.plot_documents is not None:
        plot_day(
            win_doc_results[0],
            0,
            args.plot_documents,
            "the first winter day with a household's documents:\n"
            "the archive is indexed in the first hours, then the node idles while heat is wanted",
        )


if __name__ == "__main__":
    main()
