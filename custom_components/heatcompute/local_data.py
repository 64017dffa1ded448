"""The node's local-data tools (its MCP bridge) as a Home Assistant LLM API.

Registered as "heatcompute local data", so any conversation agent in Home Assistant
(heatcompute's own, ollama, openai, ...) can read the files, databases and history the
node's owner shared, with the node's token. (Home Assistant's own `mcp` client
authenticates with OAuth only, so it can't use the node's token.)

The tools are fetched from the node each time an agent starts a turn: what the node
shares is decided on the node, and a changed setting shows up at the next question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import importlib
import itertools
import json
import logging
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import llm
from homeassistant.util.json import JsonObjectType
import voluptuous as vol

from .client import HeatcomputeClient, HeatcomputeError
from .const import DOMAIN

API_NAME = "heatcompute local data"
API_PROMPT = (
    "These tools read this home's local data on the heatcompute node: shared folders, "
    "SQLite databases and Home Assistant's history and long-term statistics. They only "
    "read. Use them when a question needs that data."
)
API_UNAVAILABLE = (
    "The heatcompute node that holds this home's local data (files, databases, history) "
    "cannot be reached right now; say so if a question needs that data."
)
_LOGGER = logging.getLogger(__name__)
_ids = itertools.count(1)


class LocalDataError(HeatcomputeError):
    """The node's bridge answered with a JSON-RPC error."""


@dataclass(frozen=True, slots=True)
class NodeTool:
    name: str
    description: str
    input_schema: dict[str, Any]


async def _rpc(client: HeatcomputeClient, method: str, params: Mapping[str, Any]) -> Any:
    reply = await client.post_json(
        "/mcp", {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": dict(params)}
    )
    if "error" in reply:
        error = reply["error"] if isinstance(reply["error"], Mapping) else {}
        raise LocalDataError(str(error.get("message", "the node's MCP bridge refused")))
    return reply.get("result")


async def list_tools(client: HeatcomputeClient) -> list[NodeTool]:
    result = await _rpc(client, "tools/list", {})
    tools = result.get("tools", []) if isinstance(result, Mapping) else []
    return [
        NodeTool(
            name=str(tool["name"]),
            description=str(tool.get("description") or ""),
            input_schema=dict(tool.get("inputSchema") or {"type": "object"}),
        )
        for tool in tools
        if isinstance(tool, Mapping) and "name" in tool
    ]


async def call_tool(
    client: HeatcomputeClient, name: str, arguments: Mapping[str, Any]
) -> tuple[bool, Any]:
    """(is_error, the tool's JSON result, or its error message)."""
    result = await _rpc(client, "tools/call", {"name": name, "arguments": dict(arguments)})
    if not isinstance(result, Mapping):
        raise LocalDataError("the node's MCP bridge sent no result")
    text = "".join(
        str(part.get("text", "")) for part in result.get("content", []) if isinstance(part, Mapping)
    )
    if result.get("isError"):
        return True, text
    try:
        return False, json.loads(text)
    except ValueError:
        return False, text


def _parameters(schema: dict[str, Any]) -> Any:
    """The tool's JSON schema as this release's schema type: probatio's own conversion
    from 2026, else voluptuous, converted here (voluptuous-openapi 0.0.6 drops enums, and
    the enums are what let a small model name only ids that exist)."""
    try:
        probatio = importlib.import_module("probatio")
    except ImportError:
        return _voluptuous(schema)
    return probatio.from_openapi(schema)


def _voluptuous(schema: Mapping[str, Any]) -> vol.Schema:
    """The node's flat schemas (typed properties, enums, arrays of strings) as voluptuous."""
    required = set(schema.get("required") or ())
    fields: dict[Any, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        marker = vol.Required if name in required else vol.Optional
        key = marker(name, description=prop.get("description"))
        fields[key] = _validator(prop)
    return vol.Schema(fields)


def _validator(prop: Mapping[str, Any]) -> Any:
    if "enum" in prop:
        return vol.In(list(prop["enum"]))
    kind = prop.get("type")
    if kind == "array":
        return [_validator(prop.get("items") or {"type": "string"})]
    if kind == "integer":
        return vol.All(vol.Coerce(int), vol.Range(min=prop.get("minimum"), max=prop.get("maximum")))
    if kind == "number":
        return vol.Coerce(float)
    if kind == "boolean":
        return bool
    return str


def _result(data: JsonObjectType, *, error: bool = False) -> Any:
    """A ToolResult where the release has one (2026), else the plain JSON object."""
    tool_result = getattr(llm, "ToolResult", None)
    return tool_result(data=data, error=error) if tool_result is not None else data


class LocalDataTool(llm.Tool):
    """One of the node's read-only tools."""

    integration = DOMAIN

    def __init__(self, client: HeatcomputeClient, tool: NodeTool) -> None:
        self.name = tool.name
        self.description = tool.description
        self.parameters = _parameters(tool.input_schema)
        annotations = getattr(llm, "ToolAnnotations", None)
        if annotations is not None:
            self.annotations = annotations(
                read_only=True, destructive=False, idempotent=True, open_world=False
            )
        self._client = client

    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> Any:
        try:
            is_error, data = await call_tool(self._client, self.name, tool_input.tool_args)
        except HeatcomputeError as err:
            raise HomeAssistantError(f"heatcompute node: {err}") from err
        if is_error:
            # The model reads the reason and can ask again, better.
            return _result({"error": data}, error=True)
        return _result(data if isinstance(data, dict) else {"result": data})


@dataclass(kw_only=True)
class LocalDataAPI(llm.API):
    """The node's tools for an agent's turn."""

    client: HeatcomputeClient

    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        try:
            tools = await list_tools(self.client)
        except HeatcomputeError as err:
            # The agent still answers what it can; the model is told why data is missing.
            _LOGGER.warning("heatcompute local data: no tools from the node: %s", err)
            return llm.APIInstance(
                api=self, api_prompt=API_UNAVAILABLE, llm_context=llm_context, tools=[]
            )
        return llm.APIInstance(
            api=self,
            api_prompt=API_PROMPT,
            llm_context=llm_context,
            tools=[LocalDataTool(self.client, tool) for tool in tools],
        )


def api_id(node_id: str) -> str:
    return f"{DOMAIN}-local-data-{node_id}"


def register(hass: HomeAssistant, client: HeatcomputeClient, node_id: str, title: str) -> Any:
    """Register the node's API; returns the function that unregisters it."""
    name = API_NAME if title == "heatcompute" else f"{API_NAME} ({title})"
    return llm.async_register_api(
        hass, LocalDataAPI(hass=hass, id=api_id(node_id), name=name, client=client)
    )
