"""Fixtures for the document index: a real node on 127.0.0.1 with the real embedding
model (all-MiniLM-L6-v2 on llama.cpp) and the real OCR models (onnxruntime), serving a
folder of documents the tests write. Only the power sensor is a fixed reading (this
machine has none readable)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
import pytest

from heatcompute_node.api.index import INDEX_KEY
from heatcompute_node.app import create_app
from heatcompute_node.engines.onnx.ocr import OCR_MODELS
from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.index.document_index import DocumentIndex
from heatcompute_node.settings import Settings
from scripts.onnx_models import build_repository

from .documents import write_household

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "models" / "all-MiniLM-L6-v2.gguf"
TOKEN = "index-test-token-0123456789"


class QuietHardware(HardwareSource):
    """Stands in for the power and temperature sensors this machine doesn't have."""

    name = "static"

    def read(self) -> HardwareReading:
        return HardwareReading(power_w=40.0, temperatures_c={"package-0": 50.0})


@pytest.fixture(scope="session")
def minilm() -> Path:
    if not MINILM.exists():
        pytest.skip("all-MiniLM-L6-v2 is not converted into models/ (run scripts/setup)")
    return MINILM


@pytest.fixture(scope="session")
def ocr_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("onnx") / "repository", names=OCR_MODELS)


@dataclass(slots=True)
class IndexNode:
    app: web.Application
    server: TestServer
    session: ClientSession

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    @property
    def index(self) -> DocumentIndex:
        return self.app[INDEX_KEY]

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=self.headers) as response:
            return response.status, await response.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.post(self.base + path, json=body, headers=self.headers) as r:
            return r.status, await r.json()

    async def run(self, max_chunks: int = 100_000) -> dict[str, Any]:
        status, progress = await self.post("/api/index/run", {"max_chunks": max_chunks})
        assert status == 200, progress
        return dict(progress)

    async def search(self, query: str, limit: int = 5) -> list[dict[str, Any]]:
        status, found = await self.post("/api/index/search", {"query": query, "limit": limit})
        assert status == 200, found
        return list(found["passages"])


type MakeNode = Callable[..., Awaitable[IndexNode]]


def node_settings(share: Path, data_dir: Path, minilm: Path, ocr: Path, **extra: Any) -> Settings:
    return Settings(
        host="127.0.0.1",
        data_dir=data_dir,
        token=TOKEN,
        zeroconf=False,
        models=(minilm,),
        mcp_folders=(share,),
        onnx_repository=ocr,
        llm_threads=2,
        **extra,
    )


@pytest.fixture
async def make_node(
    socket_enabled: None, tmp_path: Path, minilm: Path, ocr_repository: Path
) -> AsyncIterator[MakeNode]:
    nodes: list[IndexNode] = []

    async def make(share: Path, **extra: Any) -> IndexNode:
        settings = node_settings(
            share, tmp_path / f"data{len(nodes)}", minilm, ocr_repository, **extra
        )
        app = create_app(settings, hardware=QuietHardware())
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        node = IndexNode(app=app, server=server, session=ClientSession())
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.session.close()
        await node.server.close()


@dataclass(slots=True)
class Household:
    node: IndexNode
    share: Path
    files: dict[str, Path]


@pytest.fixture
async def indexed_household(make_node: MakeNode, tmp_path: Path) -> Household:
    """A node sharing the household's documents (documents.py), indexed once."""
    share = tmp_path / "share"
    files = write_household(share)
    node = await make_node(share)
    await node.run()
    return Household(node, share, files)
