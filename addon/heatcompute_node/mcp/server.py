"""The MCP server without its transport: JSON-RPC messages in, JSON-RPC responses out.

Protocol failures (a message that isn't JSON-RPC, an unknown method, an unknown tool)
are JSON-RPC errors with the specification's codes; failures inside a tool are results
with ``isError: true`` and a message the model can act on. Stateless: every request
stands alone, so no session has to survive between HTTP requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import json
import logging
import time
from typing import Any, Literal

from .stats import McpStats
from .tokens import Grant
from .tools import Limits, Tool, ToolError

_LOGGER = logging.getLogger(__name__)

# Newest first; initialize answers with the client's version when it is one of these.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST_VERSION = PROTOCOL_VERSIONS[0]
# A request without MCP-Protocol-Version is taken as 2025-03-26 (the spec's rule).
HEADERLESS_VERSION = "2025-03-26"
_STRUCTURED_FROM = "2025-06-18"  # structuredContent exists from this revision on

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

INSTRUCTIONS = (
    "Read-only tools over this house's local data: shared folders, SQLite databases and "
    "Home Assistant (entities, states, history, statistics). Nothing can be changed here."
)

type MessageId = str | int | None


class ProtocolError(Exception):
    """A JSON-RPC error: code, message, and the id of the request when it is known."""

    def __init__(self, code: int, message: str, message_id: MessageId = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_id = message_id

    def response(self) -> dict[str, Any]:
        return error_response(self.message_id, self.code, self.message)


def error_response(message_id: MessageId, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": message_id, "error": {"code": code, "message": message}}


@dataclass(frozen=True, slots=True)
class Incoming:
    kind: Literal["request", "notification", "response"]
    id: MessageId
    method: str
    params: dict[str, Any]


def parse_message(raw: bytes) -> Incoming:
    """One JSON-RPC message, or a ProtocolError (-32700 not JSON, -32600 not a message)."""
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProtocolError(PARSE_ERROR, f"Parse error: {err}") from err
    if isinstance(message, list):
        raise ProtocolError(
            INVALID_REQUEST, "Invalid Request: send one message per POST, not a batch"
        )
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise ProtocolError(
            INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 message ("jsonrpc": "2.0")'
        )
    message_id = message.get("id")
    # JSON has one kind of number: 1.0 is the integer 1 to JSON Schema (and to our
    # OpenAPI document), so it is taken as an id and answered with the id as sent.
    whole = isinstance(message_id, float) and message_id.is_integer()
    if "id" in message and (
        isinstance(message_id, bool) or not (isinstance(message_id, str | int) or whole)
    ):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    params = message.get("params", {})
    # Whatever the message (a response carries none), params are an object or absent:
    # found by a random fuzzing seed, a response with "params": "..." was taken.
    if not isinstance(params, dict):
        raise ProtocolError(
            INVALID_REQUEST, "Invalid Request: params must be an object", message_id
        )
    if "method" not in message:
        if "id" in message and ("result" in message or "error" in message):
            return Incoming("response", message_id, "", {})
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: no method", message_id)
    method = message["method"]
    if not isinstance(method, str):
        raise ProtocolError(INVALID_REQUEST, "Invalid Request: method must be a string", message_id)
    kind: Literal["request", "notification"] = "request" if "id" in message else "notification"
    return Incoming(kind, message_id, method, params)


class McpServer:
    def __init__(
        self, tools: Sequence[Tool], limits: Limits, stats: McpStats, *, version: str
    ) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.limits = limits
        self.stats = stats
        self.version = version

    def visible_tools(self, grant: Grant) -> list[Tool]:
        return [
            tool
            for tool in self.tools.values()
            if tool.scope in grant.scopes and (tool.available is None or tool.available())
        ]

    @staticmethod
    def _describe(tools: list[Tool]) -> list[dict[str, Any]]:
        described = []
        for tool in tools:
            try:
                choices = tool.choices() if tool.choices is not None else None
            except ToolError:
                choices = None  # the source is unreadable now: offer the plain schema
            described.append(tool.describe(choices))
        return described

    async def handle(
        self, incoming: Incoming, grant: Grant, protocol_version: str
    ) -> dict[str, Any]:
        """The response to one request (notifications and responses never get here)."""
        try:
            result = await self._dispatch(incoming, grant, protocol_version)
        except ProtocolError as err:
            err.message_id = incoming.id
            return err.response()
        return {"jsonrpc": "2.0", "id": incoming.id, "result": result}

    async def _dispatch(self, incoming: Incoming, grant: Grant, version: str) -> dict[str, Any]:
        method = incoming.method
        if method == "initialize":
            return self._initialize(incoming.params)
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": await asyncio.to_thread(self._describe, self.visible_tools(grant))}
        if method == "tools/call":
            return await self._call(incoming.params, grant, version)
        self.stats.refusal("unknown method")
        raise ProtocolError(METHOD_NOT_FOUND, f"Method not found: {method}")

    def _initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        if not isinstance(asked, str):
            raise ProtocolError(
                INVALID_PARAMS, "initialize needs params.protocolVersion (a string)"
            )
        return {
            "protocolVersion": asked if asked in PROTOCOL_VERSIONS else LATEST_VERSION,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {
                "name": "heatcompute",
                "title": "heatcompute local data",
                "version": self.version,
            },
            "instructions": INSTRUCTIONS,
        }

    async def _call(self, params: dict[str, Any], grant: Grant, version: str) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise ProtocolError(INVALID_PARAMS, "tools/call needs params.name (a string)")
        tool = self.tools.get(name)
        if tool is None:
            self.stats.refusal("unknown tool")
            raise ProtocolError(INVALID_PARAMS, f"Unknown tool: {name}")
        if tool.scope not in grant.scopes:
            self.stats.refusal("scope")
            _LOGGER.warning("MCP: %s may not call %s (scope %s)", grant.name, name, tool.scope)
            raise ProtocolError(
                INVALID_PARAMS,
                f"Tool {name} needs the '{tool.scope}' scope, which this token lacks "
                f"(it has: {', '.join(sorted(grant.scopes)) or 'none'})",
            )
        started = time.perf_counter()
        try:
            arguments = tool.check_arguments(params.get("arguments"))
            async with asyncio.timeout(self.limits.call_timeout_s):
                value = await tool.run(arguments)
            text = json.dumps(value, ensure_ascii=False, default=_jsonable)
            if len(text.encode()) > self.limits.max_output_bytes:
                raise ToolError(
                    f"the result is {len(text.encode())} bytes, more than the "
                    f"{self.limits.max_output_bytes}-byte cap; "
                    "ask for less (head, tail, LIMIT, max_points)"
                )
        except ToolError as err:
            return self._finish(name, grant, started, error=str(err))
        except TimeoutError:
            return self._finish(
                name,
                grant,
                started,
                error=f"{name} took longer than {self.limits.call_timeout_s:g} s and was stopped",
            )
        except Exception:
            _LOGGER.exception("MCP tool %s failed", name)
            return self._finish(
                name, grant, started, error=f"{name} failed inside the node; see its log"
            )
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
        if version >= _STRUCTURED_FROM and isinstance(value, dict):
            result["structuredContent"] = json.loads(text)
        self._finish(name, grant, started, error=None)
        return result

    def _finish(
        self, name: str, grant: Grant, started: float, *, error: str | None
    ) -> dict[str, Any]:
        elapsed = time.perf_counter() - started
        self.stats.call(name, elapsed, error=error is not None)
        # The log says who called what and how it ended, never the arguments or the data.
        _LOGGER.info(
            "MCP %s called %s: %s in %.0f ms",
            grant.name,
            name,
            "error" if error else "ok",
            elapsed * 1000,
        )
        return {"content": [{"type": "text", "text": error or ""}], "isError": True}


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)
