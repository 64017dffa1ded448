"""Isolation between models, and version updates without a failed or dropped request.

Real node on 127.0.0.1, real onnxruntime; requests over /v2 with aiohttp.
"""

from __future__ import annotations

import asyncio
from collections import Counter
import json
from pathlib import Path
import shutil
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
import pytest

from .conftest import OnnxNode, add_model

X = np.zeros((1, 3, 48, 192), dtype=np.float32)
BATCHING = {"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_microseconds": 1000}}


def infer_body(x: np.ndarray[Any, Any], name: str = "x") -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "shape": list(x.shape),
                "datatype": "FP32",
                "data": x.reshape(-1).tolist(),
            }
        ]
    }


async def infer(node: OnnxNode, model: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with node.session.post(
        f"{node.base}/v2/models/{model}/infer", json=body, headers=node.headers
    ) as response:
        return response.status, await response.json()


def reshape_model(path: Path) -> Path:
    """A model that computes for 4 values and raises in onnxruntime for any other count."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [2, 2])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        initializer=[shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


async def test_a_broken_model_fails_only_its_own_requests(make_node: Any, tmp_path: Path) -> None:
    repo = tmp_path / "repository"
    add_model(repo, "good", BATCHING)
    broken = add_model(repo, "broken", BATCHING)
    (broken / "1" / "model.onnx").write_bytes(b"this is not an onnx model")
    bad_config = add_model(repo, "bad-config", BATCHING)
    (bad_config / "config.json").write_text('{"max_batch_size": -1}', encoding="utf-8")
    add_model(
        repo,
        "raises",
        {"max_batch_size": 0},
        source=reshape_model(tmp_path / "reshape.onnx"),
    )
    node: OnnxNode = await make_node(repo)

    async with node.session.post(
        f"{node.base}/v2/repository/index", headers=node.headers
    ) as response:
        index = {entry["name"]: entry for entry in await response.json()}
    assert index["good"]["state"] == "READY"
    assert index["broken"]["state"] == "UNAVAILABLE"
    assert "model.onnx" in index["broken"]["reason"]
    assert index["bad-config"]["state"] == "UNAVAILABLE"
    assert "max_batch_size must be a whole number >= 0" in index["bad-config"]["reason"]

    status, body = await infer(node, "broken", infer_body(X))
    assert status == 503
    assert "has no available versions" in body["error"]
    status, body = await infer(node, "bad-config", infer_body(X))
    assert status == 503
    assert "invalid config" in body["error"]

    three = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}
    status, body = await infer(node, "raises", three)
    assert status == 500
    assert body["error"].startswith("onnxruntime failed on model 'raises' version 1")
    four = {"inputs": [{"name": "x", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    status, body = await infer(node, "raises", four)
    assert status == 200
    assert body["outputs"][0]["data"] == [1, 2, 3, 4]

    status, _ = await infer(node, "good", infer_body(X))
    assert status == 200
    figures = (await node.status())["onnx"]["models"]
    assert figures["raises"][0]["requests_failed"] == 1
    assert figures["raises"][0]["requests_success"] == 1
    assert figures["broken"][0]["state"] == "UNAVAILABLE"


class Clients:
    """Clients that infer without pause; counts answers per status and model version.

    Answers on different connections can be read in another order than the node sent
    them, so the order that is checked is each client's own (one request after another)
    and the phase in which a request was sent (the test moves `phase` on once a load has
    answered, and before a load is sent).
    """

    def __init__(self, node: OnnxNode, model: str, count: int) -> None:
        self.node, self.model = node, model
        self.statuses: Counter[int] = Counter()
        self.versions: list[str] = []
        self.phase = 0
        self.by_phase: dict[int, Counter[str]] = {}
        self.by_client: list[list[str]] = [[] for _ in range(count)]
        self._stop = asyncio.Event()
        self._seen = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(count)]

    async def _run(self, client: int) -> None:
        while not self._stop.is_set():
            phase = self.phase
            status, body = await infer(self.node, self.model, infer_body(X))
            self.statuses[status] += 1
            async with self._seen:
                if status == 200:
                    version = body["model_version"]
                    self.versions.append(version)
                    self.by_client[client].append(version)
                    self.by_phase.setdefault(phase, Counter())[version] += 1
                self._seen.notify_all()

    async def wait_for(self, version: str, answers: int) -> None:
        """Until `answers` more answers came from `version` (an event, not a delay)."""
        async with self._seen:
            start = len(self.versions)
            await asyncio.wait_for(
                self._seen.wait_for(lambda: self.versions[start:].count(version) >= answers),
                timeout=60,
            )

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@pytest.mark.parametrize("clients", [8])
async def test_version_2_takes_over_without_a_failed_request_then_rollback(
    make_node: Any, tmp_path: Path, clients: int
) -> None:
    repo = tmp_path / "repository"
    folder = add_model(repo, "direction", BATCHING)
    node: OnnxNode = await make_node(repo)
    load_url = f"{node.base}/v2/repository/models/direction/load"
    running = Clients(node, "direction", clients)
    try:
        await running.wait_for("1", 20)
        # Version 2 appears in the repository while clients infer; loading it builds it
        # beside version 1 and switches over.
        (folder / "2").mkdir()
        shutil.copyfile(folder / "1" / "model.onnx", folder / "2" / "model.onnx")
        async with node.session.post(load_url, headers=node.headers) as response:
            assert response.status == 200, await response.text()
        running.phase = 1
        await running.wait_for("2", 20)
        assert node.engine.served_versions("direction") == [2]

        rollback = {
            "parameters": {
                "config": json.dumps({"version_policy": {"specific": {"versions": [1]}}})
            }
        }
        running.phase = 2  # requests sent while the rollback loads may meet either version
        async with node.session.post(load_url, json=rollback, headers=node.headers) as response:
            assert response.status == 200, await response.text()
        running.phase = 3
        await running.wait_for("1", 20)
        assert node.engine.served_versions("direction") == [1]
    finally:
        await running.stop()

    assert set(running.statuses) == {200}, running.statuses
    # Once a load has answered, every request sent after it meets the new version only.
    assert set(running.by_phase[1]) == {"2"}, running.by_phase
    assert set(running.by_phase[3]) == {"1"}, running.by_phase
    # Each client sees the version switch once per load and never goes back in between.
    for versions in running.by_client:
        switches = [v for i, v in enumerate(versions) if i == 0 or v != versions[i - 1]]
        assert switches == ["1", "2", "1"][: len(switches)], running.by_client
    async with node.session.get(
        f"{node.base}/v2/models/direction/config", headers=node.headers
    ) as response:
        assert (await response.json())["version_policy"] == {"specific": {"versions": [1]}}


async def test_a_failed_update_keeps_the_old_version_serving(
    make_node: Any, tmp_path: Path
) -> None:
    repo = tmp_path / "repository"
    folder = add_model(repo, "direction", BATCHING)
    node: OnnxNode = await make_node(repo)
    (folder / "2").mkdir()
    (folder / "2" / "model.onnx").write_bytes(b"truncated upload")
    async with node.session.post(
        f"{node.base}/v2/repository/models/direction/load", headers=node.headers
    ) as response:
        assert response.status == 400
        assert "failed to load 'direction'" in (await response.json())["error"]
    status, body = await infer(node, "direction", infer_body(X))
    assert status == 200
    assert body["model_version"] == "1"


async def test_a_version_folder_in_other_digits_is_not_a_version(
    make_node: Any, tmp_path: Path
) -> None:
    """A folder named "²" passes str.isdigit() (int() refuses it): the model still loads
    with its real versions, and the node keeps serving."""
    repo = tmp_path / "repository"
    folder = add_model(repo, "direction", BATCHING)
    (folder / "²").mkdir()
    shutil.copyfile(folder / "1" / "model.onnx", folder / "²" / "model.onnx")
    node: OnnxNode = await make_node(repo)
    assert node.engine.served_versions("direction") == [1]
    status, body = await infer(node, "direction", infer_body(X))
    assert status == 200, body
    assert body["model_version"] == "1"
