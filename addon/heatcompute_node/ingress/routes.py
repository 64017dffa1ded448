"""The dashboard's page, its assets and its one route of its own (/api/history).

Plain HTML, JavaScript and CSS shipped in the package: no build step, nothing fetched
from the internet. The page reaches the node's API with relative URLs under the path
Home Assistant's proxy announces in ``X-Ingress-Path`` (a ``<base>`` element), so the
same files work behind the proxy and on the node's own port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import html
import logging
from pathlib import Path
import re
from typing import Any

from aiohttp import web

from ..api.errors import ApiError
from ..api.keys import NODE_KEY
from ..api.openapi import describe, path_parameter
from ..hardware.base import HardwareReading
from ..node import Node
from .history import History
from .history_file import SAVE_INTERVAL_S, HistoryFile

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
HISTORY_KEY = web.AppKey("dashboard_history", History)
_ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "chart.js": "text/javascript"}
# What a proxy may announce: a path of URL-safe characters (Home Assistant's is
# /api/hassio_ingress/<token>); anything else is ignored rather than echoed into HTML.
_INGRESS_PATH = re.compile(r"^(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*$")


class HistoryRecorder:
    """Feeds the history from the node's sampler (a sample listener)."""

    def __init__(self, node: Node, history: History) -> None:
        self._node = node
        self._history = history

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        heat = self._node.effective_heat
        self._history.add(
            power_w=reading.power_w,
            target_w=heat.target_w if heat.wanted else 0.0,
            room_c=reading.room_temperature_c,
        )


@describe(
    "The dashboard (the add-on's ingress page): heat, jobs, models, chat",
    tag="dashboard",
    response_type="text/html",
)
async def dashboard(request: web.Request) -> web.Response:
    base = request.headers.get("X-Ingress-Path", "")
    if not _INGRESS_PATH.match(base):
        base = ""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace("{{base}}", html.escape(base.rstrip("/") + "/", quote=True))
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN"},
    )


@describe(
    "The dashboard's script and style sheet",
    tag="dashboard",
    response_type="text/*",
    errors=(404,),
    parameters=(path_parameter("name", {"enum": sorted(_ASSETS)}, "a file of the page"),),
)
async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise ApiError(404, f"no dashboard asset {name!r}", code="route_not_found")
    return web.FileResponse(
        STATIC_DIR / name, headers={"Content-Type": _ASSETS[name], "Cache-Control": "no-cache"}
    )


@describe(
    "Power, heat target and room temperature over the last 24 h (means per minute)",
    tag="control",
)
async def history(request: web.Request) -> web.Response:
    data: list[dict[str, Any]] = request.app[HISTORY_KEY].points()
    return web.json_response({"object": "list", "data": data})


def setup(app: web.Application, history_store: History | None = None) -> None:
    app[HISTORY_KEY] = history_store or History()
    app.router.add_get("/", dashboard)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/history", history)
    app.cleanup_ctx.append(_record)


async def _record(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE_KEY]
    history = app[HISTORY_KEY]
    # Before the node samples (its life cycle starts after this one): the saved minutes
    # come first, then the new ones.
    stored = HistoryFile(node.settings.data_dir)
    saved = await asyncio.to_thread(stored.load)
    if saved is not None:
        restored = history.restore(saved)
        _LOGGER.debug("dashboard history: %d minutes restored", restored)
    node.add_sample_listener(HistoryRecorder(node, history))
    saving = asyncio.create_task(_save_every(stored, history), name="dashboard-history")
    yield
    saving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await saving
    # After the node stopped (cleanup runs in reverse): its last samples are in.
    await _save(stored, history)


async def _save_every(stored: HistoryFile, history: History) -> None:
    while True:
        await asyncio.sleep(SAVE_INTERVAL_S)
        await _save(stored, history)


async def _save(stored: HistoryFile, history: History) -> None:
    data = history.saved()  # on the loop, where the samples are added
    try:
        await asyncio.to_thread(stored.save, data)
    except OSError as err:  # a full or read-only disk costs the chart, not the node
        _LOGGER.warning("cannot save the dashboard history to %s: %s", stored.path, err)
