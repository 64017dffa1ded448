"""Fixtures for testing the add-on image (scripts/test-addon builds it and runs these).

The image comes from HEATCOMPUTE_ADDON_IMAGE; without it these tests fail rather than
skip: a suite that silently shrinks proves nothing. scripts/test leaves this directory
to scripts/test-addon.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
import os
from pathlib import Path
import secrets
import socket
from typing import Any

import aiohttp
from aiohttp import web
import pytest
import yaml  # type: ignore[import-untyped]

from .container import AddonContainer
from .supervisor_standin import SupervisorStandIn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("HEATCOMPUTE_ADDON_IMAGE")
    if not name:
        pytest.fail("HEATCOMPUTE_ADDON_IMAGE is not set: run scripts/test-addon")
    return name


@pytest.fixture
async def supervisor() -> AsyncIterator[tuple[SupervisorStandIn, int]]:
    standin = SupervisorStandIn(token=secrets.token_urlsafe(16))
    runner = web.AppRunner(standin.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield standin, port
    await runner.cleanup()


ADDON_CONFIG = Path(__file__).resolve().parents[2] / "addon" / "config.yaml"


def default_options() -> dict[str, Any]:
    """What the Supervisor writes to /data/options.json on first start: config.yaml's
    options (so every default there must be one the node accepts), with the simulated
    room (no sensors in CI) and a name of the test's."""
    config = yaml.safe_load(ADDON_CONFIG.read_text(encoding="utf-8"))
    return {**config["options"], "node_name": "addon-test", "hardware": "twin"}


@pytest.fixture
async def addon(
    image: str, tmp_path: Path, supervisor: tuple[SupervisorStandIn, int]
) -> AsyncIterator[AddonContainer]:
    """A container of the image, not yet started; its options are the add-on defaults."""
    standin, port = supervisor
    container = AddonContainer(
        image=image,
        data_dir=tmp_path / "data",
        port=free_port(),
        supervisor_port=port,
        supervisor_token=standin.token,
    )
    container.write_options(default_options())
    yield container
    await container.remove()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        yield session
