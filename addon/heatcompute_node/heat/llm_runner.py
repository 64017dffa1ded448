"""The job runner on the LLM engine: chat, completions and embeddings as background work.

Text items go to the loaded model's continuous-batching scheduler with
``Priority.BACKGROUND``, so the engine serves interactive requests first and throttles
these by the governor's knobs. They don't wait in the engine's queue while the governor
allows no new background sequence (no heat wanted): the engine hands them back unstarted
and the executor returns them to their job, which goes back to ``queued``.
Embeddings run on the model's embedding worker, which has no knobs: the runner applies
the duty cycle itself (after an item that took t seconds it waits t·(1−u)/u before the
next one), so heat control holds for every kind of job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import time
from typing import Any

from ..engines.llm.chat import ChatTemplateError
from ..engines.llm.embeddings import InputTooLongError
from ..engines.llm.errors import ContextLengthError, EngineOverloadedError, EngineStoppedError
from ..engines.llm.models import ChatModel, ModelManager, ModelNotFoundError
from ..engines.llm.request import GenerationRequest, Priority
from ..engines.llm.sampling import SamplingParams
from ..engines.llm.scheduler import Scheduler
from .governor import PAUSED, BackgroundKnobs
from .job_runner import ItemFailed, ItemOutput, RunnerBusy
from .jobs import Job, JobKind

FILLER_PROMPT = "Write a long, calm story about a lighthouse keeper and the winter sea."
FILLER_TOKENS = 128
# Embedding duty cycle: below this share, wait at most this long between items.
_MAX_EMBED_PAUSE_S = 5.0


@dataclass(frozen=True, slots=True, eq=True)
class EngineFanout:
    """The governor's engine: the knobs go to every loaded chat model's scheduler.

    Compared by value, so the governor re-sends its knobs when a model is loaded or
    unloaded (a newly loaded scheduler starts unthrottled).
    """

    schedulers: tuple[Scheduler, ...]
    runner: LlmJobRunner

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> object:
        for scheduler in self.schedulers:
            scheduler.set_knobs(
                max_background=max_background,
                background_threads=background_threads,
                duty_cycle=duty_cycle,
            )
        self.runner.knobs = BackgroundKnobs(
            max_background=max_background or 0,
            background_threads=background_threads or 1,
            duty_cycle=duty_cycle or 0.0,
        )
        return None


class LlmJobRunner:
    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.knobs: BackgroundKnobs = PAUSED
        self._embed_lock = asyncio.Lock()

    # --- JobRunner ---------------------------------------------------------------------

    def unavailable(self, kind: JobKind, model: str | None) -> str | None:
        try:
            self.manager.find(model, "embedding" if kind == "embeddings" else "chat")
        except ModelNotFoundError as err:
            return str(err)
        return None

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        if job.kind == "embeddings":
            return await self._embed(job, str(item["input"]))
        chat = await self._chat_model(job.model)
        if job.kind == "chat":
            try:
                prompt = chat.template.render(item["messages"])
            except ChatTemplateError as err:
                raise ItemFailed(str(err)) from err
            tokenizer = chat.tokenizer
            bos = tokenizer.special_text(tokenizer.bos) if tokenizer.bos >= 0 else ""
            tokens = tokenizer.tokenize(prompt, add_special=not (bos and prompt.startswith(bos)))
        else:
            tokens = chat.tokenizer.tokenize(item["prompt"], add_special=True, parse_special=False)
        params = job.params
        sampling = SamplingParams(
            temperature=params["temperature"], top_p=params["top_p"], seed=params.get("seed")
        )
        request = GenerationRequest(
            prompt=tuple(tokens),
            max_tokens=params["max_tokens"],
            sampling=sampling,
            stop=tuple(params.get("stop", ())),
            priority=Priority.BACKGROUND,
            withdraw_when_paused=True,
        )
        return await self._generate(chat.scheduler, request)

    async def run_filler(self) -> ItemOutput:
        chat = await self._chat_model(None)
        tokens = chat.tokenizer.tokenize(FILLER_PROMPT, add_special=True, parse_special=False)
        request = GenerationRequest(
            prompt=tuple(tokens),
            max_tokens=FILLER_TOKENS,
            ignore_eos=True,
            priority=Priority.BACKGROUND,
            withdraw_when_paused=True,
        )
        return await self._generate(chat.scheduler, request)

    def engine(self) -> EngineFanout | None:
        schedulers = self._schedulers()
        return EngineFanout(schedulers, self) if schedulers else None

    def engine_threads(self) -> int:
        return self.manager.settings.n_threads

    def external_requests(self, own: int) -> int:
        """Requests in the chat engines beyond the executor's own items in flight."""
        total = 0
        for scheduler in self._schedulers():
            stats = scheduler.stats()
            total += stats.requests_active + stats.queue_depth
        return max(0, total - own)

    def tokens_total(self) -> int:
        """Generated tokens of every chat model, kept across model unloads and reloads."""
        return self.manager.tokens_total()

    # --- helpers -------------------------------------------------------------------------

    def _schedulers(self) -> tuple[Scheduler, ...]:
        return tuple(
            entry.chat.scheduler
            for entry in self.manager.entries()
            if entry.chat is not None and not entry.chat.scheduler.broken
        )

    async def _chat_model(self, model: str | None) -> ChatModel:
        try:
            return await self.manager.chat(model)
        except ModelNotFoundError as err:
            raise ItemFailed(str(err)) from err

    async def _generate(self, scheduler: Scheduler, request: GenerationRequest) -> ItemOutput:
        try:
            handle = scheduler.submit(request)
        except ContextLengthError as err:
            raise ItemFailed(str(err)) from err
        except (EngineOverloadedError, EngineStoppedError) as err:
            raise RunnerBusy(str(err)) from err
        try:
            finished = await handle.result()
        except asyncio.CancelledError:
            handle.cancel()  # the job was cancelled: stop generating at the next step
            raise
        if finished.reason == "error":
            # An engine fault (the engine reloads itself): try the item again later.
            raise RunnerBusy(finished.error or "engine fault")
        if finished.reason == "cancelled":
            # Handed back unstarted: the governor allows no new background sequence.
            raise RunnerBusy("the engine handed the request back")
        return ItemOutput(
            result={"text": finished.text, "finish_reason": finished.reason},
            prompt_tokens=finished.prompt_tokens,
            completion_tokens=finished.completion_tokens,
        )

    async def _embed(self, job: Job, text: str) -> ItemOutput:
        try:
            engine = await self.manager.embeddings(job.model)
        except ModelNotFoundError as err:
            raise ItemFailed(str(err)) from err
        try:
            tokens = engine.tokenize([text])
        except InputTooLongError as err:
            raise ItemFailed(f"the text has {err.tokens} tokens; at most {err.limit} fit") from err
        async with self._embed_lock:
            started = time.monotonic()
            [vector] = await engine.embed(tokens)
            await self._embed_pause(time.monotonic() - started)
        return ItemOutput(result={"embedding": vector}, prompt_tokens=len(tokens[0]))

    async def _embed_pause(self, busy_s: float) -> None:
        knobs = self.knobs
        share = knobs.background_threads * knobs.duty_cycle / max(1, self.engine_threads())
        if share >= 1.0:
            return
        # Paused knobs (share 0) keep the next item waiting until the knobs change or
        # the longest pause has passed; the executor starts no new items meanwhile.
        pause = _MAX_EMBED_PAUSE_S if share <= 0 else busy_s * (1 - share) / share
        await asyncio.sleep(min(pause, _MAX_EMBED_PAUSE_S))
