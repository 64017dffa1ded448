"""The LLM scheduler: continuous batching of many sequences in one llama.cpp context.

One thread runs the decode loop. Every step it builds one batch: the next token of each
generating sequence plus a chunk of at most one step's budget of pending prompts, so a
long prompt never stalls the streams already running. A request joins at the next step
and leaves the moment it finishes. Interactive requests are admitted and prefilled
first and never throttled; background ones obey the heat governor's knobs.

Small interface: `submit`, `cancel`, `stats`, `set_knobs`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
import logging
import os
import threading
import time

from ... import priorities
from .errors import ContextLengthError, EngineOverloadedError, EngineStoppedError
from .prompt_cache import PromptCache
from .request import (
    Finished,
    FinishReason,
    GenerationHandle,
    GenerationRequest,
    Priority,
    TextDelta,
)
from .runtime import Runtime
from .sampling import Sampler
from .slots import Slot, SlotPool
from .stats import EngineStats, Knobs, StatsRecorder
from .step import RunningSequence as _Sequence, fill_batch
from .step_budget import BackgroundStepBudget
from .text_stream import TextStream
from .tokenizer import Tokenizer

_LOGGER = logging.getLogger(__name__)

_MAX_IDLE_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerConfig:
    n_slots: int = 16
    """Sequences in the context at once (running plus idle prefix caches)."""
    n_batch: int = 512
    """Tokens per decode call (and per prefill step when nothing is generating)."""
    prefill_chunk: int = 128
    """Prompt tokens per step while other sequences are generating."""
    n_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    max_queue: int = 64
    """Waiting requests beyond this are refused (429)."""
    gen_reserve: int = 256
    """KV cells set aside per admitted request for its answer."""
    background_step_s: float = 0.05
    """What a step of background work may take, about: a person's request that arrives
    waits for the step in flight (step_budget.py)."""
    prompt_cache_bytes: int = 1 << 30
    """RAM for finished sequences' cells, saved for the next prompt that starts with
    them (prompt_cache.py); 0 keeps them in the KV cache instead, where every decode
    step attends over them."""


class Scheduler:
    """Continuous batching over one context; thread-safe `submit`/`cancel`/`stats`."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        runtime_factory: Callable[[], Runtime],
        config: SchedulerConfig | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.config = config or SchedulerConfig()
        self._factory = runtime_factory
        self._runtime = runtime_factory()
        self._saved = (
            PromptCache(self.config.prompt_cache_bytes) if self.config.prompt_cache_bytes else None
        )
        self._pool = SlotPool(self._runtime.context, self.config.n_slots, self._saved)
        self.n_ctx = self._runtime.context.n_ctx
        self.context_limit = min(self.n_ctx, self._runtime.model.n_ctx_train or self.n_ctx)
        self._cond = threading.Condition()
        self._waiting: dict[Priority, deque[_Sequence]] = {p: deque() for p in Priority}
        self._cancels: set[int] = set()
        self._active: list[_Sequence] = []
        self._stopping = False
        self.broken = False
        """True when the engine could not recover from a fault (the manager rebuilds it)."""
        self._wake = False
        self._knobs = Knobs(
            max_background=self.config.n_slots,
            background_threads=self.config.n_threads,
            duty_cycle=1.0,
        )
        self._stats = StatsRecorder()
        self._background_budget = BackgroundStepBudget(self.config.background_step_s)
        self._thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)
        self._thread.start()

    # --- the interface ---------------------------------------------------------------

    def submit(
        self, request: GenerationRequest, loop: asyncio.AbstractEventLoop | None = None
    ) -> GenerationHandle:
        """Queue a request; its events arrive on `loop` (default: the running loop)."""
        if len(request.prompt) >= self.context_limit:
            raise ContextLengthError(len(request.prompt), self.context_limit)
        if not request.prompt:
            raise ValueError("the prompt is empty")
        room = self.context_limit - len(request.prompt)
        if request.max_tokens > room:
            request = replace(request, max_tokens=room)
        loop = loop or asyncio.get_running_loop()
        handle = GenerationHandle(request, loop, self.cancel)
        sampler = Sampler(self.tokenizer.model, request.sampling)
        seq = _Sequence(handle, sampler, TextStream(request.stop), time.monotonic())
        with self._cond:
            if self._stopping:
                sampler.close()
                raise EngineStoppedError("the engine is stopped")
            if sum(len(q) for q in self._waiting.values()) >= self.config.max_queue:
                sampler.close()
                raise EngineOverloadedError(self._retry_after())
            self._waiting[request.priority].append(seq)
            if request.priority is Priority.INTERACTIVE:
                self._wake = True  # ends a duty-cycle pause at once
            self._cond.notify()
        return handle

    def cancel(self, request_id: int) -> None:
        """Stop a request; its KV cells are freed at the next step."""
        with self._cond:
            self._cancels.add(request_id)
            self._wake = True
            self._cond.notify()

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> Knobs:
        """The heat governor's controls over background work; returns the new knobs."""
        with self._cond:
            knobs = self._knobs
            self._knobs = Knobs(
                max_background=max(0, min(self.config.n_slots, max_background))
                if max_background is not None
                else knobs.max_background,
                background_threads=max(1, background_threads)
                if background_threads is not None
                else knobs.background_threads,
                duty_cycle=min(1.0, max(0.0, duty_cycle))
                if duty_cycle is not None
                else knobs.duty_cycle,
            )
            self._wake = True
            self._cond.notify()
            return self._knobs

    def stats(self) -> EngineStats:
        tokens_per_s, prompt_per_s = self._stats.rates()
        rec = self._stats
        saved = self._saved
        return EngineStats(
            tokens_per_s=round(tokens_per_s, 2),
            prompt_tokens_per_s=round(prompt_per_s, 2),
            requests_active=len(self._active),
            queue_depth=sum(len(q) for q in self._waiting.values()),
            requests_total=rec.requests_total,
            tokens_total=rec.tokens_total,
            cached_prompt_tokens_total=rec.cached_total,
            kv_cells_used=self._pool.ledger.used,
            kv_cells_total=self.n_ctx,
            faults=rec.faults,
            knobs=self._knobs,
            prompt_cache_bytes=saved.bytes_used if saved else 0,
            prompt_cache_entries=len(saved) if saved else 0,
            prompt_cache_hits=saved.hits if saved else 0,
            **rec.percentiles(),
        )

    def stop(self) -> None:
        """Fail what is left, end the thread and free the native state."""
        with self._cond:
            self._stopping = True
            self._wake = True
            self._cond.notify()
        self._thread.join()

    # --- the engine thread ------------------------------------------------------------

    def _run(self) -> None:
        niced = False
        while True:
            with self._cond:
                while not self._has_work():
                    if self._stopping:
                        break
                    self._cond.wait()
                if self._stopping:
                    break
                cancels, self._cancels = self._cancels, set()
                self._wake = False
            try:
                self._apply_cancels(cancels)
                self._admit()
                if not self._active:
                    continue
                started = time.monotonic()
                background_only = self._step()
            except Exception as err:  # a native failure must not end the engine thread
                _LOGGER.exception("LLM engine fault; failing the running requests and reloading")
                try:
                    self._recover(err)
                except Exception:
                    _LOGGER.exception("LLM engine could not reload its model; it is stopped")
                    with self._cond:
                        self._stopping = True
                    self.broken = True
                    break
                continue
            if not niced:
                # After the first step llama.cpp's compute threads exist: they yield to
                # the event loop; this thread (GIL, locks) keeps the process's priority.
                priorities.compute_threads()
                niced = True
            if background_only:
                self._idle_for_duty_cycle(time.monotonic() - started)
        self._shutdown()

    def _has_work(self) -> bool:
        if self._active or self._cancels or self._waiting[Priority.INTERACTIVE]:
            return True
        background = self._waiting[Priority.BACKGROUND]
        if self._knobs.max_background > 0:
            return bool(background)
        # Background paused: requests that wait for the governor don't wake the thread
        # (it would spin admitting nothing); those that asked not to wait are handed back.
        return any(seq.request.withdraw_when_paused for seq in background)

    def _apply_cancels(self, cancels: set[int]) -> None:
        if not cancels:
            return
        with self._cond:
            for queue in self._waiting.values():
                for seq in [s for s in queue if s.handle.request_id in cancels]:
                    queue.remove(seq)
                    self._finish(seq, "cancelled")
        for seq in [s for s in self._active if s.handle.request_id in cancels]:
            self._finish(seq, "cancelled")

    def _admit(self) -> None:
        if self._knobs.max_background == 0:
            self._withdraw_paused()
        for priority in Priority:
            queue = self._waiting[priority]
            while queue:
                if priority is Priority.BACKGROUND and (
                    self._count(Priority.BACKGROUND) >= self._knobs.max_background
                ):
                    return
                seq = queue[0]
                placement = self._pool.place(seq.request.prompt)
                if placement is None:
                    return
                need = (
                    len(seq.request.prompt)
                    - placement.cached
                    + placement.new_cells
                    + min(seq.request.max_tokens, self.config.gen_reserve)
                )
                if not self._make_room(need, placement.keeps) and self._active:
                    # Wait for running sequences to finish; nothing was touched yet.
                    return
                with self._cond:
                    queue.popleft()
                seq.cached = self._pool.prepare(placement)
                placement.slot.busy = True
                seq.slot = placement.slot
                self._active.append(seq)

    def _withdraw_paused(self) -> None:
        """No background sequence may start: hand back the waiting ones that asked for it."""
        with self._cond:
            queue = self._waiting[Priority.BACKGROUND]
            leaving = [seq for seq in queue if seq.request.withdraw_when_paused]
            for seq in leaving:
                queue.remove(seq)
        for seq in leaving:
            self._finish(seq, "cancelled")

    def _make_room(self, need: int, keep: tuple[Slot, ...]) -> bool:
        pool = self._pool
        while pool.ledger.free - self._outstanding() < need:
            if not pool.evict_one(keep):
                return False
        return True

    def _outstanding(self) -> int:
        """Cells the running sequences will still fill soon (rest of prompt, next token)."""
        total = 0
        for seq in self._active:
            assert seq.slot is not None
            total += max(0, len(seq.request.prompt) - len(seq.slot.tokens)) + 1
        return total

    def _count(self, priority: Priority) -> int:
        return sum(1 for s in self._active if s.request.priority is priority)

    def _step(self) -> bool:
        """One decode call for every running sequence; True if all were background."""
        runtime = self._runtime
        # Background sequences sit out the steps that serve people: every token they add
        # to a step slows the interactive stream sharing it (x2 with 4 of them on 2
        # cores). They keep their cells and go on when no interactive request runs.
        order = [s for s in self._active if s.request.priority is Priority.INTERACTIVE]
        serves_people = bool(order)
        order = order or list(self._active)
        rows, prompt_tokens = self._fill_batch(order, serves_people)
        runtime.context.set_threads(
            self.config.n_threads if serves_people else self._knobs.background_threads
        )
        started = time.monotonic()
        result = runtime.context.decode(runtime.batch)
        if not serves_people:
            self._background_budget.record(time.monotonic() - started, runtime.batch.n_tokens)
        if result == 1:
            self._out_of_cells()
            return not serves_people
        if result != 0:
            raise RuntimeError(f"llama_decode failed with status {result}")
        for seq in order:
            if seq.step_tokens:
                assert seq.slot is not None
                self._pool.extend(seq.slot, seq.step_tokens)
                seq.pending = None
        self._stats.record_step(len(rows), prompt_tokens)
        for seq, index in rows:
            self._after_token(seq, seq.sampler.sample(runtime.context, index))
        return not serves_people

    def _fill_batch(
        self, order: list[_Sequence], serves_people: bool
    ) -> tuple[list[tuple[_Sequence, int]], int]:
        limit = None if serves_people else self._background_budget.prompt_tokens
        return fill_batch(
            self._runtime.batch,
            order,
            n_batch=self.config.n_batch,
            prefill_chunk=self.config.prefill_chunk,
            prompt_limit=limit,
        )

    def _after_token(self, seq: _Sequence, token: int) -> None:
        now = time.monotonic()
        if seq.first_token_at is None:
            seq.first_token_at = now
            self._stats.record_first_token(now - seq.submitted)
        request = seq.request
        if not request.ignore_eos and self.tokenizer.is_eog(token):
            self._finish(seq, "stop")
            return
        seq.generated += 1
        text = seq.text.feed(self.tokenizer.piece(token))
        if text:
            seq.handle.push(TextDelta(text, seq.generated))
        assert seq.slot is not None
        if seq.text.stopped:
            self._finish(seq, "stop")
        elif seq.generated >= request.max_tokens or len(seq.slot.tokens) + 1 >= self.n_ctx:
            self._finish(seq, "length")
        else:
            seq.pending = token

    def _out_of_cells(self) -> None:
        """The KV cache is full: drop idle caches, else end the longest answer early."""
        if self._pool.evict_one():
            return
        victim = max(self._active, key=lambda s: s.generated)
        _LOGGER.warning("KV cache full: ending request %s early", victim.handle.request_id)
        self._finish(victim, "length")

    @staticmethod
    def _cells_to_keep(seq: _Sequence, reason: FinishReason) -> int | None:
        """What of a finished sequence stays as prefix cache (None: all of it).

        A cancelled or failed sequence's cells are freed at once. A person's answer stays
        whole: the next turn of the conversation starts with it. A background item's
        answer is never continued, so only its prompt stays (another item may share it):
        a cached cell costs RAM, or, kept in the KV cache, each later decode step's
        attention work, whoever runs."""
        if reason not in ("stop", "length"):
            return 0
        if seq.request.priority is Priority.BACKGROUND:
            return len(seq.request.prompt)
        return None

    def _finish(self, seq: _Sequence, reason: FinishReason, error: str | None = None) -> None:
        if reason in ("stop", "length"):
            tail = seq.text.flush()
            if tail:
                seq.handle.push(TextDelta(tail, seq.generated))
        now = time.monotonic()
        ttft = None if seq.first_token_at is None else seq.first_token_at - seq.submitted
        seq.sampler.close()
        if seq in self._active:
            self._active.remove(seq)
        if seq.slot is not None:
            self._pool.release(seq.slot, keep=self._cells_to_keep(seq, reason))
            seq.slot = None
        if reason != "error":
            self._stats.record_finished(now - seq.submitted, seq.generated, seq.cached)
        # Last, so a caller that sees the end also sees the engine's state after it.
        seq.handle.push(
            Finished(
                reason=reason,
                prompt_tokens=len(seq.request.prompt),
                completion_tokens=seq.generated,
                cached_tokens=seq.cached,
                text=seq.text.text,
                ttft_s=ttft,
                latency_s=now - seq.submitted,
                error=error,
            )
        )

    def _recover(self, err: Exception) -> None:
        self._stats.record_fault()
        for seq in list(self._active):
            seq.slot = None
            self._finish(seq, "error", f"engine fault: {err}")
        try:
            self._runtime.close()
        except Exception:
            _LOGGER.exception("closing the broken runtime failed")
        self._runtime = self._factory()
        if self._saved is not None:
            self._saved.clear()  # cells of the context that failed
        self._pool = SlotPool(self._runtime.context, self.config.n_slots, self._saved)
        _LOGGER.info("LLM engine recovered: model reloaded")

    def _idle_for_duty_cycle(self, step_s: float) -> None:
        duty = self._knobs.duty_cycle
        if duty >= 1.0:
            return
        # Duty 0 pauses background work until something changes (an interactive request,
        # a cancel, new knobs); otherwise idle long enough that computing takes `duty`.
        idle = None if duty <= 0 else min(_MAX_IDLE_S, step_s * (1.0 - duty) / duty)
        with self._cond:
            self._cond.wait_for(lambda: self._wake, timeout=idle)

    def _retry_after(self) -> float:
        per = self._stats.percentiles()["latency_p50_s"] or 1.0
        return max(1.0, round(per * self.config.max_queue / max(1, self.config.n_slots)))

    def _shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            waiting = [s for q in self._waiting.values() for s in q]
            for queue in self._waiting.values():
                queue.clear()
        for seq in waiting + list(self._active):
            self._finish(seq, "error", "the engine stopped")
        if not self.broken:
            self._runtime.close()
