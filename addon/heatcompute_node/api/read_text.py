"""POST /api/read-text: the text in an image (a meter, a parcel label, a letter).

The body is the image itself (PNG, JPEG, ...), or JSON ``{"url": "..."}`` naming an image
on the local network (a camera's snapshot URL). Only addresses inside the house are
fetched: loopback, private and link-local ones; the node is not a proxy to the internet.
Detection, direction and recognition run through the ONNX batchers as a person's
request, so they go before background work.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from ..engines.onnx.errors import InferenceError
from ..engines.onnx.ocr import ImageError, TextReader, decode_image
from .errors import ApiError
from .onnx_service import ONNX_KEY
from .openapi import describe
from .serving import interactive

READER_KEY = web.AppKey("text_reader", TextReader)
MAX_IMAGE_BYTES = 16 * 1024 * 1024
FETCH_TIMEOUT_S = 15.0
_NO_SUCH_NAME = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)

READ_TEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "the lines, top to bottom, one per line"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "confidence": {"type": "number"},
                    "box": {"type": "array", "description": "4 corners [x, y] in pixels"},
                },
            },
        },
        "width": {"type": "integer"},
        "height": {"type": "integer"},
    },
}


@describe(
    "Read the text in an image: image bytes, or JSON {url} of an image on the LAN",
    tag="onnx",
    request={
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "format": "uri",
                "pattern": "^https?://",
                "description": "http(s) URL of an image on the LAN",
            }
        },
    },
    # Or the image itself, as any type but JSON.
    request_types=("application/json", "image/png", "image/jpeg", "application/octet-stream"),
    response=READ_TEXT_SCHEMA,
    errors=(400, 413, 502, 503),
)
@interactive
async def read_text(request: web.Request) -> web.Response:
    reader = request.app[READER_KEY]
    missing = reader.missing_models()
    if missing:
        raise ApiError(
            503,
            f"the OCR models are not loaded: {', '.join(missing)} (see GET /api/status, onnx)",
            code="model_not_available",
        )
    body = await request.read()
    if not body:
        raise ApiError(400, 'send an image as the body, or JSON {"url": ...}', code="no_image")
    if request.content_type == "application/json":
        body = await _fetch(_url_of(body))
    try:
        image = await asyncio.to_thread(decode_image, body)
        result = await reader.read(image)
    except ImageError as err:
        raise ApiError(400, str(err), code="invalid_image") from err
    except InferenceError as err:
        status = {"NOT_FOUND": 503, "INVALID_ARG": 400, "UNAVAILABLE": 503}.get(err.code, 500)
        raise ApiError(status, f"reading failed: {err}", code="ocr_failed") from err
    return web.json_response(result.as_json())


def _url_of(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"body is not valid JSON: {err}", code="invalid_json") from err
    if not isinstance(parsed, dict) or set(parsed) != {"url"} or not isinstance(parsed["url"], str):
        raise ApiError(400, 'JSON body must be {"url": "<image URL>"}', code="invalid_value")
    return str(parsed["url"])


async def _fetch(url: str) -> bytes:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port out of range
    except ValueError as err:  # "http://[::1", "http://cam:99999"
        raise ApiError(400, f"url is not a URL: {err}", code="invalid_value", param="url") from err
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, "url must be an http(s) URL", code="invalid_value", param="url")
    await _require_lan(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if response.status != 200:
                raise ApiError(502, f"{url} answered {response.status}", code="fetch_failed")
            data = await response.content.read(MAX_IMAGE_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise ApiError(502, f"cannot fetch {url}: {err}", code="fetch_failed") from err
    if len(data) > MAX_IMAGE_BYTES:
        raise ApiError(413, f"the image is larger than {MAX_IMAGE_BYTES} bytes", code="too_large")
    return data


async def _require_lan(host: str, port: int) -> None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        if isinstance(err, socket.gaierror) and err.errno in _NO_SUCH_NAME:
            # A name that does not exist is the caller's mistake, like an address outside
            # the LAN: 400. A resolver that fails is the node's trouble: 502.
            raise ApiError(
                400, f"no such host {host}: {err}", code="unknown_host", param="url"
            ) from err
        raise ApiError(502, f"cannot resolve {host}: {err}", code="fetch_failed") from err
    addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    outside = sorted(
        str(a) for a in addresses if not (a.is_private or a.is_loopback or a.is_link_local)
    )
    if outside:
        raise ApiError(
            400,
            f"{host} is not on the local network ({', '.join(outside)}): the node only fetches "
            "images from inside the house",
            code="not_local",
            param="url",
        )


def setup(app: web.Application) -> None:
    app[READER_KEY] = TextReader(app[ONNX_KEY])
    app.router.add_post("/api/read-text", read_text)
