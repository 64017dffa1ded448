"""A node killed (SIGKILL) in the middle of indexing resumes where it stopped: every file
ends up indexed once, no passage twice, and nothing committed is embedded again.

The node runs as users run it (`python -m heatcompute_node`), with the real embedding
model, on the simulated hardware (this machine has no readable power sensors)."""

from __future__ import annotations

import asyncio
from pathlib import Path
import signal
import sqlite3
from typing import Any

import aiohttp

from heatcompute_node.index.chunk import chunk_sections
from heatcompute_node.index.extract import text_sections
from tests.node.test_main import free_port, start_node

from .conftest import TOKEN

FILES = 100
TOPICS = ("heating", "garden", "car", "insurance", "kitchen", "bicycle", "taxes", "school")


def write_notes(share: Path) -> dict[Path, int]:
    """Many small notes; returns each file's passage count as the node's chunker cuts it."""
    share.mkdir(parents=True)
    expected: dict[Path, int] = {}
    for n in range(FILES):
        # Two short passages each: embedding is the slow part (~10 passages/s on two
        # free cores), and the test only needs a run long enough to be cut.
        paragraphs = [
            f"# Note {n}, part {p}\nThe {TOPICS[(n + p) % len(TOPICS)]} entry {n}-{p} "
            f"mentions the {TOPICS[(n * p + 3) % len(TOPICS)]}."
            for p in range(2)
        ]
        path = share / f"note-{n:03d}.txt"
        path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
        expected[path] = len(chunk_sections(text_sections(path.read_bytes())))
    return expected


async def index_figures(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get(f"http://127.0.0.1:{port}/api/index", headers=headers) as response:
        assert response.status == 200
        figures: dict[str, Any] = await response.json()
        return figures


async def run_index(session: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with session.post(
        f"http://127.0.0.1:{port}/api/index/run",
        json={"max_chunks": 100_000},
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=None),  # as long as the indexing takes
    ) as response:
        assert response.status == 200, await response.text()
        progress: dict[str, Any] = await response.json()
        return progress


async def test_a_node_killed_mid_indexing_resumes_without_duplicates(
    socket_enabled: None, tmp_path: Path, minilm: Path
) -> None:
    share, data = tmp_path / "share", tmp_path / "data"
    expected = write_notes(share)
    env = {
        "HEATCOMPUTE_TOKEN": TOKEN,
        "HEATCOMPUTE_MODELS": str(minilm),
        "HEATCOMPUTE_MCP_FOLDERS": str(share),
        "HEATCOMPUTE_LLM_THREADS": "2",
    }
    port = free_port()
    node = await start_node(port, data, **env)
    try:
        async with aiohttp.ClientSession() as session:
            indexing = asyncio.create_task(run_index(session, port))
            # Kill once the first files are committed and while many are still to do.
            async with asyncio.timeout(120):
                while (await index_figures(session, port))["files"] == 0:
                    assert not indexing.done(), "indexing ended before it could be killed"
                    await asyncio.sleep(0.02)
            node.send_signal(signal.SIGKILL)
            await node.wait()
            done, _ = await asyncio.wait({indexing})
            assert isinstance(indexing.exception(), aiohttp.ClientError)
    finally:
        if node.returncode is None:
            node.kill()
            await node.wait()

    port = free_port()
    node = await start_node(port, data, **env)
    try:
        async with aiohttp.ClientSession() as session:
            before = await index_figures(session, port)
            assert 0 < before["files"] < FILES, before  # killed in the middle
            assert before["backlog"]["files_pending"] == FILES - before["files"]
            progress = await run_index(session, port)
            # Only what was not committed is read and embedded again.
            assert progress["files_indexed"] == FILES - before["files"]
            assert progress["chunks_embedded"] == sum(expected.values()) - before["chunks"]
            after = await index_figures(session, port)
            assert (after["files"], after["chunks"]) == (FILES, sum(expected.values()))
            assert after["backlog"]["files_pending"] == 0
    finally:
        node.terminate()
        await node.wait()

    with sqlite3.connect(f"file:{data / 'index.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT files.path, COUNT(*), COUNT(DISTINCT ord), MIN(ord), MAX(ord) "
            "FROM chunks JOIN files ON files.id = chunks.file_id GROUP BY files.path"
        ).fetchall()
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == FILES
    assert {Path(path): count for path, count, _, _, _ in rows} == expected
    for _, count, distinct, low, high in rows:
        assert (distinct, low, high) == (count, 0, count - 1)
