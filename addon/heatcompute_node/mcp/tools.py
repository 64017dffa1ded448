"""What a tool is: a name, a flat JSON schema, a scope, and a read-only function.

Schemas stay flat on purpose: every property has a plain ``type`` (string, integer,
number, boolean, or an array of strings), no ``anyOf``/``allOf``/``minItems``. Home
Assistant 2025.4's ``mcp`` client converts schemas with voluptuous-openapi and drops
every tool of a server when one schema holds something it can't convert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .tokens import Scope

type Arguments = Mapping[str, Any]
type ToolFunction = Callable[[Arguments], Awaitable[Any]]
type Choices = Callable[[], Mapping[str, tuple[str, ...]]]
"""Live choices for string properties (name -> the values that exist), or none."""

# Every tool here only reads. Clients show these hints to people before a call.
READ_ONLY_ANNOTATIONS: dict[str, bool] = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}


class ToolError(Exception):
    """A failure inside a tool, told to the model as an ``isError`` result (its message is
    meant for the model and the person: what was wrong and what to do instead)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Caps on what one call may cost."""

    call_timeout_s: float = 10.0
    max_output_bytes: int = 256 * 1024
    max_file_bytes: int = 1024 * 1024
    max_rows: int = 500
    max_list_entries: int = 1000


def string(description: str, *, enum: tuple[str, ...] | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "string", "description": description}
    if enum:
        prop["enum"] = list(enum)
    return prop


def integer(description: str, *, minimum: int = 0, maximum: int | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "integer", "description": description, "minimum": minimum}
    if maximum is not None:
        prop["maximum"] = maximum
    return prop


def strings(description: str) -> dict[str, Any]:
    return {"type": "array", "description": description, "items": {"type": "string"}}


def schema(required: tuple[str, ...] = (), **properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    name: str
    title: str
    description: str
    scope: Scope
    input_schema: dict[str, Any]
    run: ToolFunction
    choices: Choices | None = None
    """Narrows free-text properties to what exists (the ids a recorder holds), so a model
    can only name a real one; called for each tools/list, in a worker thread."""
    available: Callable[[], bool] | None = None
    """Whether the tool can work now (the document index needs an embedding model); one
    that can't is not listed, so an agent never picks it. Cheap: called per tools/list."""

    def describe(self, choices: Mapping[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
        """The tool as tools/list shows it, its properties narrowed to `choices`."""
        schema = self.input_schema
        if choices:
            properties = dict(schema["properties"])
            for name, values in choices.items():
                prop = dict(properties[name])
                if prop["type"] == "array":
                    prop["items"] = {"type": "string", "enum": list(values)}
                else:
                    prop["enum"] = list(values)
                properties[name] = prop
            schema = {**schema, "properties": properties}
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": schema,
            "annotations": {"title": self.title, **READ_ONLY_ANNOTATIONS},
        }

    def check_arguments(self, arguments: Any) -> dict[str, Any]:
        """The arguments, checked against the flat schema; a ToolError says what is wrong."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ToolError("arguments must be a JSON object")
        properties: dict[str, dict[str, Any]] = self.input_schema["properties"]
        unknown = sorted(set(arguments) - set(properties))
        if unknown:
            raise ToolError(
                f"unknown argument(s) {', '.join(unknown)}; "
                f"{self.name} takes {', '.join(properties) or 'none'}"
            )
        missing = [name for name in self.input_schema["required"] if arguments.get(name) is None]
        if missing:
            raise ToolError(f"missing argument(s): {', '.join(missing)}")
        checked: dict[str, Any] = {}
        for name, value in arguments.items():
            if value is not None:
                checked[name] = _check_value(name, value, properties[name])
        return checked


def _check_value(name: str, value: Any, prop: Mapping[str, Any]) -> Any:
    kind = prop["type"]
    if kind == "string":
        if not isinstance(value, str):
            raise ToolError(f"{name} must be a string")
        if "enum" in prop and value not in prop["enum"]:
            raise ToolError(f"{name} must be one of {', '.join(prop['enum'])}")
        return value
    if kind == "integer":
        # Small models write 5.0 or "5": accepted when it is a whole number.
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number != float(value):
            raise ToolError(f"{name} must be a whole number")
        if number < prop.get("minimum", number) or number > prop.get("maximum", number):
            raise ToolError(
                f"{name} must be between {prop.get('minimum')} and {prop.get('maximum', 'any')}"
            )
        return number
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ToolError(f"{name} must be true or false")
        return value
    if kind == "array":
        if isinstance(value, str):
            value = [value]  # one id where a list was asked for
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ToolError(f"{name} must be a list of strings")
        return value  # ids beyond a listed choice are answered as unknown by the tool
    raise ToolError(f"{name}: unsupported type {kind}")  # pragma: no cover - schemas are ours
