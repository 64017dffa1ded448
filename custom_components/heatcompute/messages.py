"""Home Assistant's chat log and LLM tools in the OpenAI chat-completions shape.

Written for both Home Assistant releases the integration runs on: 2025.4 (tool
parameters are voluptuous schemas, converted by `voluptuous_openapi`; a tool result is
`ToolResultContent.tool_result`) and 2026.x (probatio schemas and
`ToolResultContent.result`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import importlib
import json
from typing import Any

from homeassistant.components import conversation
from homeassistant.helpers import llm

type Message = dict[str, Any]


def tool_parameters_schema(
    tool: llm.Tool, custom_serializer: Callable[[Any], Any] | None
) -> dict[str, Any]:
    """A tool's parameters as JSON schema, with whichever converter this release ships."""
    try:
        probatio = importlib.import_module("probatio")
    except ImportError:
        converter = importlib.import_module("voluptuous_openapi")
        schema = converter.convert(tool.parameters, custom_serializer=custom_serializer)
    else:
        schema = probatio.to_openapi(
            tool.parameters, custom_serializer=custom_serializer, openapi_version="3.1.0"
        )
    return dict(schema) if isinstance(schema, Mapping) else {"type": "object"}


def format_tools(api: llm.APIInstance | None) -> tuple[list[Message], dict[str, dict[str, Any]]]:
    """OpenAI tool definitions and each tool's parameter schema, in the API's own order.

    The order and the text must not change between turns: the node's chat template
    writes the tools into the prompt, which has to stay a cacheable prefix.
    """
    if api is None:
        return [], {}
    tools: list[Message] = []
    schemas: dict[str, dict[str, Any]] = {}
    for tool in api.tools:
        parameters = tool_parameters_schema(tool, api.custom_serializer)
        function: dict[str, Any] = {"name": tool.name, "parameters": parameters}
        if tool.description:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
        schemas[tool.name] = parameters
    return tools, schemas


def read_only_tools(api: llm.APIInstance | None) -> frozenset[str]:
    """The tools that only read the home (2026.x annotates them; 2025.4 does not)."""
    if api is None:
        return frozenset()
    return frozenset(
        tool.name
        for tool in api.tools
        if getattr(getattr(tool, "annotations", None), "read_only", False) is True
    )


def _tool_result_data(content: conversation.ToolResultContent) -> Any:
    # 2026.x: `result` (a ToolResult with `data`); reading `tool_result` there warns.
    result = getattr(content, "result", None)
    if result is not None:
        return getattr(result, "data", result)
    return content.tool_result


def to_message(content: conversation.Content) -> Message | None:
    """One chat-log entry as an OpenAI message; None for the chat log's system prompt."""
    if isinstance(content, conversation.UserContent):
        return {"role": "user", "content": content.content}
    if isinstance(content, conversation.AssistantContent):
        message: Message = {"role": "assistant", "content": content.content or ""}
        if content.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.tool_name,
                        "arguments": json.dumps(call.tool_args, ensure_ascii=False),
                    },
                }
                for call in content.tool_calls
            ]
        return message
    if isinstance(content, conversation.ToolResultContent):
        return {
            "role": "tool",
            "tool_call_id": content.tool_call_id,
            "content": json.dumps(_tool_result_data(content), ensure_ascii=False, default=str),
        }
    # The chat log's own system prompt: the agent composes its own (prompt.py).
    return None


def split_turns(
    contents: Sequence[conversation.Content],
) -> tuple[list[list[Message]], list[Message]]:
    """Earlier turns (oldest first) and the current turn, each from a user message on."""
    turns: list[list[Message]] = []
    for content in contents:
        message = to_message(content)
        if message is None:
            continue
        if message["role"] == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    if not turns:
        return [], []
    return turns[:-1], turns[-1]


def last_turns(turns: list[list[Message]], keep: int) -> list[list[Message]]:
    """The `keep` most recent earlier turns (0 keeps none)."""
    return turns[-keep:] if keep > 0 else []
