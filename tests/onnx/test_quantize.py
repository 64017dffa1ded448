"""int8 variants: made by onnxruntime's dynamic quantisation, served only within ε.

Real node, real onnxruntime, the text-direction classifier and its check set (text lines
rendered and cut as the node cuts them, half of them upside down).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from heatcompute_node.engines.onnx.quantize import INT8_FILE_NAME
from scripts.onnx_models import direction_check_set

from .conftest import OnnxNode, add_model

OUTPUT = "save_infer_model/scale_0.tmp_1"


@pytest.fixture(scope="module")
def check_set() -> np.ndarray[Any, Any]:
    return direction_check_set()


def model_with(
    repo: Path, name: str, quantization: dict[str, Any], check: np.ndarray[Any, Any] | None
) -> Path:
    folder = add_model(repo, name, {"max_batch_size": 64, "quantization": quantization})
    if check is not None:
        np.savez_compressed(folder / "check.npz", x=check)
    return folder


async def stats_and_config(node: OnnxNode, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with node.session.get(f"{node.base}/v2/models/{name}/stats", headers=node.headers) as r:
        [stats] = (await r.json())["model_stats"]
    async with node.session.get(f"{node.base}/v2/models/{name}/config", headers=node.headers) as r:
        config = await r.json()
    return stats, config


async def infer(node: OnnxNode, name: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.reshape(-1).tolist(),
            }
        ]
    }
    async with node.session.post(
        f"{node.base}/v2/models/{name}/infer", json=body, headers=node.headers
    ) as response:
        assert response.status == 200, await response.text()
        out = (await response.json())["outputs"][0]
    return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])


def run(path: Path, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray[Any, Any] = session.run(None, {"x": x})[0]
    return out


async def test_the_classifiers_int8_report(make_node: Any, ocr_repository: Path) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    stats, config = await stats_and_config(node, "text-direction")
    report = stats["quantization"]
    assert report["samples"] == 48
    assert report["epsilon"] == 0.01
    assert report["max_abs_error"] is not None
    assert report["agreement"] is not None
    assert report["speedup"] is not None
    within = report["max_abs_error"] <= report["epsilon"]
    fast = report["speedup"] >= config["quantization"]["min_speedup"]
    assert report["served"] == (within and fast)
    assert config["variant"] == report["variant"]
    figures = (await node.status())["onnx"]["models"]["text-direction"][0]["quantization"]
    assert figures == report
    print("text-direction int8:", report)  # the report docs/onnx.md quotes


async def test_an_int8_variant_that_breaks_epsilon_is_refused(
    make_node: Any, tmp_path: Path, check_set: np.ndarray[Any, Any]
) -> None:
    """Fails if the check is skipped: the int8 file exists and differs from float by more
    than ε, so serving it unchecked would change the answers."""
    repo = tmp_path / "repository"
    folder = model_with(
        repo, "strict", {"int8": True, "epsilon": 1e-6, "min_speedup": 0}, check_set
    )
    node: OnnxNode = await make_node(repo)
    stats, config = await stats_and_config(node, "strict")
    report = stats["quantization"]
    assert report["served"] is False
    assert report["reason"].startswith("int8 breaks ε")
    assert report["max_abs_error"] > 1e-6
    assert config["variant"] == "float"

    x = check_set[:4]
    served = await infer(node, "strict", x)
    float_out = run(folder / "1" / "model.onnx", x)
    int8_out = run(folder / "1" / INT8_FILE_NAME, x)
    assert np.max(np.abs(int8_out - float_out)) > 1e-6  # the variant really differs
    np.testing.assert_allclose(served, float_out, rtol=1e-5, atol=1e-6)


async def test_within_epsilon_the_int8_variant_serves(
    make_node: Any, tmp_path: Path, check_set: np.ndarray[Any, Any]
) -> None:
    repo = tmp_path / "repository"
    folder = model_with(
        repo, "relaxed", {"int8": True, "epsilon": 0.05, "min_speedup": 0}, check_set
    )
    node: OnnxNode = await make_node(repo)
    stats, config = await stats_and_config(node, "relaxed")
    assert stats["quantization"]["served"] is True, stats["quantization"]
    assert config["variant"] == "int8"
    x = check_set[:4]
    np.testing.assert_allclose(
        await infer(node, "relaxed", x), run(folder / "1" / INT8_FILE_NAME, x), rtol=1e-5, atol=1e-6
    )


async def test_without_a_check_set_int8_is_never_served(make_node: Any, tmp_path: Path) -> None:
    repo = tmp_path / "repository"
    model_with(repo, "unchecked", {"int8": True, "min_speedup": 0}, None)
    node: OnnxNode = await make_node(repo)
    stats, config = await stats_and_config(node, "unchecked")
    assert stats["quantization"]["served"] is False
    assert "never served unchecked" in stats["quantization"]["reason"]
    assert config["variant"] == "float"
