"""The node's model download API: start, follow, refuse (a model host on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from heatcompute_node.api.openai_service import DOWNLOADS_KEY

from ..model_server import ModelHost
from .conftest import SMALL_ENGINE, TOKEN, LiveNode, start_node

HEADERS = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def host(socket_enabled: None, tiny_model: Path) -> AsyncIterator[ModelHost]:
    served = ModelHost(
        files={"tiny.gguf": tiny_model.read_bytes(), "notes.gguf": b"not a model\n" * 1000}
    )
    await served.start()
    yield served
    await served.close()


@pytest.fixture
async def node(socket_enabled: None, tmp_path: Path) -> AsyncIterator[LiveNode]:
    live = await start_node(tmp_path, (), SMALL_ENGINE)
    yield live
    await live.client.close()
    await live.server.close()


async def call(
    node: LiveNode, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers=HEADERS) as session,
        session.request(method, node.base_url + path, json=body) as response,
    ):
        return response.status, await response.json()


async def downloads_finished(node: LiveNode) -> None:
    """Wait for the node's download tasks themselves (no polling)."""
    await asyncio.gather(*node.app[DOWNLOADS_KEY].tasks, return_exceptions=True)


async def test_a_download_is_followed_to_done_and_the_model_is_served(
    node: LiveNode, host: ModelHost, tiny_model: Path
) -> None:
    data = tiny_model.read_bytes()
    host.hold_back = True
    body = {
        "url": host.url("tiny.gguf"),
        "name": "tiny-dl.gguf",
        "sha256": hashlib.sha256(data).hexdigest(),
        "size_bytes": len(data),
    }
    status, started = await call(node, "POST", "/api/models/download", body)
    assert status == 202
    assert started["state"] == "downloading"

    await asyncio.wait_for(host.half_sent.wait(), 10)
    # Asking again for the same file attaches to the running download...
    status, again = await call(node, "POST", "/api/models/download", body)
    assert (status, again["state"]) == (202, "downloading")
    # ...but another URL for the same name is refused.
    status, other = await call(
        node, "POST", "/api/models/download", {**body, "url": host.url("notes.gguf")}
    )
    assert (status, other["error"]["code"]) == (409, "download_in_progress")

    host.release.set()
    await downloads_finished(node)
    status, done = await call(node, "GET", "/api/models/downloads/tiny-dl.gguf")
    assert status == 200
    assert done["state"] == "done"
    assert done["bytes_done"] == done["bytes_total"] == len(data)
    assert done["fraction"] == 1.0
    assert host.requests == ["tiny.gguf"]  # one download, not two
    _, models = await call(node, "GET", "/v1/models")
    assert "tiny-dl" in [m["id"] for m in models["data"]]
    # The model is there now: asking once more fetches nothing.
    status, present = await call(node, "POST", "/api/models/download", body)
    assert (status, present["state"]) == (200, "done")
    assert host.requests == ["tiny.gguf"]


async def test_a_wrong_checksum_fails_with_its_code_and_leaves_no_file(
    node: LiveNode, host: ModelHost
) -> None:
    body = {"url": host.url("tiny.gguf"), "name": "tiny-bad.gguf", "sha256": "ab" * 32}
    status, _ = await call(node, "POST", "/api/models/download", body)
    assert status == 202
    await downloads_finished(node)
    status, failed = await call(node, "GET", "/api/models/downloads/tiny-bad.gguf")
    assert (status, failed["state"], failed["error_code"]) == (200, "failed", "checksum_mismatch")
    assert not (node.manager.models_dir / "tiny-bad.gguf").exists()  # type: ignore[operator]
    _, models = await call(node, "GET", "/v1/models")
    assert "tiny-bad" not in [m["id"] for m in models["data"]]


async def test_a_file_that_is_no_model_is_removed(node: LiveNode, host: ModelHost) -> None:
    body = {"url": host.url("notes.gguf"), "name": "notes.gguf"}
    assert (await call(node, "POST", "/api/models/download", body))[0] == 202
    await downloads_finished(node)
    _, failed = await call(node, "GET", "/api/models/downloads/notes.gguf")
    assert (failed["state"], failed["error_code"]) == ("failed", "invalid_model")
    assert not (node.manager.models_dir / "notes.gguf").exists()  # type: ignore[operator]


URL = "http://127.0.0.1:9/y.gguf"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "ftp://x/y.gguf", "name": "y.gguf"}, 400, "invalid_value"),
        ({"url": URL, "name": "../y.gguf"}, 400, "invalid_value"),
        # "$" in re.match let a trailing newline through: a file the node never lists.
        ({"url": URL, "name": "y.gguf\n"}, 400, "invalid_value"),
        ({"url": URL, "name": "y.gguf", "sha256": "zz" * 32}, 400, "invalid_value"),
        ({"url": URL, "name": "y.gguf", "size_bytes": -1}, 400, "invalid_value"),
        ({"url": URL, "name": "y.gguf", "size_bytes": 1 << 60}, 507, "insufficient_storage"),
    ],
)
async def test_bad_requests_are_refused_before_any_byte_moves(
    node: LiveNode, body: dict[str, Any], status: int, code: str
) -> None:
    answer_status, answer = await call(node, "POST", "/api/models/download", body)
    assert (answer_status, answer["error"]["code"]) == (status, code)
    assert not node.app[DOWNLOADS_KEY].tasks


async def test_an_unknown_download_is_not_found(node: LiveNode) -> None:
    status, answer = await call(node, "GET", "/api/models/downloads/none.gguf")
    assert (status, answer["error"]["code"]) == (404, "download_not_found")
