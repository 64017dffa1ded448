"""The model manager (tiny models) and resumable, checked downloads (a local server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
import hashlib
from pathlib import Path
import shutil

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from heatcompute_node.engines.llm.download import DownloadError, DownloadProgress, download
from heatcompute_node.engines.llm.models import (
    EngineSettings,
    ModelManager,
    ModelNotFoundError,
)
from heatcompute_node.engines.llm.request import GenerationRequest

SMALL = EngineSettings(n_ctx=512, n_slots=2, n_threads=1, idle_unload_s=60)


@pytest.fixture
async def manager(tmp_path: Path, tiny_model: Path) -> AsyncIterator[ModelManager]:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_model, models / "tiny-chat.gguf")
    mgr = ModelManager(models, [], SMALL)
    await mgr.start()
    yield mgr
    await mgr.close()


async def test_models_dir_and_paths_are_registered(tmp_path: Path, tiny_model: Path) -> None:
    mgr = ModelManager(tmp_path / "none", [tiny_model], SMALL)
    await mgr.start()
    try:
        assert [(e.id, e.kind, e.loaded) for e in mgr.entries()] == [("tiny", "chat", False)]
        with pytest.raises(ModelNotFoundError):
            mgr.find("other", "chat")
    finally:
        await mgr.close()


async def test_chat_and_embeddings_load_on_demand_and_unload_when_idle(
    manager: ModelManager,
) -> None:
    chat = await manager.chat("tiny-chat")
    tokens = tuple(chat.tokenizer.tokenize("hello"))
    done = await chat.scheduler.submit(
        GenerationRequest(prompt=tokens, max_tokens=3, ignore_eos=True)
    ).result()
    assert done.completion_tokens == 3
    embedder = await manager.embeddings(None)  # a chat model embeds with mean pooling
    vectors = await embedder.embed(embedder.tokenize(["one", "two"]))
    assert len(vectors) == 2
    assert len(vectors[0]) == embedder.dimensions
    entry = manager.find("tiny-chat", "chat")
    assert entry.loaded
    assert manager.status()[0]["state"] == "loaded"

    assert await manager.unload_idle(now=entry.last_used + 1) == []  # not idle yet
    assert await manager.unload_idle(now=entry.last_used + 61) == ["tiny-chat"]
    assert manager.status()[0]["state"] == "available"
    again = await manager.chat(None)  # reloaded on demand
    assert again is not chat
    assert (
        await again.scheduler.submit(
            GenerationRequest(prompt=tokens, max_tokens=2, ignore_eos=True)
        ).result()
    ).completion_tokens == 2


# --- downloads -----------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
async def file_server(socket_enabled: None) -> AsyncIterator[tuple[str, list[str | None]]]:
    """Serves PAYLOAD with Range support; records the Range header of each request."""
    ranges: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ranges.append(request.headers.get("Range"))
        if request.path == "/broken":
            raise web.HTTPInternalServerError
        return web.Response(body=PAYLOAD) if "Range" not in request.headers else _ranged(request)

    def _ranged(request: web.Request) -> web.Response:
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        if start >= len(PAYLOAD):
            return web.Response(status=416)
        return web.Response(
            status=206,
            body=PAYLOAD[start:],
            headers={"Content-Range": f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}"},
        )

    app = web.Application()
    app.router.add_get("/{name}", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield f"http://127.0.0.1:{server.port}", ranges
    await server.close()


async def test_download_resumes_checks_and_renames(
    file_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, ranges = file_server
    target = tmp_path / "m.gguf"
    part = tmp_path / "m.gguf.part"
    part.write_bytes(PAYLOAD[:300_000])  # an earlier, interrupted attempt
    progress = DownloadProgress(name="m.gguf", url=f"{base}/m.gguf")
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    async with aiohttp.ClientSession() as session:
        await download(session, f"{base}/m.gguf", target, sha256=sha, progress=progress)
    assert ranges == ["bytes=300000-"]
    assert target.read_bytes() == PAYLOAD
    assert not part.exists()
    assert progress.as_dict()["fraction"] == 1.0
    assert progress.state == "done"


async def test_download_with_a_wrong_checksum_leaves_nothing(
    file_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, _ = file_server
    target = tmp_path / "m.gguf"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError, match="sha256"):
            await download(session, f"{base}/m.gguf", target, sha256="0" * 64)
    assert not target.exists()
    assert not (tmp_path / "m.gguf.part").exists()


async def test_download_of_a_failing_url_reports_failure(
    file_server: tuple[str, list[str | None]], tmp_path: Path
) -> None:
    base, _ = file_server
    progress = DownloadProgress(name="b.gguf", url=f"{base}/broken")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DownloadError):
            await download(session, f"{base}/broken", tmp_path / "b.gguf", progress=progress)
    assert progress.state == "failed"
    assert not (tmp_path / "b.gguf").exists()


async def test_manager_download_registers_the_model(
    file_server: tuple[str, list[str | None]], tmp_path: Path, tiny_model: Path
) -> None:
    base, _ = file_server
    mgr = ModelManager(tmp_path / "models", [], SMALL)
    await mgr.start()
    try:
        with pytest.raises(ValueError, match="bad model file name"):
            async with aiohttp.ClientSession() as session:
                await mgr.download(session, f"{base}/x", name="../evil.gguf")
        # A real GGUF through the same path: the tiny model, served by the test server.
        global PAYLOAD  # noqa: PLW0603 - the fixture serves whatever PAYLOAD holds
        saved, PAYLOAD = PAYLOAD, tiny_model.read_bytes()
        try:
            async with aiohttp.ClientSession() as session:
                entry = await mgr.download(session, f"{base}/tiny.gguf", name="tiny-dl.gguf")
        finally:
            PAYLOAD = saved
        assert entry.id == "tiny-dl"
        assert entry.kind == "chat"
        assert mgr.find("tiny-dl", "chat") is entry
    finally:
        await mgr.close()
