"""The dynamic batcher's decisions, on the real classifier with real onnxruntime.

The instance is held at the start of each batch (an event the test sets), so what waits
in the queue when a batch is formed is known exactly, not left to timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from heatcompute_node.engines.onnx.batcher import (
    BackgroundGate,
    Done,
    DynamicBatcher,
    InferRequest,
    Tensors,
)
from heatcompute_node.engines.onnx.config import ConfigError, parse_config
from heatcompute_node.engines.onnx.errors import RequestTimeoutError
from heatcompute_node.engines.onnx.session import ModelVersion

from .conftest import direction_model


class HeldInstance:
    """Runs batches on a thread, each only once the test lets it; records their sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.started = asyncio.Event()
        self._go = asyncio.Semaphore(0)
        self._runs: set[asyncio.Task[None]] = set()

    def __call__(self, work: Callable[[], Tensors], done: Done) -> None:
        self.started.set()
        run = asyncio.get_running_loop().create_task(self._run(work, done))
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)

    async def _run(self, work: Callable[[], Tensors], done: Done) -> None:
        await self._go.acquire()
        try:
            out = await asyncio.to_thread(work)
        except Exception as err:  # noqa: BLE001 - handed on, as the engine does
            done(err)
            return
        self.sizes.append(next(iter(out.values())).shape[0])
        done(out)

    def release(self, batches: int = 1) -> None:
        for _ in range(batches):
            self._go.release()


@pytest.fixture(scope="module")
def model() -> ModelVersion:
    return ModelVersion.load("direction", 1, direction_model(), threads=1)


def batcher(model: ModelVersion, config: dict[str, Any], held: HeldInstance) -> DynamicBatcher:
    made = DynamicBatcher(
        model, parse_config(config, name="direction"), run_in_thread=held, gate=BackgroundGate()
    )
    made.start()
    return made


def x(width: int = 192, seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-1, 1, size=(1, 3, 48, width)).astype(np.float32)}


async def queued(made: DynamicBatcher, count: int) -> None:
    """Until `count` requests wait: sleep(0) only lets the submitting tasks run, no time
    passes and nothing is guessed."""
    while made.pending < count:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_preferred_sizes_then_the_rest(model: ModelVersion) -> None:
    held = HeldInstance()
    made = batcher(
        model,
        {"max_batch_size": 32, "dynamic_batching": {"preferred_batch_size": [8, 16]}},
        held,
    )
    first = asyncio.create_task(made.infer(InferRequest(inputs=x())))
    await held.started.wait()
    rest = [asyncio.create_task(made.infer(InferRequest(inputs=x(seed=i)))) for i in range(20)]
    await queued(made, 20)
    held.release(3)
    results = await asyncio.gather(first, *rest)
    assert held.sizes == [1, 16, 4]
    # Each request gets its own row back, the same as computed alone.
    alone = model.run(x(seed=7))
    np.testing.assert_allclose(
        results[8]["save_infer_model/scale_0.tmp_1"], next(iter(alone.values())), rtol=1e-5
    )
    await made.stop()


async def test_only_requests_of_the_same_shape_share_a_batch(model: ModelVersion) -> None:
    held = HeldInstance()
    made = batcher(model, {"max_batch_size": 8}, held)
    first = asyncio.create_task(made.infer(InferRequest(inputs=x())))
    await held.started.wait()
    widths = [192, 192, 320, 192, 320]
    rest = [asyncio.create_task(made.infer(InferRequest(inputs=x(w)))) for w in widths]
    await queued(made, 5)
    held.release(5)
    await asyncio.gather(first, *rest)
    # FIFO: a batch closes at the first request of another shape.
    assert held.sizes == [1, 2, 1, 1, 1]
    assert made.stats.snapshot(state="READY").inference_count == 6
    await made.stop()


async def test_the_next_batch_starts_before_the_last_one_is_answered(
    model: ModelVersion,
) -> None:
    """A finished batch hands the instance on first: the kernel does not wait while the
    finished batch's callers encode and send their answers."""
    events: list[str] = []
    held = HeldInstance()

    def instance(work: Callable[[], Tensors], done: Done) -> None:
        events.append("batch starts")
        held(work, done)

    made = DynamicBatcher(
        model,
        parse_config({"max_batch_size": 8}, name="direction"),
        run_in_thread=instance,
        gate=BackgroundGate(),
    )
    made.start()

    async def person(seed: int) -> None:
        await made.infer(InferRequest(inputs=x(seed=seed)))
        events.append("answered")

    first = asyncio.create_task(person(0))
    await held.started.wait()
    rest = [asyncio.create_task(person(seed)) for seed in range(1, 4)]
    await queued(made, 3)
    held.release(2)
    await asyncio.gather(first, *rest)
    assert held.sizes == [1, 3]
    assert events == ["batch starts", "batch starts"] + ["answered"] * 4
    await made.stop()


async def test_people_first_and_fifo_within_a_level(model: ModelVersion) -> None:
    held = HeldInstance()
    made = batcher(
        model,
        {
            "max_batch_size": 1,
            "dynamic_batching": {"priority_levels": 2, "default_priority_level": 1},
        },
        held,
    )
    order: list[str] = []

    async def run(tag: str, **kwargs: Any) -> None:
        await made.infer(InferRequest(inputs=x(), **kwargs))
        order.append(tag)

    tasks = [asyncio.create_task(run("first"))]
    await held.started.wait()
    tasks += [asyncio.create_task(run(f"job-{i}", background=True)) for i in range(3)]
    await queued(made, 3)
    tasks += [asyncio.create_task(run(f"person-{i}")) for i in range(2)]
    await queued(made, 5)
    held.release(6)
    await asyncio.gather(*tasks)
    assert order == ["first", "person-0", "person-1", "job-0", "job-1", "job-2"]
    await made.stop()


async def test_timeouts_reject_or_delay(model: ModelVersion) -> None:
    held = HeldInstance()
    made = batcher(
        model,
        {
            "max_batch_size": 1,
            "dynamic_batching": {
                "priority_levels": 2,
                "default_priority_level": 1,
                "priority_queue_policy": {
                    "2": {"timeout_action": "DELAY", "default_timeout_microseconds": 1000}
                },
            },
        },
        held,
    )
    order: list[str] = []

    async def run(tag: str, **kwargs: Any) -> None:
        await made.infer(InferRequest(inputs=x(), **kwargs))
        order.append(tag)

    tasks = [asyncio.create_task(run("first"))]
    await held.started.wait()
    delayed = [asyncio.create_task(run(f"delayed-{i}", priority=2)) for i in range(2)]
    rejected = asyncio.create_task(made.infer(InferRequest(inputs=x(), timeout_us=1000)))
    with pytest.raises(RequestTimeoutError):
        await rejected  # answered while the instance is still busy
    await queued(made, 2)
    later = asyncio.create_task(run("on-time", priority=2, timeout_us=60_000_000))
    await queued(made, 3)
    held.release(4)
    await asyncio.gather(*tasks, *delayed, later)
    # Timed-out DELAY requests wait behind every other request, in their own order.
    assert order == ["first", "on-time", "delayed-0", "delayed-1"]
    await made.stop()


async def test_the_governor_holds_background_work_and_people_pass(model: ModelVersion) -> None:
    held = HeldInstance()
    gate = BackgroundGate()
    made = DynamicBatcher(
        model,
        parse_config({"max_batch_size": 4}, name="direction"),
        run_in_thread=held,
        gate=gate,
    )
    made.start()
    gate.share = 0.0  # no heat wanted: background work must not start
    job = asyncio.create_task(made.infer(InferRequest(inputs=x(), background=True)))
    person = asyncio.create_task(made.infer(InferRequest(inputs=x(width=320))))
    await held.started.wait()
    held.release(2)
    await person
    assert not job.done()
    assert made.pending == 1
    gate.share = 1.0
    made.wake()
    await job
    assert held.sizes == [1, 1]
    await made.stop()


async def test_a_caller_that_goes_away_leaves_the_queue_and_unload_drains(
    model: ModelVersion,
) -> None:
    held = HeldInstance()
    made = batcher(model, {"max_batch_size": 1}, held)
    first = asyncio.create_task(made.infer(InferRequest(inputs=x())))
    await held.started.wait()
    gone = asyncio.create_task(made.infer(InferRequest(inputs=x(seed=1))))
    kept = asyncio.create_task(made.infer(InferRequest(inputs=x(seed=2))))
    await queued(made, 2)
    gone.cancel()
    held.release(2)
    drained = asyncio.create_task(made.drain())
    await asyncio.gather(first, kept)
    await drained
    assert made.pending == 0
    assert held.sizes == [1, 1]  # the cancelled request never ran
    await made.stop()


def test_a_number_in_other_digits_is_a_config_error_not_a_crash() -> None:
    """ "²" passes str.isdigit() and int() refuses it: the config says what is wrong."""
    assert parse_config({"max_batch_size": "8"}, name="direction").max_batch_size == 8
    with pytest.raises(ConfigError, match="max_batch_size must be a whole number"):
        parse_config({"max_batch_size": "²"}, name="direction")
