"""Jobs survive the process: a SIGKILL mid-job loses no result and duplicates none."""

from __future__ import annotations

import asyncio
from pathlib import Path
import signal
import sys

from heatcompute_node.heat.job_store import STORE_FILE_NAME, JobStore
from heatcompute_node.heat.jobs import Job

ROOT = Path(__file__).resolve().parents[2]
ITEMS = 300


async def start_worker(data_dir: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.node.job_worker",
        str(data_dir),
        *args,
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'addon'}"},
        stdout=asyncio.subprocess.PIPE,
    )


async def read_until(process: asyncio.subprocess.Process, stop: str) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while True:
            line = (await process.stdout.readline()).decode().strip()
            assert line, f"worker ended early: {lines[-5:]}"
            lines.append(line)
            if line.startswith(stop):
                return lines


async def test_a_killed_process_resumes_without_losing_or_duplicating_results(
    tmp_path: Path,
) -> None:
    worker = await start_worker(tmp_path, "submit", str(ITEMS))
    lines = await read_until(worker, "done")
    while sum(line.startswith("done") for line in lines) < ITEMS // 3:
        lines += await read_until(worker, "done")
    worker.send_signal(signal.SIGKILL)  # no chance to clean up: mid-job, mid-commit maybe
    await worker.wait()
    first_run = {int(line.split()[1]) for line in lines if line.startswith("done")}
    assert len(first_run) < ITEMS

    # What a crash leaves: the job still "running", with committed results.
    store = JobStore(tmp_path / STORE_FILE_NAME)
    [crashed] = store.load_jobs()
    assert crashed.state == "running"
    assert crashed.done_items >= len(first_run)
    store.close()

    worker = await start_worker(tmp_path, "resume")
    lines = await read_until(worker, "finished")
    assert await worker.wait() == 0
    # It resumed (running -> queued -> running -> completed), not restarted from 0.
    assert lines[0] == "job queued " + str(crashed.done_items)
    second_run = {int(line.split()[1]) for line in lines if line.startswith("done")}
    assert not second_run & first_run

    store = JobStore(tmp_path / STORE_FILE_NAME)
    [job] = store.load_jobs()
    results = store.results(job.id, 0, ITEMS + 10)
    store.close()
    assert job.state == "completed"
    assert (job.done_items, job.failed_items) == (ITEMS, 0)
    assert [r["index"] for r in results] == list(range(ITEMS))  # complete, none twice
    assert all(r["text"] == f"ITEM {r['index']}" for r in results)


def test_a_result_can_only_be_recorded_once(tmp_path: Path) -> None:
    store = JobStore(tmp_path / STORE_FILE_NAME)
    job = Job(id="job_x", kind="embeddings", created_at=1.0, total_items=2)
    store.insert_job(job, [{"input": "a"}, {"input": "b"}])
    assert store.pending_indices(job.id) == [0, 1]
    assert store.add_result(job, 1, {"embedding": [1.0]}, failed=False)
    assert not store.add_result(job, 1, {"embedding": [2.0]}, failed=False)
    assert store.pending_indices(job.id) == [0]
    assert store.results(job.id, 0, 10) == [{"index": 1, "embedding": [1.0]}]
    assert store.items(job.id, [0]) == {0: {"input": "a"}}
    store.delete_job(job.id)
    assert store.load_jobs() == []
    assert store.results(job.id, 0, 10) == []  # results go with their job
    store.close()
