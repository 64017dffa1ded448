"""A job runner without an engine: answers from the text itself, optionally held at a gate.

Tests open and close the gate and wait on the runner's events, so what they check never
depends on timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from heatcompute_node.heat.job_runner import ItemFailed, ItemOutput, RunnerBusy
from heatcompute_node.heat.jobs import Job, JobKind


class RecordingEngine:
    """Stands in for the LLM scheduler's knobs: records every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    @property
    def knobs(self) -> dict[str, Any]:
        """The knobs of the last call ({} before any)."""
        return self.calls[-1] if self.calls else {}

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> object:
        self.calls.append(
            {
                "max_background": max_background,
                "background_threads": background_threads,
                "duty_cycle": duty_cycle,
            }
        )
        return None


def item_text(item: dict[str, Any]) -> str:
    if "messages" in item:
        return str(item["messages"][-1]["content"])
    return str(item.get("prompt", item.get("input")))


class FakeRunner:
    def __init__(self, *, gated: bool = False) -> None:
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.fillers = 0
        self.busy_once: set[str] = set()
        self.changed = asyncio.Event()
        self.fake_engine: RecordingEngine | None = RecordingEngine()
        self.missing_models = {"nope"}
        self.external = 0
        """Background requests over the API, as the engine would count them."""

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def _note(self) -> None:
        self.changed.set()

    def unavailable(self, kind: JobKind, model: str | None) -> str | None:
        return f"no model {model!r}" if model in self.missing_models else None

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        text = item_text(item)
        if text in self.busy_once:
            self.busy_once.discard(text)
            raise RunnerBusy("engine queue full")
        self.started.append(text)
        self._note()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(text)
            self._note()
            raise
        if text.startswith("bad"):
            self.finished.append(text)
            self._note()
            raise ItemFailed(f"cannot do {text!r}")
        self.finished.append(text)
        self._note()
        if job.kind == "embeddings":
            return ItemOutput(
                result={"embedding": [float(len(text)), 1.0]}, prompt_tokens=len(text)
            )
        return ItemOutput(
            result={"text": text.upper(), "finish_reason": "stop"},
            prompt_tokens=len(text.split()),
            completion_tokens=2,
        )

    async def run_filler(self) -> ItemOutput:
        await self.gate.wait()
        self.fillers += 1
        self._note()
        # A real filler item takes engine time; yield so the loop isn't monopolised.
        await asyncio.sleep(0)
        return ItemOutput(result={}, completion_tokens=8)

    def engine(self) -> RecordingEngine | None:
        return self.fake_engine

    def tokens_total(self) -> int:
        return 2 * len(self.finished)

    def engine_threads(self) -> int | None:
        return None

    def external_requests(self, own: int) -> int:
        return self.external
