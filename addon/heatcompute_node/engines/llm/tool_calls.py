"""Reading tool calls out of a model's answer.

Accepts the ``<tool_call>{...}</tool_call>`` form the chat prompt asks for, and, since
small models are sloppy, a bare JSON object (or list of them) with a name and arguments
(or "parameters"). Arguments come back as a JSON string, as OpenAI sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import re
from typing import Any

from .chat import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

_TAGGED = re.compile(
    re.escape(TOOL_CALL_OPEN) + r"\s*(.*?)\s*(?:" + re.escape(TOOL_CALL_CLOSE) + r"|$)", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: str
    """JSON text of the arguments object."""


def parse_tool_calls(text: str, known: set[str] | None = None) -> tuple[str, list[ToolCall]]:
    """Split an answer into its plain content and the tool calls in it."""
    calls: list[ToolCall] = []
    if TOOL_CALL_OPEN in text:
        for match in _TAGGED.finditer(text):
            calls.extend(_calls_from(match.group(1), known))
        content = _TAGGED.sub("", text).strip()
        return content, calls
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        found = _calls_from(stripped, known)
        if found:
            return "", found
    return text, calls


def _calls_from(raw: str, known: set[str] | None) -> list[ToolCall]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return []
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        call = _call(item)
        if call is not None and (known is None or call.name in known):
            calls.append(call)
    return calls


def _call(item: Any) -> ToolCall | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            arguments = {}
    if not isinstance(arguments, dict):
        arguments = {}
    return ToolCall(name=name, arguments=json.dumps(arguments, ensure_ascii=False))
