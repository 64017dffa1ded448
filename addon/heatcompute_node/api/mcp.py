"""``/mcp``: the MCP bridge over Streamable HTTP, and the older HTTP+SSE pair beside it.

Streamable HTTP (protocol 2025-03-26 and later), stateless: each POST carries one
JSON-RPC message and gets one JSON response; notifications and responses get 202; GET
and DELETE get 405 (no server-initiated stream, no sessions to end).

HTTP+SSE (2024-11-05; Home Assistant 2025.x's ``mcp`` client speaks only this):
``GET /mcp/sse`` opens an event stream whose first event names the URL to post to;
``POST /mcp/messages?session_id=...`` answers 202 and the response arrives on the stream.
A session belongs to the grant that opened it: its id alone does not let anyone in.

Every request first passes the guard (Host, Origin, bearer token or trusted network).
Refusals are JSON-RPC errors without an id, with the HTTP status the spec names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import json
import logging
import secrets
import socket
from typing import Any

from aiohttp import web

from ..index.document_index import DocumentIndex
from ..mcp.bridge import Bridge, build_bridge
from ..mcp.guard import RefusedError
from ..mcp.server import (
    HEADERLESS_VERSION,
    INVALID_REQUEST,
    PROTOCOL_VERSIONS,
    Incoming,
    ProtocolError,
    error_response,
    parse_message,
)
from ..mcp.tokens import Grant
from ..settings import Settings
from ..supervisor import AddonEnvironment, announced
from .openapi import describe

_LOGGER = logging.getLogger(__name__)

MCP_PATH = "/mcp"
SSE_PATH = "/mcp/sse"
MESSAGES_PATH = "/mcp/messages"
PATHS = frozenset({MCP_PATH, SSE_PATH, MESSAGES_PATH})
MAX_BODY_BYTES = 1024 * 1024  # one JSON-RPC message; tool arguments are small
SSE_HEARTBEAT_S = 15.0
MAX_SSE_SESSIONS = 32

BRIDGE_KEY = web.AppKey("mcp_bridge", Bridge)
SESSIONS_KEY = web.AppKey("mcp_sse_sessions", dict)
SETTINGS_KEY = web.AppKey("mcp_settings", Settings)


@dataclass
class SseSession:
    grant: Grant
    outbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        error_response(None, INVALID_REQUEST, message), status=status, headers=headers
    )


def _guard(request: web.Request) -> Grant:
    bridge = request.app[BRIDGE_KEY]
    try:
        return bridge.guard.check(
            host=request.headers.get("Host"),
            origin=request.headers.get("Origin"),
            authorization=request.headers.get("Authorization"),
            remote=request.remote,
        )
    except RefusedError as refused:
        bridge.stats.refusal(refused.reason)
        _LOGGER.warning(
            "MCP refused %s %s from %s: %s",
            request.method,
            request.path,
            request.remote,
            refused.reason,
        )
        raise


def _refused_response(refused: RefusedError) -> web.Response:
    headers = None
    if refused.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="heatcompute"'}
    return _refusal(refused.status, refused.message, headers)


async def _read_body(request: web.Request) -> bytes:
    """The body, refused (413) beyond MAX_BODY_BYTES even when no length was announced."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ProtocolError(INVALID_REQUEST, f"body larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ProtocolError(INVALID_REQUEST, f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _accepts_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept")
    if accept is None:
        return True
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"application/json", "application/*", "*/*"})


async def _incoming(request: web.Request, bridge: Bridge) -> Incoming | web.Response:
    """The one JSON-RPC message in the body, or the refusal to answer with."""
    try:
        body = await _read_body(request)
    except ProtocolError as err:
        bridge.stats.refusal("body size")
        return _refusal(413, err.message)
    try:
        return parse_message(body)
    except ProtocolError as err:
        bridge.stats.refusal("invalid message")
        return web.json_response(err.response(), status=400)


@describe(
    "MCP Streamable HTTP endpoint (JSON-RPC 2.0; stateless, JSON responses)",
    tag="mcp",
    request={"type": "object", "description": "one JSON-RPC request, notification or response"},
    errors=(400, 401, 403, 406, 413, 415, 421),
)
async def post_mcp(request: web.Request) -> web.StreamResponse:
    bridge = request.app[BRIDGE_KEY]
    try:
        grant = _guard(request)
    except RefusedError as refused:
        return _refused_response(refused)
    version = request.headers.get("MCP-Protocol-Version", HEADERLESS_VERSION)
    if version not in PROTOCOL_VERSIONS:
        bridge.stats.refusal("protocol version")
        return _refusal(
            400,
            f"unsupported MCP-Protocol-Version {version!r}; "
            f"supported: {', '.join(PROTOCOL_VERSIONS)}",
        )
    if request.content_type != "application/json":
        bridge.stats.refusal("content type")
        return _refusal(415, f"Content-Type must be application/json, got {request.content_type}")
    if not _accepts_json(request):
        bridge.stats.refusal("accept")
        return _refusal(406, "the client must accept application/json")
    incoming = await _incoming(request, bridge)
    if isinstance(incoming, web.Response):
        return incoming
    if incoming.kind != "request":
        return web.Response(status=202)
    return web.json_response(await bridge.server.handle(incoming, grant, version))


@describe("MCP: no server-initiated stream on this endpoint (405)", tag="mcp", errors=(405,))
async def not_allowed(request: web.Request) -> web.StreamResponse:
    return _refusal(
        405,
        f"{request.method} is not supported: this MCP endpoint is stateless (POST only)",
        {"Allow": "POST"},
    )


@describe(
    "MCP HTTP+SSE transport (2024-11-05): the event stream; its first event names the POST URL",
    tag="mcp",
    response={"type": "string"},
    response_type="text/event-stream",
    errors=(401, 403, 421, 503),
)
async def get_sse(request: web.Request) -> web.StreamResponse:
    try:
        grant = _guard(request)
    except RefusedError as refused:
        return _refused_response(refused)
    sessions: dict[str, SseSession] = request.app[SESSIONS_KEY]
    if len(sessions) >= MAX_SSE_SESSIONS:
        return _refusal(503, "too many open MCP event streams", {"Retry-After": "5"})
    session_id = secrets.token_hex(16)
    session = SseSession(grant)
    sessions[session_id] = session
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        await response.write(
            f"event: endpoint\ndata: {MESSAGES_PATH}?session_id={session_id}\n\n".encode()
        )
        while True:
            try:
                message = await asyncio.wait_for(session.outbox.get(), SSE_HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(f"event: message\ndata: {json.dumps(message)}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        sessions.pop(session_id, None)
        for task in session.tasks:
            task.cancel()
    return response


@describe(
    "MCP HTTP+SSE transport (2024-11-05): post one JSON-RPC message to an open stream",
    tag="mcp",
    request={"type": "object"},
    errors=(400, 401, 403, 404, 413, 421),
)
async def post_message(request: web.Request) -> web.StreamResponse:
    bridge = request.app[BRIDGE_KEY]
    try:
        grant = _guard(request)
    except RefusedError as refused:
        return _refused_response(refused)
    session = request.app[SESSIONS_KEY].get(request.query.get("session_id", ""))
    if session is None or session.grant.name != grant.name:
        bridge.stats.refusal("session")
        return _refusal(404, "no open MCP event stream with this session_id for this token")
    incoming = await _incoming(request, bridge)
    if isinstance(incoming, web.Response):
        return incoming
    if incoming.kind == "request":
        version = request.headers.get("MCP-Protocol-Version", PROTOCOL_VERSIONS[-1])

        async def answer() -> None:
            session.outbox.put_nowait(await bridge.server.handle(incoming, grant, version))

        task = asyncio.create_task(answer())
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)
    return web.Response(status=202, text="Accepted")


# Announcing /mcp to Home Assistant (2026.11's `mcp` integration accepts add-on discovery
# under the service `mcp` with {"url": ...}, then connects with OAuth only): only when the
# owner lets the Supervisor's network in without a token (mcp_trusted_networks), since a
# door Home Assistant can't open would only leave a broken entry behind. The service is
# listed under `discovery:` in config.yaml.
_MCP_SERVICE = "mcp"
_ANNOUNCE_RETRY_S = (1.0, 5.0, 30.0)


async def _bridge_lifecycle(app: web.Application) -> AsyncIterator[None]:
    # Home Assistant asks its owner to confirm a discovered server before it connects,
    # so announcing while the listener is still being set up is early enough.
    settings = app[SETTINGS_KEY]
    env = AddonEnvironment.detect() if settings.mcp_trusted_networks else None
    config = {"url": f"http://{socket.gethostname()}:{settings.port}{MCP_PATH}"}
    async with announced(env, _MCP_SERVICE, config, _ANNOUNCE_RETRY_S):
        yield
    for sse in list(app[SESSIONS_KEY].values()):
        for pending in sse.tasks:
            pending.cancel()
    with contextlib.suppress(Exception):
        await app[BRIDGE_KEY].close()


def setup(
    app: web.Application,
    settings: Settings,
    node_token: str,
    documents: DocumentIndex | None = None,
) -> Bridge:
    bridge = build_bridge(settings, node_token, documents)
    app[BRIDGE_KEY] = bridge
    app[SETTINGS_KEY] = settings
    app[SESSIONS_KEY] = {}
    app.router.add_post(MCP_PATH, post_mcp)
    app.router.add_get(MCP_PATH, not_allowed, allow_head=False)
    app.router.add_delete(MCP_PATH, not_allowed)
    app.router.add_get(SSE_PATH, get_sse, allow_head=False)
    app.router.add_post(MESSAGES_PATH, post_message)
    app.cleanup_ctx.append(_bridge_lifecycle)
    return bridge
