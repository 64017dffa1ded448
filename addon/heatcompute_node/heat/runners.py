"""One job runner in front of several engines: each job kind goes to the engine that
does it (text and embeddings to llama.cpp, read_text to the ONNX engine), and the
governor's knobs go to all of them, so every kind of background work heats alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .governor import BackgroundControl
from .job_runner import ItemOutput, JobRunner
from .jobs import Job, JobKind


@dataclass(frozen=True, slots=True, eq=True)
class AllEngines:
    """The knobs for every engine (compared by value, like the LLM's fan-out)."""

    engines: tuple[BackgroundControl, ...]

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> object:
        for engine in self.engines:
            engine.set_knobs(
                max_background=max_background,
                background_threads=background_threads,
                duty_cycle=duty_cycle,
            )
        return None


class RunnerByKind:
    """A JobRunner that hands each job to the runner of its kind (else the default)."""

    def __init__(
        self,
        default: JobRunner,
        by_kind: Mapping[JobKind, JobRunner],
        extra_engines: tuple[BackgroundControl, ...] = (),
    ) -> None:
        self.default = default
        self.by_kind = dict(by_kind)
        self.extra_engines = extra_engines

    def _runner(self, kind: JobKind) -> JobRunner:
        return self.by_kind.get(kind, self.default)

    def unavailable(self, kind: JobKind, model: str | None) -> str | None:
        return self._runner(kind).unavailable(kind, model)

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        return await self._runner(job.kind).run_item(job, item)

    async def run_filler(self) -> ItemOutput:
        return await self.default.run_filler()

    def engine(self) -> BackgroundControl | None:
        default = self.default.engine()
        engines = (*((default,) if default is not None else ()), *self.extra_engines)
        return AllEngines(engines) if engines else None

    def tokens_total(self) -> int:
        return self.default.tokens_total()

    def external_requests(self, own: int) -> int:
        return self.default.external_requests(own)

    def engine_threads(self) -> int | None:
        return self.default.engine_threads()
