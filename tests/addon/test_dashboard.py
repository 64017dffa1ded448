"""The dashboard, served by the add-on's image on its ingress port, in a real browser.

Real: the image, the node, Debian's chromium driven by Playwright (tests/addon/
browser_check.py, in Playwright's own venv: HEATCOMPUTE_PLAYWRIGHT_PYTHON), a model
downloaded over HTTP. Stand-ins: Home Assistant's ingress proxy (ingress_proxy.py), the
Supervisor, and the hardware (the simulated room). The page's screenshot goes to
docs/addon-dashboard.png.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import sys

import aiohttp
from aiohttp import web
import pytest

from .conftest import free_port
from .container import AddonContainer
from .ingress_proxy import IngressProxy
from .slow_file_server import slow_file_app
from .supervisor_standin import SupervisorStandIn
from .test_image import next_event

ROOT = Path(__file__).resolve().parents[2]
SHOT = ROOT / "docs" / "addon-dashboard.png"
DOWNLOADED_MODEL = ROOT / "models" / "all-MiniLM-L6-v2.gguf"


async def serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def dashboard_addon(
    addon: AddonContainer, supervisor: tuple[SupervisorStandIn, int]
) -> tuple[AddonContainer, str, int]:
    """The add-on with its dashboard port open to this machine's 127.0.0.1 (the real
    image's default lets only the Supervisor's 172.30.32.2 in); yields it, its token and
    the dashboard port."""
    standin, _ = supervisor
    ingress_port = free_port()
    addon.env["HEATCOMPUTE_INGRESS_PORT"] = str(ingress_port)
    addon.env["HEATCOMPUTE_INGRESS_ALLOWED"] = "127.0.0.1"
    await addon.run()
    announced = await next_event(standin)
    return addon, str(announced.config["token"]), ingress_port


async def test_dashboard_in_a_browser_through_ingress(
    dashboard_addon: tuple[AddonContainer, str, int], http: aiohttp.ClientSession
) -> None:
    addon, token, ingress_port = dashboard_addon
    python = os.environ.get("HEATCOMPUTE_PLAYWRIGHT_PYTHON")
    assert python, "HEATCOMPUTE_PLAYWRIGHT_PYTHON is not set: run scripts/test-addon"
    ingress = f"http://127.0.0.1:{ingress_port}"
    api = f"http://127.0.0.1:{addon.port}"
    auth = {"Authorization": f"Bearer {token}"}

    # Only the proxy's address may use the dashboard port; the API port still wants
    # the token for the page as for everything else.
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=other) as stranger,
        stranger.get(f"{ingress}/api/status") as response,
    ):
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "ingress_only"
    async with http.get(f"{api}/") as response:
        assert response.status == 401

    proxy = IngressProxy(ingress)
    proxy_runner = await serve(proxy.app(), proxy_port := free_port())
    files = await serve(slow_file_app(DOWNLOADED_MODEL, seconds=15), files_port := free_port())
    try:
        page_url = f"http://127.0.0.1:{proxy_port}{proxy.prefix}/"
        async with http.get(page_url) as response:
            assert response.status == 200
            assert f'<base href="{proxy.prefix}/">' in await response.text()

        # Heat wanted, and a job to run with it.
        async with http.put(
            f"{api}/api/heat", json={"mode": "heat", "target_w": 150}, headers=auth
        ) as response:
            assert response.status == 200, await response.text()
        job = {
            "kind": "completions",
            # Still running when the browser cancels it, however fast the machine: the
            # checks before the cancel take ~30 s (the download alone 15 s); 24 items
            # were done by then on a quiet machine. At a few items a second, 1,000
            # items take minutes.
            "items": [f"Item {n}: a warm room is" for n in range(1000)],
            "max_tokens": 256,
        }
        async with http.post(f"{api}/api/jobs", json=job, headers=auth) as response:
            assert response.status in (200, 201, 202), await response.text()

        SHOT.parent.mkdir(parents=True, exist_ok=True)
        process = await asyncio_subprocess(
            python,
            str(Path(__file__).with_name("browser_check.py")),
            page_url,
            "--download-url",
            f"http://127.0.0.1:{files_port}/{DOWNLOADED_MODEL.name}",
            "--download-name",
            "minilm-downloaded.gguf",
            "--shot",
            str(SHOT),
        )
        assert process == 0, "the browser checks failed (see the output above)"
    finally:
        await files.cleanup()
        await proxy_runner.cleanup()


async def asyncio_subprocess(*args: str) -> int:
    process = await asyncio.create_subprocess_exec(*args, stdout=sys.stderr)
    return await asyncio.wait_for(process.wait(), 300)
