"""The add-on image, run as the Supervisor runs it, against a Supervisor stand-in.

Real: the image built from addon/Dockerfile, the node in it, Docker's stop and restart.
Stand-in: the Supervisor (tests/addon/supervisor_standin.py) and the hardware (the
simulated room, as on any machine without power sensors).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from heatcompute_node.engines.onnx.defaults import CONFIGS

from .container import AddonContainer
from .supervisor_standin import DiscoveryEvent, SupervisorStandIn

# A cold start loads Python, llama.cpp and onnxruntime from a fresh image.
START_TIMEOUT_S = 120


async def next_event(
    standin: SupervisorStandIn, timeout: float = START_TIMEOUT_S
) -> DiscoveryEvent:
    return await asyncio.wait_for(standin.events.get(), timeout)


def energy_on_disk(data_dir: Path) -> float:
    state: dict[str, Any] = json.loads((data_dir / "energy.json").read_text(encoding="utf-8"))
    return float(state["total_kwh"])


async def first_flush(data_dir: Path, timeout: float = 10) -> float:
    """The counter's first write (the node's first samples); the file is written by
    another process, so it is looked for, not waited on."""
    path = data_dir / "energy.json"
    for _ in range(int(timeout * 10)):
        if path.exists():
            return energy_on_disk(data_dir)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} not written within {timeout} s")


async def node_ran_for(
    http: aiohttp.ClientSession, base: str, token: str, *, seconds: float
) -> None:
    """Until the node's own clock has moved on by `seconds` (its samples with it)."""
    _, status = await get_json(http, f"{base}/api/status", token=token)
    until = status["uptime_s"] + seconds
    async with asyncio.timeout(seconds * 10):
        while status["uptime_s"] < until:
            await asyncio.sleep(0.2)
            _, status = await get_json(http, f"{base}/api/status", token=token)


async def get_json(
    http: aiohttp.ClientSession, url: str, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def test_announces_a_working_token_and_keeps_its_data(
    addon: AddonContainer,
    supervisor: tuple[SupervisorStandIn, int],
    http: aiohttp.ClientSession,
) -> None:
    standin, _ = supervisor
    # Only the stop flush writes the counter after the first sample: what reaches the
    # disk after `docker restart` was flushed on SIGTERM.
    addon.env["HEATCOMPUTE_ENERGY_FLUSH_S"] = "3600"
    await addon.run()
    announced = await next_event(standin)
    assert (announced.action, announced.service) == ("set", "heatcompute")
    assert announced.config["port"] == addon.port
    token = announced.config["token"]
    auth = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{addon.port}"

    status, health = await get_json(http, f"{base}/health")
    assert status == 200, health
    status, _ = await get_json(http, f"{base}/api/status", token="not-the-token")
    assert status == 401
    status, node = await get_json(http, f"{base}/api/status", token=token)
    assert status == 200, node
    assert node["name"] == "addon-test"
    node_id = node["node_id"]
    # The image's own chat model answers without any model hub.
    status, models = await get_json(http, f"{base}/v1/models", token=token)
    assert status == 200
    chat_models = [m["id"] for m in models["data"] if m.get("kind") == "chat"]
    assert chat_models, models
    embedding_models = [m["id"] for m in models["data"] if m.get("kind") == "embedding"]
    assert embedding_models == ["all-MiniLM-L6-v2"], models
    async with http.post(
        f"{base}/v1/embeddings",
        json={"model": embedding_models[0], "input": "a warm room"},
        headers=auth,
    ) as response:
        assert response.status == 200, await response.text()
        assert len((await response.json())["data"][0]["embedding"]) == 384
    # ... and its ONNX models are the node's repository, ready for /v2.
    async with http.post(f"{base}/v2/repository/index", json={}, headers=auth) as response:
        assert response.status == 200, await response.text()
        names = sorted(entry["name"] for entry in await response.json())
    assert names == ["text-detection", "text-direction", "text-recognition", "voice-activity"]
    # ... served with the configs the node ships (the image lays them out at build time).
    status, config = await get_json(http, f"{base}/v2/models/text-recognition/config", token)
    assert status == 200, config
    shipped = CONFIGS["text-recognition"]
    assert config["max_batch_size"] == shipped["max_batch_size"]
    assert config["instance_group"] == [{"count": shipped["instance_count"], "kind": "KIND_CPU"}]

    # A job for later (a day's deadline, no heat wanted: it waits in the queue).
    async with http.post(
        f"{base}/api/jobs",
        json={"kind": "completions", "items": ["The heater"], "deadline_in_s": 86400},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status in (200, 201, 202), await response.text()
        job_id = (await response.json())["id"]
    first = await first_flush(addon.data_dir)
    # Energy accrues after that write, and only the stop flush can write it.
    await node_ran_for(http, base, token, seconds=2.0)

    await addon.restart()
    removed = await next_event(standin)
    assert (removed.action, removed.uuid) == ("removed", announced.uuid)
    again = await next_event(standin)
    assert (again.action, again.config["token"]) == ("set", token)
    flushed_on_stop = energy_on_disk(addon.data_dir)
    assert flushed_on_stop > first

    status, node = await get_json(http, f"{base}/api/status", token=token)
    assert node["energy_kwh"] >= round(flushed_on_stop, 4)
    assert node["node_id"] == node_id
    status, job = await get_json(http, f"{base}/api/jobs/{job_id}", token=token)
    assert status == 200, job
    assert job["id"] == job_id

    # SIGTERM: stopped in time, with the energy since the last write on disk.
    await node_ran_for(http, base, token, seconds=2.0)
    before_stop = energy_on_disk(addon.data_dir)
    assert before_stop > flushed_on_stop  # the restarted node counts on from the file
    elapsed = await addon.stop()
    assert elapsed < 10, f"stopping took {elapsed:.1f} s"
    assert (await addon.state())["ExitCode"] == 0
    assert energy_on_disk(addon.data_dir) > before_stop
    gone = await next_event(standin, timeout=1)
    assert (gone.action, gone.uuid) == ("removed", again.uuid)
    assert not standin.messages


async def test_a_new_token_is_announced_again(
    addon: AddonContainer, supervisor: tuple[SupervisorStandIn, int]
) -> None:
    standin, _ = supervisor
    await addon.run()
    first = await next_event(standin)
    await addon.stop()
    assert (await next_event(standin, timeout=1)).action == "removed"

    (addon.data_dir / "token").unlink()  # the owner resets the token
    await addon.remove()
    addon.name += "-2"
    await addon.run()
    second = await next_event(standin)
    assert second.action == "set"
    assert second.config["token"] != first.config["token"]
    assert (addon.data_dir / "token").read_text().strip() == second.config["token"]


async def test_a_bad_option_exits_with_one_clear_line(addon: AddonContainer) -> None:
    options = json.loads((addon.data_dir / "options.json").read_text())
    addon.write_options({**options, "max_power_w": 100, "idle_power_w": 500})
    await addon.run()
    assert await addon.wait_exit() == 2
    lines = [line for line in (await addon.logs()).splitlines() if line.strip()]
    assert lines == [
        "heatcompute_node: invalid configuration: idle_power_w must be between 0 and max_power_w"
    ]
