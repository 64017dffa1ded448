"""The ONNX engine's figures in /metrics (Triton's metric names) and /api/status."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import OnnxNode, add_model

X = {"name": "x", "shape": [2, 3, 48, 192], "datatype": "FP32", "data": [0.0] * (2 * 3 * 48 * 192)}


async def test_counts_times_and_batch_sizes_are_visible(make_node: Any, tmp_path: Path) -> None:
    repo = tmp_path / "repository"
    add_model(repo, "direction", {"max_batch_size": 8})
    node: OnnxNode = await make_node(repo)
    url = f"{node.base}/v2/models/direction/infer"
    for _ in range(3):
        async with node.session.post(url, json={"inputs": [X]}, headers=node.headers) as r:
            assert r.status == 200
    bad = {**X, "shape": [2, 4, 48, 144]}  # as many values, but 4 channels
    async with node.session.post(url, json={"inputs": [bad]}, headers=node.headers) as r:
        assert r.status == 400

    async with node.session.get(f"{node.base}/metrics", headers=node.headers) as r:
        metrics = await r.text()
    labels = '{model="direction",version="1"}'
    assert f"nv_inference_request_success_total{labels} 3.0" in metrics
    assert f"nv_inference_request_failure_total{labels} 1.0" in metrics
    assert f"nv_inference_count_total{labels} 6.0" in metrics
    assert f"nv_inference_exec_count_total{labels} 3.0" in metrics
    assert f"nv_inference_pending_request_count{labels} 0.0" in metrics
    for name in (
        "nv_inference_queue_duration_us_total",
        "nv_inference_compute_infer_duration_us_total",
    ):
        [line] = [m for m in metrics.splitlines() if m.startswith(name + labels)]
        assert float(line.split()[-1]) > 0
    assert (
        'heatcompute_onnx_batches_total{batch_size="2",model="direction",version="1"} 3.0'
        in metrics
    )
    assert 'heatcompute_onnx_busy_seconds_total{work="all"}' in metrics

    figures = (await node.status())["onnx"]
    [direction] = figures["models"]["direction"]
    assert direction["requests_success"] == 3
    assert direction["requests_failed"] == 1
    assert direction["inferences"] == 6
    assert direction["executions"] == 3
    assert direction["mean_batch_size"] == 2.0
    assert direction["batch_sizes"] == {"2": 3}
    assert direction["compute_ms_mean"] > 0
    assert figures["busy_s"] > 0
    assert figures["background_busy_s"] == 0
