"""Book-keeping of the executor: items in flight (which job, item, task); progress events."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable

from .jobs import JobKind


class InflightTable:
    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._filler: set[asyncio.Task[None]] = set()
        self._units: dict[JobKind, float] = {}
        # Item-seconds each job ran since the last `take_busy`: a job's share of the
        # energy follows how long its items ran, not whether one happened to be running
        # at the sample (a job shorter than a sample interval would get nothing).
        self._monotonic = monotonic
        self._started: dict[tuple[str, int], float] = {}
        self._busy: defaultdict[str, float] = defaultdict(float)
        self._since = monotonic()

    @property
    def total(self) -> int:
        return len(self._tasks) + len(self._filler)

    @property
    def filler(self) -> int:
        return len(self._filler)

    def add(self, job_id: str, index: int, task: asyncio.Task[None]) -> None:
        self._tasks[(job_id, index)] = task
        self._started[(job_id, index)] = self._monotonic()

    def remove(self, job_id: str, index: int) -> None:
        self._tasks.pop((job_id, index), None)
        started = self._started.pop((job_id, index), None)
        if started is not None:
            self._busy[job_id] += self._monotonic() - max(started, self._since)

    def take_busy(self) -> tuple[dict[str, float], float]:
        """(item-seconds per job, seconds) since the last call."""
        now = self._monotonic()
        busy, self._busy = self._busy, defaultdict(float)
        for (job_id, _), started in self._started.items():
            busy[job_id] += now - max(started, self._since)
        seconds, self._since = now - self._since, now
        return busy, seconds

    def has(self, job_id: str, index: int) -> bool:
        return (job_id, index) in self._tasks

    def count(self, job_id: str) -> int:
        return sum(1 for key in self._tasks if key[0] == job_id)

    def per_job(self) -> Counter[str]:
        return Counter(job_id for job_id, _ in self._tasks)

    def add_filler(self, task: asyncio.Task[None]) -> None:
        self._filler.add(task)

    def remove_filler(self) -> None:
        done = {task for task in self._filler if task.done() or task is asyncio.current_task()}
        self._filler -= done

    def add_units(self, kind: JobKind, units: float) -> None:
        self._units[kind] = self._units.get(kind, 0.0) + units

    def take_units(self) -> dict[JobKind, float]:
        """Work units finished since the last call, by kind."""
        units, self._units = self._units, {}
        return units

    async def cancel_job(self, job_id: str) -> None:
        await _cancel([task for key, task in self._tasks.items() if key[0] == job_id])

    async def cancel_all(self) -> None:
        await _cancel([*self._tasks.values(), *self._filler])


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class ProgressReports:
    """Which jobs' progress to publish: at most one event per job per ``interval_s``.

    Progress held back is not lost: ``ready`` names it once the interval has passed, and
    the executor publishes it at the next control step, so a job's latest progress always
    shows within about a second, however fast (or suddenly paused) its items are.
    """

    def __init__(self, interval_s: float, monotonic: Callable[[], float]) -> None:
        self.interval_s = interval_s
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._held_back: set[str] = set()

    def published(self, job_id: str) -> None:
        """The job's event (of any kind) went out now."""
        self._last[job_id] = self._monotonic()
        self._held_back.discard(job_id)

    def changed(self, job_id: str) -> bool:
        """The job made progress: True if it may be published now, else it is held back."""
        if self._due(job_id):
            return True
        self._held_back.add(job_id)
        return False

    def ready(self) -> list[str]:
        """Jobs whose progress was held back and may be published now."""
        return [job_id for job_id in self._held_back if self._due(job_id)]

    def forget(self, job_id: str) -> None:
        self._last.pop(job_id, None)
        self._held_back.discard(job_id)

    def _due(self, job_id: str) -> bool:
        last = self._last.get(job_id)
        return last is None or self._monotonic() - last >= self.interval_s
