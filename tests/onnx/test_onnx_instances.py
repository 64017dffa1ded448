"""The threads ONNX batches compute on: instances share the engine's threads (a model
computing two batches at once gives each half of them, so the node never runs more
onnxruntime threads than it was given), and they all run at the engines' niceness, below
the event loop, like the LLM engine's.

Real classifier, real onnxruntime, the engine on its own (no HTTP needed for this).
"""

from __future__ import annotations

import os
from pathlib import Path
import threading

import numpy as np
import pytest

from heatcompute_node import priorities
from heatcompute_node.engines.onnx.batcher import InferRequest
from heatcompute_node.engines.onnx.engine import OnnxEngine

from .conftest import add_model


def intra_op_threads(engine: OnnxEngine, name: str) -> int:
    return int(engine.batcher(name).model.session.get_session_options().intra_op_num_threads)


async def test_instances_split_the_engine_threads(tmp_path: Path) -> None:
    repo = tmp_path / "repository"
    add_model(repo, "one", {"max_batch_size": 8})
    add_model(repo, "two", {"max_batch_size": 8, "instance_count": 2})
    add_model(repo, "many", {"max_batch_size": 8, "instance_count": 3})
    engine = OnnxEngine(repo, threads=2)
    await engine.start()
    try:
        assert intra_op_threads(engine, "one") == 2
        assert intra_op_threads(engine, "two") == 1
        assert intra_op_threads(engine, "many") == 1  # never fewer than one
        x = np.zeros((1, 3, 48, 192), dtype=np.float32)
        answers = [await engine.infer("two", None, InferRequest(inputs={"x": x})) for _ in "ab"]
        assert all(next(iter(a.values())).shape == (1, 2) for a in answers)
    finally:
        await engine.close()


def thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir("/proc/self/task")}


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread priorities: Linux")
async def test_onnx_compute_runs_nicer_than_the_event_loop(tmp_path: Path) -> None:
    repo = tmp_path / "repository"
    add_model(repo, "direction", {"max_batch_size": 8})
    loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = thread_ids()
    engine = OnnxEngine(repo, threads=2)
    await engine.start()
    try:
        x = np.zeros((1, 3, 48, 192), dtype=np.float32)
        await engine.infer("direction", None, InferRequest(inputs={"x": x}))
        python = {t.native_id: t.name for t in threading.enumerate()}
        # The engine's pool threads, and onnxruntime's own (started while a session loads,
        # not Python threads); asyncio's default executor's threads are not compute.
        compute = {
            tid
            for tid in thread_ids() - before
            if tid not in python or python[tid].startswith("onnx")
        }
        assert any(tid not in python for tid in compute)  # onnxruntime's pool thread
        assert any(tid in python for tid in compute)  # the thread that ran the batch
        nicenesses = {os.getpriority(os.PRIO_PROCESS, tid) for tid in compute}
        assert nicenesses == {min(19, loop_niceness + priorities.ENGINE_NICENESS)}
    finally:
        await engine.close()
