"""read_text jobs: OCR over a folder of images, scheduled by heat like every other job.

Real node on 127.0.0.1 with the default OCR models; the hardware is a fixed reading
(this machine has no readable power sensors), so heat control acts on that.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from heatcompute_node.api.keys import NODE_KEY

from .conftest import OnnxNode
from .images import METER, WORDS, meter_and_label_png


async def job_ends(node: OnnxNode, job_id: str) -> dict[str, Any]:
    """The job once it has ended, woken by the node's own job events."""
    events = node.app[NODE_KEY].events
    queue = events.subscribe()
    try:
        async with asyncio.timeout(120):
            while True:
                async with node.session.get(
                    f"{node.base}/api/jobs/{job_id}", headers=node.headers
                ) as response:
                    job: dict[str, Any] = await response.json()
                if job["state"] in ("completed", "failed", "cancelled"):
                    return job
                while (await queue.get()).name != "job":
                    pass
    finally:
        events.unsubscribe(queue)


async def test_a_folder_of_images_is_read_while_heat_is_wanted(
    make_node: Any, ocr_repository: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "jobs" / "meter"
    folder.mkdir(parents=True)
    (folder / "monday.png").write_bytes(meter_and_label_png())
    (folder / "tuesday.png").write_bytes(meter_and_label_png(upside_down=True))
    (folder / "broken.png").write_bytes(b"not an image")
    node: OnnxNode = await make_node(ocr_repository, job_folders=(tmp_path / "jobs",))

    async with node.session.post(
        f"{node.base}/api/jobs",
        json={"kind": "read_text", "folder": "meter", "pattern": "*.png"},
        headers=node.headers,
    ) as response:
        assert response.status in (200, 201), await response.text()
        job = await response.json()
    assert job["state"] == "queued"
    async with node.session.put(
        f"{node.base}/api/heat", json={"mode": "heat", "target_w": 120}, headers=node.headers
    ) as response:
        assert response.status == 200

    ended = await job_ends(node, job["id"])
    assert ended["state"] == "completed"
    assert ended["progress"] == {"total": 3, "done": 3, "failed": 1, "ratio": 1.0}
    # Results come in item order: the folder's files, sorted.
    broken, monday, tuesday = ended["results"]
    assert "not an image the node can read" in broken["error"]
    assert monday["file"] == "monday.png"
    assert monday["text"] == f"{METER}\n{WORDS}"
    assert sorted(line["text"] for line in tuesday["lines"]) == sorted([METER, WORDS])
    # The work ran as background work on the batchers, and the job has its energy share.
    status = await node.status()
    assert status["onnx"]["background_busy_s"] > 0
    assert ended["energy"]["wh"] > 0


async def test_read_text_jobs_need_a_folder(make_node: Any, ocr_repository: Path) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    async with node.session.post(
        f"{node.base}/api/jobs", json={"kind": "read_text", "items": ["x"]}, headers=node.headers
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "folder"
