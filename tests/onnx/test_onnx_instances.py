"""Instances share the engine's threads: a model computing two batches at once gives each
half of them, and a model never computes more batches at once than the engine has
threads, so the node never runs more onnxruntime threads than it was given.

Real classifier, real onnxruntime, the engine on its own (no HTTP needed for this).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
        # ... and never more batches at once than threads: three would run three threads.
        assert [engine.batcher(n).instances for n in ("one", "two", "many")] == [1, 2, 2]
        x = np.zeros((1, 3, 48, 192), dtype=np.float32)
        answers = [await engine.infer("two", None, InferRequest(inputs={"x": x})) for _ in "ab"]
        assert all(next(iter(a.values())).shape == (1, 2) for a in answers)
    finally:
        await engine.close()
