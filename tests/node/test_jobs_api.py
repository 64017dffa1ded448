"""/api/jobs on a real node app: validation, every state transition, cancel, deadlines.

The job runner is a fake (tests/node/fake_runner.py); scheduling, persistence, the heat
controller and the HTTP layer are the real ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from heatcompute_node.app import create_app
from heatcompute_node.settings import Settings

from .conftest import MakeClient, NodeClient, StaticHardware, auth
from .fake_runner import FakeRunner
from .jobs_helpers import count_samples, get_job, heat_service_of, job_events, set_heat, submit

CHAT = {"kind": "chat", "items": [{"messages": [{"role": "user", "content": "hi"}]}]}


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@pytest.fixture
def job_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.txt").write_text("beta beta")
    (folder / "c.md").write_text("not matched")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    (folder / "link.txt").symlink_to(secret)
    return folder


@pytest.fixture
async def client(
    socket_enabled: None,
    settings: Settings,
    hardware: StaticHardware,
    make_client: MakeClient,
    runner: FakeRunner,
    job_folder: Path,
) -> NodeClient:
    settings = replace(settings, job_folders=(job_folder,), max_queued_jobs=3)
    return await make_client(create_app(settings, hardware=hardware, job_runner=runner))


NOT_HERE = {"folder_not_allowed", "folder_not_found", "empty_folder"}


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"kind": "translate", "items": ["x"]}, "invalid_job", "kind"),
        ({"kind": "completions"}, "invalid_job", "items"),
        ({"kind": "completions", "items": []}, "invalid_job", "items"),
        ({"kind": "completions", "items": [1]}, "invalid_job", "items"),
        ({"kind": "completions", "items": ["x"] * 10_001}, "too_many_items", "items"),
        (
            {"kind": "chat", "items": [{"messages": [{"role": "god", "content": "x"}]}]},
            "invalid_job",
            "items",
        ),
        ({"kind": "chat", "items": ["hi"]}, "invalid_job", "items"),
        ({**CHAT, "deadline": "2099-01-01T00:00:00"}, "invalid_job", "deadline"),
        ({**CHAT, "deadline": "tomorrow"}, "invalid_job", "deadline"),
        ({**CHAT, "deadline_in_s": -5}, "invalid_job", "deadline_in_s"),
        (
            {**CHAT, "deadline_in_s": 5, "deadline": "2099-01-01T00:00:00Z"},
            "invalid_job",
            "deadline",
        ),
        ({**CHAT, "priority": "urgent"}, "invalid_job", "priority"),
        ({**CHAT, "temperature": 3}, "invalid_job", "temperature"),
        ({**CHAT, "max_tokens": 0}, "invalid_job", "max_tokens"),
        ({**CHAT, "max_tokens": 1.5}, "invalid_job", "max_tokens"),
        ({**CHAT, "stop": [1]}, "invalid_job", "stop"),
        ({**CHAT, "colour": "red"}, "unknown_field", "colour"),
        ({**CHAT, "model": "nope"}, "model_not_available", "model"),
        ({"kind": "embeddings", "items": ["x"], "max_tokens": 5}, "invalid_job", "max_tokens"),
        ({"kind": "chat", "folder": "."}, "invalid_job", "folder"),
        ({"kind": "embeddings", "folder": ".", "items": ["x"]}, "invalid_job", "folder"),
        ({"kind": "embeddings", "folder": "/etc"}, "folder_not_allowed", "folder"),
        ({"kind": "embeddings", "folder": "../"}, "folder_not_allowed", "folder"),
        ({"kind": "embeddings", "folder": "missing"}, "folder_not_found", "folder"),
        ({"kind": "embeddings", "folder": ".", "pattern": "*.pdf"}, "empty_folder", "folder"),
        ({"kind": "embeddings", "folder": ".", "pattern": "../*"}, "invalid_job", "pattern"),
    ],
)
async def test_invalid_jobs_are_refused_with_a_reason(
    client: NodeClient, body: dict[str, Any], code: str, param: str
) -> None:
    response = await client.post("/api/jobs", json=body, headers=auth())
    # What the node doesn't have (a model, a folder, files in it) is a 404.
    assert response.status == (404 if code in NOT_HERE else 400)
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    listing = await (await client.get("/api/jobs", headers=auth())).json()
    assert listing == {"object": "list", "data": []}


async def test_a_deadline_already_past_means_due_now(client: NodeClient) -> None:
    job = await submit(client, {**CHAT, "deadline": "2001-01-01T00:00:00Z"})
    assert job["deadline"] is not None
    assert job["state"] in ("queued", "running", "completed")


async def test_a_full_queue_is_refused_with_429(client: NodeClient) -> None:
    for _ in range(3):
        await submit(client, CHAT)
    response = await client.post("/api/jobs", json=CHAT, headers=auth())
    assert response.status == 429
    assert response.headers["Retry-After"] == "60"
    assert (await response.json())["error"]["code"] == "job_queue_full"


async def test_a_job_waits_for_heat_then_runs_to_completion(
    client: NodeClient, runner: FakeRunner
) -> None:
    samples = count_samples(client)
    async with job_events(client) as events:
        job = await submit(
            client,
            {"kind": "completions", "items": ["one", "two", "three"], "max_tokens": 8},
        )
        assert job["state"] == "queued"
        assert job["progress"] == {"total": 3, "done": 0, "failed": 0, "ratio": 0.0}
        # No heat wanted and no deadline: nothing runs, however many control steps pass.
        await samples.wait(10)
        assert runner.started == []
        status = await (await client.get("/api/status", headers=auth())).json()
        assert status["work"]["jobs_pending"] == 1
        assert status["work"]["background"] == "idle"
        assert status["intensity"] == 0.0

        await set_heat(client, "heat", 100.0)
        await events.state(job["id"], "completed")
        assert events.states(job["id"]) == ["queued", "running", "completed"]
    done = await get_job(client, job["id"])
    assert done["progress"] == {"total": 3, "done": 3, "failed": 0, "ratio": 1.0}
    assert [r["text"] for r in done["results"]] == ["ONE", "TWO", "THREE"]
    assert [r["index"] for r in done["results"]] == [0, 1, 2]
    assert done["usage"] == {"prompt_tokens": 3, "completion_tokens": 6, "total_tokens": 9}
    assert done["started_at"] is not None
    assert done["finished_at"] is not None
    assert done["deadline_missed"] is False
    # The fake engine got knobs from the governor while the job ran.
    assert runner.fake_engine is not None
    assert len(runner.fake_engine.calls) > 0


async def test_heat_going_away_sends_a_running_job_back_to_the_queue(
    client: NodeClient, runner: FakeRunner
) -> None:
    runner.gate.clear()
    items = [f"item {i}" for i in range(8)]
    async with job_events(client) as events:
        job = await submit(client, {"kind": "completions", "items": items, "max_tokens": 8})
        await set_heat(client, "heat", 100.0)
        await events.state(job["id"], "running")
        await runner.wait_for(lambda: len(runner.started) == 4)  # max_background items
        await set_heat(client, "off")
        await count_samples(client).wait(2)  # the controller acts on the next sample
        runner.gate.set()  # the items in flight finish...
        # ... and the job waits for heat again.
        assert await events.states_until(job["id"], 3) == ["queued", "running", "queued"]
        assert len(runner.finished) == 4
        status = await (await client.get("/api/status", headers=auth())).json()
        assert status["work"]["background"] == "idle"
        await set_heat(client, "heat", 100.0)
        await events.state(job["id"], "completed")
        assert events.states(job["id"]) == ["queued", "running", "queued", "running", "completed"]
    done = await get_job(client, job["id"])
    assert [r["text"] for r in done["results"]] == [item.upper() for item in items]
    assert sorted(runner.finished) == sorted(items)  # each item ran exactly once


async def test_cancel_a_queued_and_a_running_job_then_delete(
    client: NodeClient, runner: FakeRunner
) -> None:
    runner.gate.clear()
    async with job_events(client) as events:
        queued = await submit(client, CHAT)
        response = await client.delete(f"/api/jobs/{queued['id']}", headers=auth())
        assert response.status == 200
        assert (await response.json())["state"] == "cancelled"

        running = await submit(client, {"kind": "completions", "items": ["a", "b", "c", "d", "e"]})
        await set_heat(client, "heat", 100.0)
        await events.state(running["id"], "running")
        await runner.wait_for(lambda: len(runner.started) == 4)
        cancelled = await (await client.delete(f"/api/jobs/{running['id']}", headers=auth())).json()
        assert cancelled["state"] == "cancelled"
        # The items in flight were cancelled in the engine, not left to finish.
        assert sorted(runner.cancelled) == ["a", "b", "c", "d"]
        assert await events.states_until(running["id"], 3) == ["queued", "running", "cancelled"]
    runner.gate.set()
    assert (await get_job(client, running["id"]))["results"] == []
    # Deleting a finished job forgets it.
    deleted = await (await client.delete(f"/api/jobs/{running['id']}", headers=auth())).json()
    assert deleted == {"id": running["id"], "object": "job.deleted", "deleted": True}
    response = await client.get(f"/api/jobs/{running['id']}", headers=auth())
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "job_not_found"
    assert (await client.delete("/api/jobs/job_unknown", headers=auth())).status == 404


async def test_a_deadline_is_honoured_with_no_heat_wanted(
    client: NodeClient, runner: FakeRunner
) -> None:
    """Heat is off, but the estimate (10 tok/s prior, 256 tokens an item) says that two
    items need ~77 s with the safety factor: a 90 s deadline forces the job now."""
    async with job_events(client) as events:
        later = await submit(client, {**CHAT, "deadline_in_s": 3600})
        urgent = await submit(
            client, {"kind": "completions", "items": ["x", "y"], "deadline_in_s": 90}
        )
        done = await events.state(urgent["id"], "completed")
    assert done["deadline_missed"] is False
    assert done["energy"]["deadline_forced_s"] >= 0
    status = await (await client.get("/api/status", headers=auth())).json()
    # The job with an hour to go waits for heat.
    assert (await get_job(client, later["id"]))["state"] == "queued"
    assert sorted(runner.started) == ["x", "y"]
    assert status["work"]["jobs_pending"] == 1


async def test_forced_work_runs_at_the_power_cap(client: NodeClient, runner: FakeRunner) -> None:
    runner.gate.clear()
    async with job_events(client) as events:
        job = await submit(client, {"kind": "completions", "items": ["x"], "deadline_in_s": 60})
        await events.state(job["id"], "running")
        samples = count_samples(client)
        await samples.wait(2)
        status = await (await client.get("/api/status", headers=auth())).json()
        assert status["work"]["background"] == "deadline"
        assert status["governor"]["setpoint_w"] == 150.0
        assert status["intensity"] > 0
        assert status["governor"]["heat_target_w"] == 0.0
        runner.gate.set()
        await events.state(job["id"], "completed")


async def test_failed_items_and_an_all_failed_job(client: NodeClient) -> None:
    await set_heat(client, "heat", 100.0)
    async with job_events(client) as events:
        mixed = await submit(client, {"kind": "completions", "items": ["ok", "bad one"]})
        await events.state(mixed["id"], "completed")
        failed = await submit(client, {"kind": "completions", "items": ["bad", "bad two"]})
        await events.state(failed["id"], "failed")
    results = (await get_job(client, mixed["id"]))["results"]
    assert results[0]["text"] == "OK"
    assert "cannot do" in results[1]["error"]
    job = await get_job(client, failed["id"])
    assert job["progress"]["failed"] == 2
    assert "every item failed" in job["error"]


async def test_a_busy_engine_delays_an_item_without_failing_it(
    client: NodeClient, runner: FakeRunner
) -> None:
    runner.busy_once.add("later")
    await set_heat(client, "heat", 100.0)
    async with job_events(client) as events:
        job = await submit(client, {"kind": "completions", "items": ["later"]})
        await events.state(job["id"], "completed")
    assert (await get_job(client, job["id"]))["results"][0]["text"] == "LATER"


async def test_a_folder_job_reads_only_inside_the_allowed_folder(
    client: NodeClient, job_folder: Path
) -> None:
    await set_heat(client, "heat", 100.0)
    async with job_events(client) as events:
        job = await submit(client, {"kind": "embeddings", "folder": str(job_folder)})
        assert job["progress"]["total"] == 2  # a.txt, sub/b.txt; not c.md, not the symlink
        assert job["folder"] == str(job_folder.resolve())
        await events.state(job["id"], "completed")
    results = (await get_job(client, job["id"]))["results"]
    assert [r["embedding"][0] for r in results] == [len("alpha"), len("beta beta")]


async def test_results_are_paged(client: NodeClient) -> None:
    await set_heat(client, "heat", 100.0)
    items = [f"t{i}" for i in range(5)]
    async with job_events(client) as events:
        job = await submit(client, {"kind": "embeddings", "items": items})
        await events.state(job["id"], "completed")
    page = await get_job(client, job["id"], offset=1, limit=2)
    assert [r["index"] for r in page["results"]] == [1, 2]
    assert page["results_next_offset"] == 3
    last = await get_job(client, job["id"], offset=3, limit=2)
    assert last["results_next_offset"] is None
    bad = await client.get(f"/api/jobs/{job['id']}?limit=0", headers=auth())
    assert bad.status == 400


async def test_listing_filters_by_state(client: NodeClient) -> None:
    first = await submit(client, CHAT)
    await client.delete(f"/api/jobs/{first['id']}", headers=auth())
    second = await submit(client, {**CHAT, "priority": "high", "metadata": {"by": "test"}})
    listing = await (await client.get("/api/jobs", headers=auth())).json()
    assert [job["id"] for job in listing["data"]] == [second["id"], first["id"]]
    queued = await (await client.get("/api/jobs?state=queued", headers=auth())).json()
    assert [job["id"] for job in queued["data"]] == [second["id"]]
    assert queued["data"][0]["metadata"] == {"by": "test"}
    assert (await client.get("/api/jobs?state=lost", headers=auth())).status == 400


async def test_background_jobs_switched_off_leaves_jobs_queued(
    client: NodeClient, runner: FakeRunner
) -> None:
    await client.patch("/api/config", json={"background_jobs": False}, headers=auth())
    await set_heat(client, "heat", 100.0)
    samples = count_samples(client)
    job = await submit(client, CHAT)
    await samples.wait(10)
    assert runner.started == []
    assert (await get_job(client, job["id"]))["state"] == "queued"


async def test_filler_runs_only_when_enabled_heat_wanted_and_queue_empty(
    client: NodeClient, runner: FakeRunner
) -> None:
    samples = count_samples(client)
    await set_heat(client, "heat", 100.0)
    await samples.wait(5)
    assert runner.fillers == 0  # off by default
    await client.patch("/api/config", json={"filler": True}, headers=auth())
    await runner.wait_for(lambda: runner.fillers >= 3)
    status = await (await client.get("/api/status", headers=auth())).json()
    assert status["work"]["background"] == "filler"
    assert status["work"]["filler_items"] >= 3
    await set_heat(client, "off")
    await samples.wait(3)
    before = runner.fillers
    await samples.wait(5)
    # At most the items that were in flight when heat went off finish.
    assert runner.fillers - before <= 4


async def test_background_requests_over_the_api_run_with_heat_or_after_a_wait(
    client: NodeClient, runner: FakeRunner
) -> None:
    """Not jobs: requests with priority background that a caller waits on."""
    controller = heat_service_of(client).controller
    assert controller is not None
    controller.external_wait_s = 3600.0
    samples = count_samples(client)
    runner.external = 1
    await samples.wait(3)
    now = await (await client.get("/api/status", headers=auth())).json()
    assert (now["intensity"], now["work"]["background"]) == (0.0, "idle")
    await set_heat(client, "heat", 100.0)
    await samples.wait(3)
    now = await (await client.get("/api/status", headers=auth())).json()
    assert now["intensity"] > 0
    assert now["work"]["background"] == "requests"
    assert now["governor"]["setpoint_w"] == 100.0
    await set_heat(client, "off")
    controller.external_wait_s = 0.0  # ... they have waited long enough: full power
    await samples.wait(3)
    now = await (await client.get("/api/status", headers=auth())).json()
    assert now["work"]["background"] == "requests"
    assert now["governor"]["setpoint_w"] == 150.0
    runner.external = 0
    await samples.wait(3)
    now = await (await client.get("/api/status", headers=auth())).json()
    assert (now["intensity"], now["work"]["background"]) == (0.0, "idle")
