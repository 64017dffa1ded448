"""Which background work runs now, and how hard the governor should push it.

- Heat wanted (and background jobs enabled): every job may run, the most urgent first
  (deadline-forced, then priority, then earliest deadline, then oldest), at the
  intensity the heat target asks for.
- No heat wanted (or background jobs switched off): only jobs that would otherwise miss
  their deadline run, least slack first, at full power so they are done soonest.
- Filler: only with heat wanted, filler enabled, and no job that could run. The document
  index's backlog is planned as one more job (kind ``index``, low priority, due by its
  freshness deadline: ``index_work.py``), so while it is not empty it is the work heat
  buys instead of filler.

Remaining work is estimated from measured throughput: "intensity-seconds per work unit"
(a unit is one token of ``max_tokens`` for text jobs, one text for embeddings), learnt
while jobs run. A job is forced once the jobs due before it plus itself would, at full
power and with a safety factor, no longer fit before its deadline. Once forced it stays
forced until done, so it doesn't flap between running and waiting at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .jobs import PRIORITY_RANK, Job, JobKind

type BackgroundReason = Literal["idle", "heat", "deadline", "filler"]

# Until something is measured: 10 tokens/s at full power (a 7B model on a few cores),
# 5 embeddings/s, an image read every 2 s and a document chunk indexed (read, cut,
# embedded, stored) every second. Pessimistic on purpose: an early start only
# costs heat that wasn't asked for, a late one costs a deadline.
PRIOR_SECONDS_PER_UNIT: Mapping[JobKind, float] = {
    "chat": 0.1,
    "completions": 0.1,
    "embeddings": 0.2,
    "read_text": 2.0,
    "index": 1.0,
}


class ThroughputEstimator:
    """Full-power seconds per work unit, per job kind, learnt from what ran."""

    def __init__(
        self,
        prior: Mapping[JobKind, float] = PRIOR_SECONDS_PER_UNIT,
        *,
        alpha: float = 0.3,
        min_window_s: float = 5.0,
    ) -> None:
        self._estimate: dict[JobKind, float] = dict(prior)
        self._measured: set[JobKind] = set()
        self._alpha = alpha
        self._min_window_s = min_window_s
        self._window: dict[JobKind, list[float]] = {}
        """kind -> [intensity-seconds, units, wall seconds] not yet folded in."""

    def seconds_per_unit(self, kind: JobKind) -> float:
        return self._estimate[kind]

    def measured(self, kind: JobKind) -> bool:
        return kind in self._measured

    def observe(self, kind: JobKind, *, intensity_s: float, units: float, wall_s: float) -> None:
        """Work done by one kind over an interval in which it alone ran in the background."""
        window = self._window.setdefault(kind, [0.0, 0.0, 0.0])
        window[0] += intensity_s
        window[1] += units
        window[2] += wall_s
        if window[2] < self._min_window_s or window[1] <= 0 or window[0] <= 0:
            return
        sample = window[0] / window[1]
        if kind in self._measured:
            self._estimate[kind] += self._alpha * (sample - self._estimate[kind])
        else:  # the prior was a guess: the first measurement replaces it
            self._estimate[kind] = sample
            self._measured.add(kind)
        self._window[kind] = [0.0, 0.0, 0.0]

    def remaining_s(self, job: Job) -> float:
        """Full-power seconds the job still needs."""
        return job.remaining_items * job.work_units_per_item * self._estimate[job.kind]


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    run: tuple[str, ...] = ()
    """Ids of the jobs that may start items now, most urgent first."""
    forced: frozenset[str] = frozenset()
    """The subset that runs because of its deadline."""
    filler: bool = False

    @property
    def reason(self) -> BackgroundReason:
        if self.forced:
            return "deadline"
        if self.run:
            return "heat"
        return "filler" if self.filler else "idle"


IDLE_PLAN = Plan()


@dataclass(slots=True)
class Planner:
    estimator: ThroughputEstimator = field(default_factory=ThroughputEstimator)
    safety_factor: float = 1.5
    """Remaining work is taken as this much longer than estimated."""
    margin_s: float = 120.0
    """... plus this: a forced job starts at least this long before it must."""
    _forced: set[str] = field(default_factory=set)

    def plan(
        self,
        jobs: Sequence[Job],
        *,
        now: float,
        heat_wanted: bool,
        jobs_allowed: bool,
        filler_allowed: bool,
    ) -> Plan:
        active = [job for job in jobs if not job.terminal]
        self._forced &= {job.id for job in active}
        self._force_what_would_be_late(active, now)
        forced = [job for job in active if job.id in self._forced]
        forced.sort(key=lambda job: self._slack(job, now))
        run = [job.id for job in forced]
        if heat_wanted and jobs_allowed:
            others = [job for job in active if job.id not in self._forced]
            others.sort(
                key=lambda job: (
                    PRIORITY_RANK[job.priority],
                    job.deadline if job.deadline is not None else float("inf"),
                    job.created_at,
                )
            )
            run += [job.id for job in others]
        return Plan(
            run=tuple(run),
            forced=frozenset(self._forced),
            filler=heat_wanted and filler_allowed and not active,
        )

    def _slack(self, job: Job, now: float) -> float:
        assert job.deadline is not None
        return job.deadline - now - self.estimator.remaining_s(job) * self.safety_factor

    def _force_what_would_be_late(self, jobs: Sequence[Job], now: float) -> None:
        """Earliest deadline first: a job is late if it and all due before it don't fit."""
        due = sorted(
            (job for job in jobs if job.deadline is not None), key=lambda j: j.deadline or 0
        )
        needed = 0.0
        for index, job in enumerate(due):
            assert job.deadline is not None
            needed += self.estimator.remaining_s(job) * self.safety_factor
            if job.deadline - now - needed <= self.margin_s:
                self._forced.update(j.id for j in due[: index + 1])
