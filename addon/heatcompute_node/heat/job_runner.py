"""The job runner: the small interface through which jobs reach an engine.

The executor decides what runs and records results; a runner only turns one item into
one result on some engine, as background work. Tests use a fake; the node uses the LLM
engine (``heat/llm_runner.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .governor import BackgroundControl
from .jobs import Job, JobKind


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemOutput:
    result: dict[str, Any]
    """What the API returns for the item, e.g. ``{"text": ..., "finish_reason": ...}``."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ItemFailed(Exception):  # noqa: N818 - reads better at the raise site
    """This item can't be done (too long for the context, bad text): record the error."""


class RunnerBusy(Exception):  # noqa: N818
    """Not now (engine queue full, model loading): the item goes back and runs later."""


class JobRunner(Protocol):
    def unavailable(self, kind: JobKind, model: str | None) -> str | None:
        """Why jobs of this kind/model can't run on this node, or None if they can."""
        ...

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        """Run one item as background work. Cancellation must stop its engine request."""
        ...

    async def run_filler(self) -> ItemOutput:
        """One unit of filler work (results are thrown away)."""
        ...

    def engine(self) -> BackgroundControl | None:
        """The engine whose background knobs the governor sets (None: none loaded)."""
        ...

    def tokens_total(self) -> int:
        """Tokens the engines have generated since start (for energy per token)."""
        ...

    def external_requests(self, own: int) -> int:
        """Requests in the engines that are not the executor's ``own`` items in flight."""
        ...

    def engine_threads(self) -> int | None:
        """Threads the engine computes with (the governor's scale for threads)."""
        ...
