"""Fixtures for the ONNX engine's tests: real models from PyPI wheels, a real node on
127.0.0.1, and the real Triton client in its own venv (scripts/tritonclient_venv)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
import pytest

from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.api.onnx_service import ONNX_KEY
from heatcompute_node.app import create_app
from heatcompute_node.engines.onnx.engine import OnnxEngine
from heatcompute_node.hardware.base import HardwareReading, HardwareSource
from heatcompute_node.settings import Settings
from scripts.onnx_models import SOURCES, build_repository, package_file

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "onnx-test-token-0123456789"
DRIVER = Path(__file__).with_name("triton_driver.py")


class QuietHardware(HardwareSource):
    """Stands in for the power and temperature sensors this machine doesn't have."""

    name = "static"

    def read(self) -> HardwareReading:
        return HardwareReading(power_w=40.0, temperatures_c={"package-0": 50.0})


def direction_model() -> Path:
    package, relative = SOURCES["text-direction"]
    return package_file(package, relative)


def add_model(
    repository: Path,
    name: str,
    config: dict[str, Any],
    *,
    source: Path | None = None,
    version: int = 1,
) -> Path:
    """A model folder with one version (a copy of ``source``, default the classifier)."""
    folder = repository / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source or direction_model(), folder / str(version) / "model.onnx")
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def ocr_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default repository as scripts/setup lays it out (int8 variant made once)."""
    return build_repository(tmp_path_factory.mktemp("onnx") / "repository")


@dataclass(slots=True)
class OnnxNode:
    app: web.Application
    server: TestServer
    session: ClientSession

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def base(self) -> str:
        return f"http://{self.url}"

    @property
    def engine(self) -> OnnxEngine:
        return self.app[ONNX_KEY]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}

    async def status(self) -> dict[str, Any]:
        return self.app[NODE_KEY].status()


async def start_node(repository: Path, data_dir: Path, **settings: Any) -> OnnxNode:
    app = create_app(
        Settings(
            host="127.0.0.1",
            data_dir=data_dir,
            token=TOKEN,
            zeroconf=False,
            onnx_repository=repository,
            llm_threads=2,
            status_interval_s=0.1,
            **settings,
        ),
        hardware=QuietHardware(),
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return OnnxNode(app=app, server=server, session=ClientSession())


@pytest.fixture
async def make_node(socket_enabled: None, tmp_path: Path) -> AsyncIterator[Any]:
    nodes: list[OnnxNode] = []

    async def make(repository: Path, **settings: Any) -> OnnxNode:
        node = await start_node(repository, tmp_path / f"data{len(nodes)}", **settings)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.session.close()
        await node.server.close()


@pytest.fixture(scope="session")
def triton_python() -> str:
    """The python of the tritonclient venv, built once (keyed by its requirements)."""
    env = {**os.environ}
    env.setdefault("HEATCOMPUTE_VENV", sys.prefix)
    out = subprocess.run(
        [str(ROOT / "scripts" / "tritonclient_venv")],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return out.stdout.strip().splitlines()[-1]


async def triton(python: str, node: OnnxNode, steps: list[dict[str, Any]]) -> list[Any]:
    """Run steps with the real tritonclient (a subprocess: the node keeps serving)."""
    process = await asyncio.create_subprocess_exec(
        python,
        str(DRIVER),
        node.url,
        TOKEN,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(json.dumps(steps).encode()), 180)
    assert process.returncode == 0, err.decode()[-3000:]
    results: list[Any] = json.loads(out)
    return results
