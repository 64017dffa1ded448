"""silero-vad's model over /v2: unbatched, a scalar input, the caller carries the state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import OnnxNode


async def test_silence_scores_low_and_the_state_comes_back(
    make_node: Any, ocr_repository: Path
) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    body = {
        "inputs": [
            {"name": "input", "shape": [1, 512], "datatype": "FP32", "data": [0.0] * 512},
            {"name": "state", "shape": [2, 1, 128], "datatype": "FP32", "data": [0.0] * 256},
            {"name": "sr", "shape": [], "datatype": "INT64", "data": [16000]},
        ]
    }
    async with node.session.post(
        f"{node.base}/v2/models/voice-activity/infer", json=body, headers=node.headers
    ) as response:
        assert response.status == 200, await response.text()
        outputs = {o["name"]: o for o in (await response.json())["outputs"]}
    assert outputs["output"]["shape"] == [1, 1]
    assert outputs["output"]["data"][0] < 0.1
    assert outputs["stateN"]["shape"] == [2, 1, 128]
    async with node.session.get(
        f"{node.base}/v2/models/voice-activity/config", headers=node.headers
    ) as response:
        config = await response.json()
    assert config["max_batch_size"] == 0
    assert [i["name"] for i in config["input"]] == ["input", "state", "sr"]
