"""Book-keeping of the executor's items in flight: which job, which item, which task."""

from __future__ import annotations

import asyncio
from collections import Counter

from .jobs import JobKind


class InflightTable:
    def __init__(self) -> None:
        self._tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._filler: set[asyncio.Task[None]] = set()
        self._units: dict[JobKind, float] = {}

    @property
    def total(self) -> int:
        return len(self._tasks) + len(self._filler)

    @property
    def filler(self) -> int:
        return len(self._filler)

    def add(self, job_id: str, index: int, task: asyncio.Task[None]) -> None:
        self._tasks[(job_id, index)] = task

    def remove(self, job_id: str, index: int) -> None:
        self._tasks.pop((job_id, index), None)

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
