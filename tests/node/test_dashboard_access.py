"""The dashboard's port answers only the ingress proxy; its page and history.

Real node app on 127.0.0.1 with both its ports (API and dashboard); the hardware is a
fixed reading (tests/node/conftest.py). The browser test is tests/addon/test_dashboard.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import dataclasses
import json
import socket
import time

import aiohttp
from aiohttp import web
import pytest

from heatcompute_node.app import create_app
from heatcompute_node.ingress.history import History
from heatcompute_node.ingress.history_file import FILE_NAME
from heatcompute_node.ingress.routes import HISTORY_KEY
from heatcompute_node.settings import Settings, SettingsError, load_settings

from .conftest import StaticHardware, auth

type Serve = Callable[[Settings], Awaitable[tuple[str, str]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def serve(socket_enabled: None, hardware: StaticHardware) -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(settings: Settings) -> tuple[str, str]:
        runner = web.AppRunner(create_app(settings, hardware=hardware))
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", settings.port).start()
        await web.TCPSite(runner, "127.0.0.1", settings.ingress_port).start()
        return f"http://127.0.0.1:{settings.port}", f"http://127.0.0.1:{settings.ingress_port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def with_ports(settings: Settings, allowed: tuple[str, ...]) -> Settings:
    return dataclasses.replace(
        settings, port=free_port(), ingress_port=free_port(), ingress_allowed=allowed
    )


async def test_only_the_proxy_address_gets_in_and_needs_no_token(
    serve: Serve, settings: Settings
) -> None:
    api, ingress = await serve(with_ports(settings, ("127.0.0.1",)))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{ingress}/api/status") as response:
            assert response.status == 200
        async with session.get(f"{api}/api/status") as response:
            assert response.status == 401  # the API port still wants the token
        async with session.get(f"{api}/api/status", headers=auth()) as response:
            assert response.status == 200
    stranger = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=stranger) as session:
        for path in ("/", "/api/status", "/health", "/static/app.js"):
            async with session.get(f"{ingress}{path}") as response:
                assert response.status == 403, path
                error = (await response.json())["error"]
                assert error["code"] == "ingress_only"


async def test_the_supervisor_default_keeps_everyone_else_out(
    serve: Serve, settings: Settings
) -> None:
    _, ingress = await serve(with_ports(settings, ("172.30.32.2",)))
    async with aiohttp.ClientSession() as session, session.get(f"{ingress}/") as response:
        assert response.status == 403


async def test_the_page_lives_under_the_ingress_path(serve: Serve, settings: Settings) -> None:
    _, ingress = await serve(with_ports(settings, ("127.0.0.1",)))
    async with aiohttp.ClientSession() as session:
        headers = {"X-Ingress-Path": "/api/hassio_ingress/abc_D-1"}
        async with session.get(f"{ingress}/", headers=headers) as response:
            assert response.status == 200
            assert '<base href="/api/hassio_ingress/abc_D-1/">' in await response.text()
        # Not a path: ignored rather than written into the page.
        bad = {"X-Ingress-Path": '/x"><script>alert(1)</script>'}
        async with session.get(f"{ingress}/", headers=bad) as response:
            page = await response.text()
            assert '<base href="/">' in page
            assert "<script>alert" not in page
        async with session.get(f"{ingress}/static/app.js") as response:
            assert response.status == 200
            assert response.content_type == "text/javascript"
        async with session.get(f"{ingress}/static/secrets.txt") as response:
            assert response.status == 404
        async with session.get(f"{ingress}/api/history") as response:
            points = (await response.json())["data"]
            assert points
            assert points[-1]["power_w"] == 42.0


def test_history_keeps_minute_means_and_recent_detail() -> None:
    history = History(bucket_s=60, span_s=600, detail_s=120)
    for second in range(0, 900, 10):
        history.add(power_w=float(second), target_w=100.0, room_c=None, at=1_000_000 + second)
    points = history.points()
    detail = [p for p in points if p["t"] >= 1_000_000 + 900 - 10 - 120]
    assert len(detail) == 13  # every sample of the last two minutes
    older = points[: len(points) - len(detail)]
    # Minutes start on the minute; the oldest kept is the first of the last ten closed
    # ones (span 600 s), and only those before the detailed window are shown as means.
    assert [p["t"] for p in older] == [1_000_260.0 + 60 * n for n in range(8)]
    assert older[0]["power_w"] == sum(range(260, 320, 10)) / 6
    assert all(p["room_c"] is None and p["target_w"] == 100.0 for p in points)


def test_ingress_settings() -> None:
    settings = load_settings(
        ["--port", "8765"],
        {"HEATCOMPUTE_INGRESS_PORT": "8099", "HEATCOMPUTE_INGRESS_ALLOWED": "a, b"},
    )
    assert (settings.ingress_port, settings.ingress_allowed) == (8099, ("a", "b"))
    assert load_settings([], {}).ingress_allowed == ("172.30.32.2",)
    with pytest.raises(SettingsError, match="ingress_port"):
        load_settings(["--port", "8099"], {"HEATCOMPUTE_INGRESS_PORT": "8099"})


def test_history_minutes_are_saved_and_restored() -> None:
    history = History(bucket_s=60, span_s=600, detail_s=120)
    for second in range(0, 900, 10):
        history.add(power_w=float(second), target_w=100.0, room_c=20.5, at=1_000_000 + second)
    saved = json.loads(json.dumps(history.saved()))  # as it goes to disk and back
    again = History(bucket_s=60, span_s=600, detail_s=120)
    # Restored 5 minutes after the last sample: of the ten minutes before then, the five
    # that had samples (the open minute, 1_000_860, among them).
    assert again.restore(saved, now=1_000_000 + 900 + 300) == 5
    points = again.points()
    assert [p["t"] for p in points] == [1_000_620.0 + 60 * n for n in range(5)]
    assert points[0]["power_w"] == sum(range(620, 680, 10)) / 6
    assert all(p["room_c"] == 20.5 and p["target_w"] == 100.0 for p in points)
    # Another minute length, another version, rows that aren't buckets: left out.
    assert History(bucket_s=30).restore(saved, now=1_000_900) == 0
    assert History(bucket_s=60).restore({**saved, "version": 99}, now=1_000_900) == 0
    rows = [["x", 1, 2, 3, 4, 5, 6], [1_000_800, True, 0, 0, 0, 0, 0], [1], None]
    broken = {**saved, "buckets": [*rows, saved["buckets"][-1]]}
    assert History(bucket_s=60).restore(broken, now=1_000_900) == 1
    assert History(bucket_s=60).restore({**saved, "buckets": 4}, now=1_000_900) == 0
    # Started again within the last saved minute: its samples join that minute.
    again.add(power_w=0.0, target_w=100.0, room_c=20.5, at=1_000_895)
    minutes = [row[0] for row in again.saved()["buckets"]]
    assert minutes == [1_000_620.0 + 60 * n for n in range(5)]
    assert again.saved()["buckets"][-1][1] == 4 + 1  # 860-890 had four samples, now five


async def test_the_chart_outlives_a_restart(
    socket_enabled: None, settings: Settings, hardware: StaticHardware
) -> None:
    """A node stopped and started again (an add-on update) shows the minutes before."""
    before = time.time() - 3600
    first = create_app(settings, hardware=hardware)
    runner = web.AppRunner(first)
    await runner.setup()
    for second in range(0, 600, 10):
        first[HISTORY_KEY].add(power_w=80.0, target_w=100.0, room_c=21.0, at=before + second)
    await runner.cleanup()
    assert (settings.data_dir / FILE_NAME).exists()

    again = create_app(settings, hardware=hardware)
    runner = web.AppRunner(again)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/api/history", headers=auth()) as response,
        ):
            points = (await response.json())["data"]
    finally:
        await runner.cleanup()
    old = [p for p in points if p["t"] < before + 600]
    assert len(old) >= 9  # the ten minutes an hour ago (the first may start mid-minute)
    assert all(p["power_w"] == 80.0 and p["room_c"] == 21.0 for p in old)


async def test_an_unreadable_history_file_is_set_aside(
    socket_enabled: None, settings: Settings, hardware: StaticHardware
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / FILE_NAME).write_text("{not json", encoding="utf-8")
    started = time.time()
    app = create_app(settings, hardware=hardware)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        # Only the node's own first samples: nothing came from the broken file.
        assert all(row[0] >= started - 60 for row in app[HISTORY_KEY].saved()["buckets"])
        assert (settings.data_dir / (FILE_NAME + ".unreadable")).exists()
    finally:
        await runner.cleanup()
    # The next save is a good file again.
    assert json.loads((settings.data_dir / FILE_NAME).read_text())["version"] == 1
