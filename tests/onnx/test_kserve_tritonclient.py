"""/v2 with the real Triton HTTP client (tritonclient[http] 2.73.0) against a real node.

The model is rapidocr's text-direction classifier (x: FP32 [N, 3, 48, W] -> [N, 2]),
served under several configs. Outputs are compared with onnxruntime run in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from .conftest import OnnxNode, add_model, direction_model, triton

OUTPUT = "save_infer_model/scale_0.tmp_1"
CLS = [1, 3, 48, 192]
# Wide enough that one inference keeps the model's only instance busy for a while.
SLOW = [1, 3, 48, 27000]  # 15.5 MB as binary, under the node's 16 MB request limit
ONE_AT_A_TIME = {
    "max_batch_size": 1,
    "dynamic_batching": {
        "priority_levels": 2,
        "default_priority_level": 1,
        "default_queue_policy": {"max_queue_size": 4, "allow_timeout_override": True},
    },
}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repository"
    add_model(
        repo,
        "direction",
        {
            "max_batch_size": 64,
            "dynamic_batching": {
                "preferred_batch_size": [16, 32, 64],
                "max_queue_delay_microseconds": 20000,
            },
        },
    )
    add_model(repo, "one-at-a-time", ONE_AT_A_TIME)
    add_model(
        repo,
        "patient",
        {
            "max_batch_size": 8,
            "dynamic_batching": {
                "max_queue_delay_microseconds": 3_000_000,
                "default_queue_policy": {"max_queue_size": 4},
            },
        },
    )
    return repo


@pytest.fixture
async def node(make_node: Any, repository: Path) -> OnnxNode:
    node: OnnxNode = await make_node(repository)
    return node


def expected(seed: int, shape: list[int]) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(str(direction_model()), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)
    out: np.ndarray[Any, Any] = session.run(None, {"x": x})[0]
    return out


async def test_metadata_config_and_auth(triton_python: str, node: OnnxNode) -> None:
    server, model, missing, no_token = await triton(
        triton_python,
        node,
        [
            {"op": "server"},
            {"op": "model", "model": "direction"},
            {"op": "model", "model": "no-such-model"},
            {"op": "no_token"},
        ],
    )
    assert server["live"]
    assert server["ready"]
    assert "binary_tensor_data" in server["metadata"]["extensions"]
    assert model["ready"] is True
    assert model["metadata"]["versions"] == ["1"]
    assert model["metadata"]["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 3, -1, -1]}
    ]
    assert model["metadata"]["outputs"][0] == {"name": OUTPUT, "datatype": "FP32", "shape": [-1, 2]}
    config = model["config"]
    assert config["max_batch_size"] == 64
    assert config["dynamic_batching"]["preferred_batch_size"] == [16, 32, 64]
    assert missing == {
        "ok": False,
        "status": "404",
        "message": "Request for unknown model: 'no-such-model' is not found",
    }
    assert no_token["ok"] is False
    assert no_token["status"] == "401"


async def test_json_and_binary_infer_match_onnxruntime(triton_python: str, node: OnnxNode) -> None:
    as_json, as_binary, batch_of_4, versioned = await triton(
        triton_python,
        node,
        [
            {"op": "infer", "model": "direction", "seed": 1, "shape": CLS, "output": OUTPUT},
            {
                "op": "infer",
                "model": "direction",
                "seed": 1,
                "shape": CLS,
                "output": OUTPUT,
                "binary": True,
            },
            {
                "op": "infer",
                "model": "direction",
                "seed": 2,
                "shape": [4, 3, 48, 192],
                "output": OUTPUT,
            },
            {
                "op": "infer",
                "model": "direction",
                "seed": 1,
                "shape": CLS,
                "output": OUTPUT,
                "binary": True,
                "version": 1,
            },
        ],
    )
    want = expected(1, CLS)
    for result in (as_json, as_binary, versioned):
        assert result["ok"], result
        assert result["shape"] == [1, 2]
        np.testing.assert_allclose(result["values"], want.reshape(-1), rtol=1e-5, atol=1e-6)
    assert batch_of_4["ok"], batch_of_4
    np.testing.assert_allclose(
        batch_of_4["values"], expected(2, [4, 3, 48, 192]).reshape(-1), rtol=1e-4, atol=1e-5
    )


async def test_concurrent_clients_are_merged_into_batches(
    triton_python: str, node: OnnxNode
) -> None:
    sent, outcomes, stats = await triton(
        triton_python,
        node,
        [
            {"op": "send", "model": "direction", "count": 32, "shape": CLS},
            {"op": "collect"},
            {"op": "stats", "model": "direction"},
        ],
    )
    assert sent["ok"]
    assert len(outcomes) == 32
    assert all(o["ok"] for o in outcomes), outcomes
    [model] = stats["model_stats"]
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in model["batch_stats"]}
    assert model["inference_count"] == 32
    assert max(sizes) > 1, sizes
    assert model["execution_count"] < 32
    assert model["inference_stats"]["success"]["count"] == 32


async def test_queue_full_and_timeout_are_503_and_the_node_keeps_serving(
    triton_python: str, node: OnnxNode
) -> None:
    # "patient" holds requests in its queue for 3 s (a batch of 8 never fills), so what
    # waits there is known, however fast or busy the machine is.
    base = {"model": "patient", "shape": CLS}
    results = await triton(
        triton_python,
        node,
        [
            {"op": "infer", **base, "timeout": 1000},  # waits longer than its 1 ms
            {"op": "send", **base, "count": 4, "tag": "queued"},
            {"op": "wait_taken", "model": "patient", "queued": 4},
            {"op": "infer", **base},  # the queue holds 4: a fifth is refused
            {"op": "collect"},
            {"op": "infer", "model": "direction", "shape": CLS, "output": OUTPUT},
        ],
    )
    timed_out, waited, full, outcomes, after = (
        results[0],
        results[2],
        results[3],
        results[4],
        results[5],
    )
    assert timed_out == {"ok": False, "status": "503", "message": "Request timeout expired"}
    assert waited == {"ok": True}
    assert full == {"ok": False, "status": "503", "message": "Exceeds maximum queue size"}
    assert [o["ok"] for o in outcomes] == [True] * 4, outcomes
    assert after["ok"] is True


async def test_people_first_then_fifo_within_a_level(triton_python: str, node: OnnxNode) -> None:
    # Each long enough that the client's order of answers is the node's order of work.
    base = {"model": "one-at-a-time", "shape": [1, 3, 48, 3000], "binary": True}
    *_, outcomes = await triton(
        triton_python,
        node,
        [
            {"op": "send", "model": "one-at-a-time", "shape": SLOW, "binary": True, "tag": "slow"},
            {"op": "wait_taken", "model": "one-at-a-time", "queued": 0, "running": 1},
            {"op": "send", **base, "priority": 2, "tag": "background-1"},
            {"op": "wait_taken", "model": "one-at-a-time", "queued": 1},
            {"op": "send", **base, "priority": 2, "tag": "background-2"},
            {"op": "wait_taken", "model": "one-at-a-time", "queued": 2},
            {"op": "send", **base, "priority": 1, "tag": "person"},
            {"op": "wait_taken", "model": "one-at-a-time", "queued": 3},
            {"op": "collect"},
        ],
    )
    assert [o["tag"] for o in outcomes] == ["slow", "person", "background-1", "background-2"]
    assert all(o["ok"] for o in outcomes)


async def test_bad_requests_get_tritons_4xx_and_the_node_still_serves(
    triton_python: str, node: OnnxNode
) -> None:
    results = await triton(
        triton_python,
        node,
        [
            {"op": "infer", "model": "nope", "shape": CLS},
            {"op": "infer", "model": "direction", "shape": [1, 3, 48]},
            {"op": "infer", "model": "direction", "shape": [1, 4, 48, 192]},
            {
                "op": "infer",
                "model": "direction",
                "shape": CLS,
                "dtype": "int32",
                "datatype": "INT32",
            },
            {"op": "infer", "model": "direction", "shape": [65, 3, 48, 192], "binary": True},
            {"op": "infer", "model": "direction", "shape": CLS, "priority": 3},
            {"op": "infer", "model": "direction", "shape": CLS, "input": "y"},
            {"op": "infer", "model": "direction", "shape": CLS, "version": 7},
            {"op": "infer", "model": "direction", "shape": CLS, "output": OUTPUT},
        ],
    )
    unknown, rank, dims, dtype, too_big, priority, name, version, ok = results
    assert unknown["status"] == "404"
    assert rank["status"] == "400"
    assert "unexpected shape" in rank["message"]
    assert dims["status"] == "400"
    assert "Expected [-1, 3, -1, -1]" in dims["message"]
    assert dtype["status"] == "400"
    assert dtype["message"] == (
        "unexpected datatype TYPE_INT32 for inference input 'x', expecting TYPE_FP32"
    )
    assert too_big == {
        "ok": False,
        "status": "400",
        "message": "inference request batch-size must be <= 64 for 'direction'",
    }
    assert priority["status"] == "400"
    assert name["status"] == "400"
    assert "unexpected inference input 'y'" in name["message"]
    assert version["status"] == "404"
    assert ok["ok"] is True


async def test_repository_index_load_and_unload(triton_python: str, node: OnnxNode) -> None:
    index, unloaded, infer_unloaded, index_after, loaded, infer_loaded = await triton(
        triton_python,
        node,
        [
            {"op": "index"},
            {"op": "unload", "model": "direction"},
            {"op": "infer", "model": "direction", "shape": CLS},
            {"op": "index"},
            {"op": "load", "model": "direction"},
            {"op": "infer", "model": "direction", "shape": CLS, "output": OUTPUT},
        ],
    )
    assert {(e["name"], e.get("state")) for e in index} == {
        ("direction", "READY"),
        ("one-at-a-time", "READY"),
        ("patient", "READY"),
    }
    assert unloaded == {"ok": True}
    assert infer_unloaded["status"] == "503"
    assert ("direction", "UNAVAILABLE") in {(e["name"], e.get("state")) for e in index_after}
    assert loaded == {"ok": True}
    assert infer_loaded["ok"] is True
