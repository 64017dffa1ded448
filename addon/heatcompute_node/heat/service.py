"""The heat service: job store, executor and heat controller, started with the node."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import os
from pathlib import Path
import time
from typing import Any

from ..node import Node
from .controller import HeatController
from .executor import JobExecutor
from .index_work import DocumentBacklog, IndexWork
from .job_folders import list_text_files, resolve_folder
from .job_runner import JobRunner
from .job_store import STORE_FILE_NAME, JobStore
from .jobs import Job, JobError, JobRequest, new_job_id
from .scheduling import Planner


class QueueFull(Exception):  # noqa: N818
    def __init__(self, limit: int) -> None:
        super().__init__(f"the job queue is full ({limit} jobs not finished); try again later")
        self.limit = limit


class HeatService:
    def __init__(
        self,
        node: Node,
        runner: JobRunner,
        *,
        clock: Callable[[], float] = time.time,
        people_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        self.node = node
        self.runner = runner
        self.clock = clock
        self.people_waiting = people_waiting
        """Someone's request is in flight on the node (index work starts no batch)."""
        self.executor: JobExecutor | None = None
        self.controller: HeatController | None = None
        self._store: JobStore | None = None

    async def start(self, index: DocumentBacklog | None = None) -> None:
        """Start; with a document index, its backlog is planned as heat work."""
        settings = self.node.settings
        self._store = await asyncio.to_thread(JobStore, settings.data_dir / STORE_FILE_NAME)
        runner = self.runner
        index_work = (
            None
            if index is None
            else IndexWork(
                index,
                freshness_s=settings.index_freshness_h * 3600.0,
                engine_threads=lambda: runner.engine_threads() or os.process_cpu_count() or 1,
                clock=self.clock,
            )
        )
        self.executor = JobExecutor(
            self._store,
            self.runner,
            planner=Planner(),
            job_folders=settings.job_folders,
            publish=self.node.events.publish,
            clock=self.clock,
            index_work=index_work,
            people_waiting=self.people_waiting,
        )
        await self.executor.start()
        self.controller = HeatController(self.node, self.executor, self.runner)
        self.node.add_sample_listener(self.controller)
        self.node.set_heat_control(self.controller)

    async def stop(self) -> None:
        if self.executor is not None:
            await self.executor.stop()
        if self._store is not None:
            await asyncio.to_thread(self._store.close)

    @property
    def jobs(self) -> JobExecutor:
        if self.executor is None:
            raise RuntimeError("the heat service is not started")
        return self.executor

    async def submit(self, request: JobRequest) -> Job:
        """Check a validated request against this node, store it and queue it."""
        executor, settings = self.jobs, self.node.settings
        limit = settings.max_queued_jobs
        if len(executor.pending) >= limit:
            raise QueueFull(limit)
        reason = self.runner.unavailable(request.kind, request.model)
        if reason is not None:
            raise JobError(reason, param="model", code="model_not_available")
        items: list[dict[str, Any]] = list(request.items)
        folder: Path | None = None
        if request.folder is not None:
            folder, files = await asyncio.to_thread(
                _list_folder, request.folder, settings.job_folders, request.pattern
            )
            items = [{"file": name} for name in files]
        job = Job(
            id=new_job_id(),
            kind=request.kind,
            model=request.model,
            priority=request.priority,
            deadline=request.deadline,
            created_at=self.clock(),
            total_items=len(items),
            params=request.params,
            folder=None if folder is None else str(folder),
            metadata=request.metadata,
        )
        return await executor.submit(job, items)


def _list_folder(requested: str, allowed: tuple[Path, ...], pattern: str) -> tuple[Path, list[str]]:
    folder = resolve_folder(requested, allowed)
    return folder, list_text_files(folder, pattern)
