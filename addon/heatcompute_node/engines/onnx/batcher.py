"""The dynamic batcher of one model version, with Triton's semantics.

Requests wait in one FIFO queue per priority level (1 first). When an instance of the
model is free, the batcher scans the queues in order and takes requests while their
non-batch dimensions match the first one's and the batch stays within
``max_batch_size``:

- the batch goes at once when it reached ``max_batch_size``, or when the scan stopped at
  a request that can't join it (another shape, or too large to fit);
- otherwise, with preferred batch sizes, the largest preferred size reached goes at once
  (the rest waits for the next batch);
- otherwise the batch waits for more requests until its oldest request has waited
  ``max_queue_delay``, then goes as it is.

A level's queue holds at most ``max_queue_size`` requests (more: "Exceeds maximum queue
size"); a request waiting longer than its timeout fails ("Request timeout expired") or,
with ``timeout_action: DELAY``, waits behind every other request.

Beyond Triton: background requests (jobs) pass a gate that the governor sets. After a
batch of only background work that took t seconds, background work waits t·(1−u)/u, so
ONNX jobs heat at the governor's intensity u; people's requests never wait for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import logging
import time
from typing import Any

import numpy as np

from .config import ModelConfig
from .errors import (
    InvalidInputError,
    ModelRunError,
    ModelUnavailableError,
    QueueFullError,
    RequestTimeoutError,
)
from .session import ModelVersion
from .stats import StatsRecorder

_LOGGER = logging.getLogger(__name__)

type Tensors = dict[str, np.ndarray[Any, Any]]
type Done = Callable[[Tensors | Exception], None]
type RunInThread = Callable[[Callable[[], Tensors], Done], None]
"""Runs the work on a worker thread, then calls ``done`` with its result (or the error it
raised) on the event loop's thread."""

# A paused background gate is looked at again at least this often.
MAX_BACKGROUND_PAUSE_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class InferRequest:
    inputs: Mapping[str, np.ndarray[Any, Any]]
    outputs: tuple[str, ...] | None = None
    """Outputs wanted; None: all of them."""
    priority: int = 0
    """1 is first; 0 takes the model's default level."""
    timeout_us: int | None = None
    """Replaces the level's default timeout where the policy allows it."""
    background: bool = False
    """Work for a job rather than a person: it passes the governor's gate."""


class BackgroundGate:
    """The governor's hold on background ONNX work (shared by every batcher)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.share = 1.0
        """CPU share background work may take (threads × duty / engine threads)."""
        self.ready_at = 0.0

    def is_open(self) -> bool:
        return self.share > 0 and self._clock() >= self.ready_at

    def wait_s(self) -> float:
        if self.share <= 0:
            return MAX_BACKGROUND_PAUSE_S
        return max(0.0, self.ready_at - self._clock())

    def after_background(self, busy_s: float) -> None:
        if self.share >= 1.0:
            return
        share = self.share
        pause = MAX_BACKGROUND_PAUSE_S if share <= 0 else busy_s * (1 - share) / share
        self.ready_at = self._clock() + min(pause, MAX_BACKGROUND_PAUSE_S)


@dataclass(slots=True, eq=False)
class _Entry:
    inputs: Tensors
    outputs: tuple[str, ...]
    size: int
    shape_key: tuple[Any, ...]
    level: int
    background: bool
    enqueued: float
    deadline: float | None
    future: asyncio.Future[Tensors] = field(repr=False)


class DynamicBatcher:
    def __init__(
        self,
        model: ModelVersion,
        config: ModelConfig,
        *,
        run_in_thread: RunInThread,
        gate: BackgroundGate,
        instances: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.config = config
        self.instances = instances or config.instance_count
        """Batches computed at once (the engine may allow fewer than configured)."""
        self.stats = StatsRecorder(model.name, model.version)
        self._batching = config.batching
        self._run_in_thread = run_in_thread
        self._gate = gate
        self._clock = clock
        self._queues: dict[int, deque[_Entry]] = {
            level: deque() for level in range(1, self._batching.levels + 1)
        }
        self._delayed: deque[_Entry] = deque()
        self._wake = asyncio.Event()
        self._busy = 0
        """Instances computing a batch now (at most ``instances``)."""
        self._changed = asyncio.Event()
        """Set when a batch starts or ends (drain waits on it)."""
        self._task: asyncio.Task[None] | None = None
        self._accepting = True

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(
            self._loop(), name=f"onnx-batcher-{self.model.name}-{self.model.version}"
        )

    async def drain(self) -> None:
        """Take no new requests; answer every request already taken."""
        self._accepting = False
        self.wake()
        while self.pending or self._busy:
            self._changed.clear()
            await self._changed.wait()

    async def stop(self) -> None:
        self._accepting = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for entry in self._all_entries():
            if not entry.future.done():
                entry.future.set_exception(
                    ModelUnavailableError(f"model '{self.model.name}' was unloaded")
                )
        for queue in (*self._queues.values(), self._delayed):
            queue.clear()

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> int:
        """Batches computing now."""
        return self._busy

    @property
    def pending(self) -> int:
        return sum(len(queue) for queue in self._queues.values()) + len(self._delayed)

    # --- submitting --------------------------------------------------------------------

    async def infer(self, request: InferRequest) -> Tensors:
        try:
            entry = self._entry(request)
        except InvalidInputError:
            self.stats.finished(ok=False, ns=0)  # Triton counts refused requests as failures
            raise
        if not self._accepting:
            raise ModelUnavailableError(
                f"model '{self.model.name}' version {self.model.version} is being unloaded"
            )
        queue = self._queues[entry.level]
        limit = self._batching.policy(entry.level).max_queue_size
        if limit and len(queue) >= limit:
            self.stats.finished(ok=False, ns=0)
            raise QueueFullError
        queue.append(entry)
        self._wake.set()
        try:
            return await entry.future
        finally:
            self.stats.finished(
                ok=entry.future.done()
                and not entry.future.cancelled()
                and entry.future.exception() is None,
                ns=int((self._clock() - entry.enqueued) * 1e9),
            )

    def _entry(self, request: InferRequest) -> _Entry:
        inputs, size, key = self._validate(request.inputs)
        outputs = request.outputs or tuple(spec.name for spec in self.model.outputs)
        known = {spec.name for spec in self.model.outputs}
        for name in outputs:
            if name not in known:
                raise InvalidInputError(
                    f"unexpected inference output '{name}' for model '{self.model.name}'"
                )
        level = request.priority or (
            self._batching.levels if request.background else self._batching.default_level
        )
        if not 1 <= level <= self._batching.levels:
            raise InvalidInputError(
                f"priority {level} is not within 1-{self._batching.levels} for model "
                f"'{self.model.name}'"
            )
        policy = self._batching.policy(level)
        timeout_us = policy.default_timeout_us
        if request.timeout_us is not None and policy.allow_timeout_override:
            timeout_us = request.timeout_us
        now = self._clock()
        return _Entry(
            inputs=inputs,
            outputs=outputs,
            size=size,
            shape_key=key,
            level=level,
            background=request.background,
            enqueued=now,
            deadline=now + timeout_us / 1e6 if timeout_us else None,
            future=asyncio.get_running_loop().create_future(),
        )

    def _validate(
        self, given: Mapping[str, np.ndarray[Any, Any]]
    ) -> tuple[Tensors, int, tuple[Any, ...]]:
        model, batched = self.model, self.config.max_batch_size > 0
        expected = {spec.name for spec in model.inputs}
        for name in given:
            if name not in expected:
                raise InvalidInputError(
                    f"unexpected inference input '{name}' for model '{model.name}'"
                )
        missing = sorted(expected - set(given))
        if missing:
            raise InvalidInputError(
                f"expected {len(expected)} inputs but got {len(given)} inputs for model "
                f"'{model.name}'; missing: {', '.join(missing)}"
            )
        sizes: set[int] = set()
        key: list[Any] = []
        for spec in model.inputs:
            array = given[spec.name]
            if array.dtype != spec.dtype:
                raise InvalidInputError(
                    f"unexpected datatype TYPE_{_datatype(array)} for inference input "
                    f"'{spec.name}', expecting TYPE_{spec.datatype}"
                )
            skip = int(batched)
            fixed = zip(array.shape[skip:], spec.shape[skip:], strict=False)
            if array.ndim != len(spec.shape) or any(w >= 0 and g != w for g, w in fixed):
                raise InvalidInputError(
                    f"unexpected shape for input '{spec.name}' for model '{model.name}'. "
                    f"Expected {list(spec.shape)}, got {list(array.shape)}"
                )
            if batched:
                sizes.add(array.shape[0])
            key.append(array.shape[int(batched) :])
        size = sizes.pop() if len(sizes) == 1 else 1
        if sizes:
            raise InvalidInputError("inputs disagree on the batch size")
        if batched and not 1 <= size <= self.config.max_batch_size:
            raise InvalidInputError(
                f"inference request batch-size must be <= {self.config.max_batch_size} for "
                f"'{model.name}'"
            )
        return {name: np.asarray(given[name]) for name in expected}, size, tuple(key)

    # --- forming batches ----------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._launch(await self._next_batch())

    def _launch(self, batch: list[_Entry]) -> None:
        """Hand the batch to a worker thread now, from the loop's current callback.

        Not through a task: a task's first step, and the step that resumes it after the
        worker, each wait for a turn of the loop, and under load a turn runs the handlers
        of every request that arrived meanwhile; the kernel would sit idle that long.
        """
        self._changed.set()
        batch = [entry for entry in batch if not entry.future.done()]  # callers gone
        if not batch:
            self._wake.set()  # the loop task forms the next one
            return
        self._busy += 1
        model = self.model
        started = self._clock()
        for entry in batch:
            self.stats.queued(int((started - entry.enqueued) * 1e9))
        inputs = [entry.inputs for entry in batch]
        names = [spec.name for spec in model.inputs]
        t0 = time.perf_counter_ns()
        # The inputs are joined on the worker thread too: one hop, and the event loop goes
        # on reading requests while the batch's tensor is copied together.
        try:
            self._run_in_thread(
                lambda: model.run(_joined(inputs, names)),
                lambda result: self._finished(batch, t0, result),
            )
        except RuntimeError as err:  # the worker pool is shut down (the node is stopping)
            asyncio.get_running_loop().call_soon(self._finished, batch, t0, err)

    def _launch_next(self) -> bool:
        """Start the next batch now if one is ready (an instance just became free).

        Called before the finished batch is answered: its answers are encoded and written
        by as many handlers as it had requests, and the kernel would sit idle behind them
        until the loop task got its turn. True if a batch started.
        """
        if self._task is None or self._task.done():
            return False
        now = self._clock()
        self._expire(now)
        if self._busy >= self.instances:
            return False
        batch, closed = self._scan()
        if not batch:
            return False
        ready = self._ready_prefix(batch, sum(entry.size for entry in batch), closed, now)
        if not ready:
            return False
        for entry in ready:
            self._remove(entry)
        self._launch(ready)
        return True

    async def _next_batch(self) -> list[_Entry]:
        while True:
            self._wake.clear()
            now = self._clock()
            # Timeouts apply while every instance is busy too, not only when one is free.
            self._expire(now)
            free = self._busy < self.instances
            batch, closed = self._scan() if free else ([], False)
            wait: float | None = None
            if batch:
                total = sum(entry.size for entry in batch)
                ready = self._ready_prefix(batch, total, closed, now)
                if ready:
                    for entry in ready:
                        self._remove(entry)
                    return ready
                delay = self._batching.max_queue_delay_us / 1e6
                wait = max(0.0, min(entry.enqueued for entry in batch) + delay - now)
            if free and self._background_waiting() and not self._gate.is_open():
                gate_wait = self._gate.wait_s()
                wait = gate_wait if wait is None else min(wait, gate_wait)
            deadlines = [e.deadline for e in self._entries() if e.deadline is not None]
            if deadlines:
                wait = min(max(0.0, min(deadlines) - now), wait if wait is not None else 3600.0)
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _scan(self) -> tuple[list[_Entry], bool]:
        """The requests the next batch may take, in order; True if nothing more can join."""
        limit = max(1, self.config.max_batch_size)
        gate_open = self._gate.is_open()
        batch: list[_Entry] = []
        total = 0
        for entry in self._entries():
            if entry.future.done():  # its caller went away
                continue
            if entry.background and not gate_open:
                continue
            if self.config.max_batch_size == 0:
                return [entry], True
            if batch and entry.shape_key != batch[0].shape_key:
                return batch, True
            if total + entry.size > limit:
                return batch, True
            batch.append(entry)
            total += entry.size
            if total == limit:
                return batch, True
        return batch, False

    def _ready_prefix(
        self, batch: list[_Entry], total: int, closed: bool, now: float
    ) -> list[_Entry]:
        """The part of ``batch`` that goes now (empty: wait for more requests)."""
        if not self._accepting or self.config.max_batch_size == 0:
            return batch
        preferred = self._batching.preferred_batch_size
        if preferred:
            running, best = 0, 0
            for index, entry in enumerate(batch):
                running += entry.size
                if running in preferred:
                    best = index + 1
            if best:
                return batch[:best]
        if closed:
            return batch
        delay = self._batching.max_queue_delay_us / 1e6
        if now - min(entry.enqueued for entry in batch) >= delay:
            return batch
        return []

    def _expire(self, now: float) -> None:
        for queue in (*self._queues.values(), self._delayed):
            # Requests whose callers went away leave the queue (they count for nothing).
            for entry in [e for e in queue if e.future.done()]:
                queue.remove(entry)
        for queue in self._queues.values():
            for entry in [e for e in queue if e.deadline is not None and e.deadline <= now]:
                queue.remove(entry)
                if self._batching.policy(entry.level).timeout_action == "DELAY":
                    entry.deadline = None
                    self._delayed.append(entry)
                elif not entry.future.done():
                    entry.future.set_exception(RequestTimeoutError())

    def _entries(self) -> Iterator[_Entry]:
        for level in sorted(self._queues):
            yield from self._queues[level]
        yield from self._delayed

    def _all_entries(self) -> list[_Entry]:
        return list(self._entries())

    def _background_waiting(self) -> bool:
        return any(entry.background for entry in self._entries())

    def _remove(self, entry: _Entry) -> None:
        queue = self._queues[entry.level]
        if entry in queue:
            queue.remove(entry)
        else:
            self._delayed.remove(entry)

    # --- a batch is done -----------------------------------------------------------------

    def _finished(self, batch: list[_Entry], t0: int, result: Tensors | Exception) -> None:
        """On the loop, the moment the worker is done: the next batch goes to the free
        instance first, then this one's callers get their answers."""
        compute_ns = time.perf_counter_ns() - t0
        background = all(entry.background for entry in batch)
        if background and not isinstance(result, Exception):
            self._gate.after_background(compute_ns / 1e9)  # before the next batch may go
        self._busy -= 1
        self._changed.set()
        launched = self._launch_next()
        if not launched or self._busy < self.instances:
            # The loop task forms what could not go yet (delay, gate, another free
            # instance); after a launch with none free it has nothing to do.
            self._wake.set()
        model = self.model
        if isinstance(result, Exception):
            # onnxruntime's errors share no base class: any error fails this batch only.
            _LOGGER.warning("model %s version %s failed: %s", model.name, model.version, result)
            failure = ModelRunError(
                f"onnxruntime failed on model '{model.name}' version {model.version}: {result}"
            )
            for entry in batch:
                if not entry.future.done():
                    entry.future.set_exception(failure)
            return
        total = sum(entry.size for entry in batch)
        self.stats.batch(
            size=total, requests=len(batch), compute_ns=compute_ns, background=background
        )
        self._answer(batch, result, total)

    def _answer(self, batch: list[_Entry], outputs: Tensors, total: int) -> None:
        if len(batch) == 1:
            entry = batch[0]
            if not entry.future.done():
                entry.future.set_result({name: outputs[name] for name in entry.outputs})
            return
        offset = 0
        for entry in batch:
            part: Tensors = {}
            for name in entry.outputs:
                value = outputs[name]
                if value.ndim == 0 or value.shape[0] != total:
                    # Only outputs along the batch axis can be split between requests.
                    part = {}
                    error = ModelRunError(f"output '{name}' has no batch axis to split")
                    if not entry.future.done():
                        entry.future.set_exception(error)
                    break
                part[name] = value[offset : offset + entry.size]
            offset += entry.size
            if part and not entry.future.done():
                entry.future.set_result(part)


def _joined(inputs: list[Tensors], names: list[str]) -> Tensors:
    """The batch's feeds: each input of every request, along the batch axis."""
    if len(inputs) == 1:
        return inputs[0]
    return {name: np.concatenate([given[name] for given in inputs]) for name in names}


def _datatype(array: np.ndarray[Any, Any]) -> str:
    from .session import DATATYPES

    for datatype, dtype in DATATYPES.values():
        if np.dtype(dtype) == array.dtype:
            return datatype
    return str(array.dtype).upper()
