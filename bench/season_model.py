"""A simulated week of a room heated by a heatcompute node, for bench/heat_season.py.

Everything physical comes from the node's own twin (RoomModel: the exact RC step);
everything that decides comes from the node's own code: the Planner (with its
ThroughputEstimator) picks the jobs, the Governor turns the setpoint into intensity.
What is simulated here: the weather, the sun, Home Assistant's thermostat (a PI on room
temperature, like the integration's outer loop), a backup heater that supplies what the
node doesn't, the engine (work done in proportion to intensity), the jobs arriving, and,
if given, a household's documents for the index (bench/season_index.py; the planner
sees their backlog through the node's own IndexWork).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
import math
import random

from bench.household_documents import Document
from bench.season_index import SimIndex, index_job, index_work
from heatcompute_node.hardware.twin import DAY_S, HOUR_S, OutsideProfile, RoomModel, RoomParams
from heatcompute_node.heat.governor import Governor, GovernorParams
from heatcompute_node.heat.jobs import Job, JobKind
from heatcompute_node.heat.scheduling import Planner, ThroughputEstimator

IDLE_W, MAX_W = 15.0, 200.0
BACKUP_W = 1500.0
TOKENS_PER_S = 40.0
"""What the simulated engine really does at full intensity (the planner must learn it)."""
MAX_TOKENS = 256
INNER_DT_S = 10.0
OUTER_DT_S = 60.0
# The twin's default room: 20 m² in an older, moderately insulated house (C/UA = 17 h).
ROOM = RoomParams()


@dataclass(frozen=True, slots=True)
class Season:
    name: str
    outside: OutsideProfile
    sun_peak_w: Callable[[int], float]
    """Solar gain at noon on a given day (0 = overcast)."""
    setpoint_day_c: float = 20.5
    setpoint_night_c: float = 18.0


def winter(seed: int) -> Season:
    rng = random.Random(seed)
    lows = [rng.uniform(-6.0, 2.0) for _ in range(8)]
    # Mostly grey days; now and then a sunny one that warms the room in the afternoon.
    suns = [rng.choice([0.0, 0.0, 200.0, 800.0]) for _ in range(8)]

    def outside(t: float) -> float:
        day = int(t // DAY_S)
        phase = 2 * math.pi * (t / HOUR_S - 5.0) / 24.0
        return lows[day % 8] + 4.0 * (1 - math.cos(phase))

    return Season("winter", outside, lambda day: suns[day % 8])


def summer(seed: int) -> Season:
    rng = random.Random(seed)
    lows = [rng.uniform(12.0, 17.0) for _ in range(8)]

    def outside(t: float) -> float:
        day = int(t // DAY_S)
        phase = 2 * math.pi * (t / HOUR_S - 5.0) / 24.0
        return lows[day % 8] + 6.0 * (1 - math.cos(phase))

    return Season("summer", outside, lambda _day: 700.0)


def setpoint_c(season: Season, t: float) -> float:
    hour = (t % DAY_S) / HOUR_S
    return season.setpoint_day_c if 6.5 <= hour < 22.5 else season.setpoint_night_c


def gains_w(season: Season, t: float) -> float:
    """Sun through the window (8-16 h) and a person working (8-18 h on weekdays)."""
    day, hour = int(t // DAY_S), (t % DAY_S) / HOUR_S
    sun = season.sun_peak_w(day) * max(0.0, math.sin(math.pi * (hour - 8.0) / 8.0))
    person = 100.0 if 8.0 <= hour < 18.0 and day % 7 < 5 else 0.0
    return sun + person


@dataclass(frozen=True, slots=True)
class JobArrival:
    at_s: float
    items: int
    deadline_in_s: float


def arrivals(seed: int, days: int) -> list[JobArrival]:
    """~10 jobs a day: 10-60 full-power minutes each, due 4-24 h after they arrive."""
    rng = random.Random(seed)
    jobs, t = [], rng.expovariate(10 / DAY_S)
    while t < days * DAY_S - DAY_S / 2:
        work_s = rng.uniform(600.0, 3600.0)
        items = max(1, round(work_s * TOKENS_PER_S / MAX_TOKENS))
        jobs.append(JobArrival(t, items, rng.uniform(4.0, 24.0) * HOUR_S))
        t += rng.expovariate(10 / DAY_S)
    return jobs


class Thermostat:
    """Home Assistant's outer loop: PI on room temperature -> heat demand in W."""

    def __init__(self, kp_w_per_k: float = 500.0, ti_s: float = 1800.0) -> None:
        self.kp, self.ki = kp_w_per_k, kp_w_per_k / ti_s
        self.integral = 0.0

    def demand_w(self, error_k: float, dt_s: float) -> float:
        raw = self.kp * error_k + self.integral
        if 0.0 < raw < BACKUP_W or (raw <= 0 and error_k > 0) or (raw >= BACKUP_W and error_k < 0):
            self.integral = min(BACKUP_W, max(0.0, self.integral + self.ki * error_k * dt_s))
        demand = min(BACKUP_W, max(0.0, self.kp * error_k + self.integral))
        return demand if demand >= 20.0 else 0.0  # below a minimum it isn't worth asking


@dataclass
class Trace:
    """One sample per outer step, for the plot."""

    t: list[float] = field(default_factory=list)
    target_w: list[float] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    room_c: list[float] = field(default_factory=list)
    setpoint_c: list[float] = field(default_factory=list)
    running: list[str | None] = field(default_factory=list)
    indexing: list[bool] = field(default_factory=list)


@dataclass
class Result:
    total_kwh: float = 0.0
    wanted_kwh: float = 0.0
    unwanted_idle_kwh: float = 0.0
    unwanted_forced_kwh: float = 0.0
    unwanted_other_kwh: float = 0.0
    backup_kwh: float = 0.0
    asked_kwh: float = 0.0
    """Heat asked of the node while heat was wanted (the target, up to its max power)."""
    useful_kwh: float = 0.0
    """... of it delivered by useful work (jobs, indexing): the power of the steps in
    which such work ran, up to the target."""
    filler_h: float = 0.0
    """Hours with heat wanted and no useful work: what filler would run, if switched on."""
    jobs: list[Job] = field(default_factory=list)
    index: SimIndex | None = None
    trace: Trace = field(default_factory=Trace)

    asked_by_day: list[float] = field(default_factory=list)
    useful_by_day: list[float] = field(default_factory=list)

    @property
    def useful_share(self) -> float:
        """Share of the wanted heat asked of the node that useful work covered."""
        return self.useful_kwh / self.asked_kwh if self.asked_kwh else 0.0

    def useful_share_by_day(self) -> list[float]:
        days = zip(self.useful_by_day, self.asked_by_day, strict=True)
        return [useful / asked if asked else 0.0 for useful, asked in days]

    def count(self, t: float, *, power: float, target: float, forced: bool, useful: bool) -> None:
        """One step's energy: wanted or not, useful or not, forced or not."""
        kwh = power * INNER_DT_S / 3.6e6
        self.total_kwh += kwh
        if target > 0:
            self.wanted_kwh += kwh
            asked = target * INNER_DT_S / 3.6e6
            covered = min(power, target) * INNER_DT_S / 3.6e6 if useful else 0.0
            self.asked_kwh += asked
            self.useful_kwh += covered
            day = int(t // DAY_S)
            while len(self.asked_by_day) <= day:
                self.asked_by_day.append(0.0)
                self.useful_by_day.append(0.0)
            self.asked_by_day[day] += asked
            self.useful_by_day[day] += covered
            return
        idle_kwh = IDLE_W * INNER_DT_S / 3.6e6
        self.unwanted_idle_kwh += idle_kwh
        if forced:
            self.unwanted_forced_kwh += kwh - idle_kwh
        else:
            self.unwanted_other_kwh += kwh - idle_kwh

    @property
    def reuse(self) -> float:
        return self.wanted_kwh / self.total_kwh if self.total_kwh else 0.0

    @property
    def deadlines_met(self) -> int:
        return sum(
            1 for job in self.jobs if job.finished_at is not None and not job.deadline_missed(0)
        )

    @property
    def unwanted_work_kwh(self) -> float:
        return self.unwanted_forced_kwh + self.unwanted_other_kwh


def simulate(
    season: Season,
    days: int,
    seed: int,
    *,
    baseline: bool,
    documents: list[Document] | None = None,
) -> Result:
    """Run ``days`` on the twin with this scheduler, or with run-as-soon-as-it-arrives;
    with ``documents``, the index's backlog is planned as a job too (this scheduler)."""
    room = RoomModel(params=ROOM, room_c=setpoint_c(season, 0.0), chip_c=20.0)
    planner = Planner(estimator=ThroughputEstimator())
    governor = Governor(GovernorParams(idle_w=IDLE_W, max_w=MAX_W))
    thermostat = Thermostat()
    pending = arrivals(seed, days)
    result = Result()
    jobs = result.jobs
    progress: dict[str, float] = {}
    t, power, demand, intensity = 0.0, IDLE_W, 0.0, 0.0
    clock = [t]
    index = result.index = SimIndex(deque(documents)) if documents is not None else None
    work = index_work(index, clock) if index is not None else None
    # After the last arrival, run on until every job is done: both schedulers then do
    # the same work, and a job due after the week still counts.
    while (
        t < days * DAY_S
        or any(not job.terminal for job in jobs)
        or (index is not None and bool(index.pending or index.arriving))
    ):
        clock[0] = t
        if index is not None:
            index.arrive(t)
        if t % OUTER_DT_S == 0:
            demand = thermostat.demand_w(setpoint_c(season, t) - room.room_c, OUTER_DT_S)
        while pending and pending[0].at_s <= t:
            arrival = pending.pop(0)
            jobs.append(
                Job(
                    id=f"job{len(jobs)}",
                    kind="completions",
                    created_at=arrival.at_s,
                    deadline=arrival.at_s + arrival.deadline_in_s,
                    total_items=arrival.items,
                    params={"max_tokens": MAX_TOKENS},
                )
            )
        target = min(demand, MAX_W)
        wanted = target > 0
        active = [job for job in jobs if not job.terminal] + index_job(work)
        if baseline:
            order = sorted(active, key=lambda job: job.created_at)
            intensity = 1.0 if order else 0.0
            forced = False
        else:
            plan = planner.plan(
                active, now=t, heat_wanted=wanted, jobs_allowed=True, filler_allowed=False
            )
            order = [job for job in active if job.id in plan.run]
            order.sort(key=lambda job: plan.run.index(job.id))
            forced = bool(plan.forced)
            setpoint = MAX_W if forced else target
            # The power measured over the last step, as the node's sampler sees it.
            intensity = governor.update(
                setpoint_w=setpoint, power_w=power, dt_s=INNER_DT_S, has_work=bool(order)
            )
        if wanted and not active:  # heat wanted, no useful work: filler's time, were it on
            result.filler_h += INNER_DT_S / HOUR_S
        power = IDLE_W + (MAX_W - IDLE_W) * intensity if order else IDLE_W
        did_work = _work(order, intensity, t, progress, planner.estimator, index)
        result.count(t, power=power, target=target, forced=forced, useful=did_work)
        backup = max(0.0, demand - power)
        result.backup_kwh += backup * INNER_DT_S / 3.6e6
        room = room.step(power + backup + gains_w(season, t), INNER_DT_S, season.outside(t))
        if t % OUTER_DT_S == 0:
            trace = result.trace
            trace.t.append(t)
            trace.target_w.append(target)
            trace.power_w.append(power)
            trace.room_c.append(room.room_c)
            trace.setpoint_c.append(setpoint_c(season, t))
            trace.running.append(order[0].id if order else None)
            trace.indexing.append(any(job.kind == "index" for job in order) and intensity > 0)
        t += INNER_DT_S
    return result


def _work(
    order: list[Job],
    intensity: float,
    t: float,
    progress: dict[str, float],
    estimator: ThroughputEstimator,
    index: SimIndex | None,
) -> bool:
    """The engine: full-power seconds in proportion to intensity, most urgent job first
    (a job's tokens at TOKENS_PER_S, the index's documents at their cost). True if any
    work was done."""
    capacity = intensity * INNER_DT_S
    if not order or capacity <= 0:
        return False
    spent: dict[JobKind, tuple[float, float]] = {}
    """kind -> (full-power seconds, work units) this step, for the estimator."""
    for job in order:
        if capacity <= 1e-12:
            break
        if job.started_at is None:
            job.started_at = t
        job.state = "running"
        if job.kind == "index":
            assert index is not None
            used, chunks = index.work(capacity, t + INNER_DT_S)
            job.done_items += chunks
        else:
            need = job.total_items * MAX_TOKENS - progress.get(job.id, 0.0)
            tokens = min(need, capacity * TOKENS_PER_S)
            used, chunks = tokens / TOKENS_PER_S, 0
            progress[job.id] = progress.get(job.id, 0.0) + tokens
            job.done_items = min(job.total_items, int(progress[job.id] // MAX_TOKENS))
            if job.done_items >= job.total_items:
                job.state = "completed"
                job.finished_at = t + INNER_DT_S
        capacity -= used
        units = chunks if job.kind == "index" else used * TOKENS_PER_S
        seconds, done = spent.get(job.kind, (0.0, 0.0))
        spent[job.kind] = (seconds + used, done + units)
    # Like the node: throughput is learnt from steps in which one kind alone ran.
    if len(spent) == 1:
        [(kind, (seconds, units))] = spent.items()
        estimator.observe(kind, intensity_s=seconds, units=units, wall_s=INNER_DT_S)
    return bool(spent)
