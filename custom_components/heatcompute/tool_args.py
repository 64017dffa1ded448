"""Tool calls from small models, repaired before Home Assistant sees them.

Small local models get the shape of a tool call mostly right and the details often
wrong: Python literals instead of JSON, a trailing comma, a missing closing brace, the
whole object encoded twice, a list where one string was asked for, a key the tool does
not have, a tool name in the wrong case. Home Assistant's intent tools refuse all of
that, and the user hears "something went wrong". Each repair here is cheap and keeps
the model's intent; what cannot be repaired becomes an `InvalidToolCallError` whose message
tells the model exactly what was wrong, so it can try again.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
import json
import re
from typing import Any

_CODE_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


class InvalidToolCallError(ValueError):
    """The model's tool call cannot be turned into a valid one."""


def repair_tool_call(
    name: str, arguments: str, schemas: Mapping[str, Mapping[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The tool's real name and arguments that fit its JSON schema, or InvalidToolCallError."""
    tool = _match_name(name, schemas)
    args = parse_arguments(arguments)
    return tool, fit_to_schema(args, schemas[tool])


def _match_name(name: str, schemas: Mapping[str, Mapping[str, Any]]) -> str:
    if name in schemas:
        return name
    wanted = _normalised(name)
    for tool in schemas:
        if _normalised(tool) == wanted:
            return tool
    # Since 2026.9 Assist's tool names carry their integration ("intent__HassTurnOn");
    # models that learnt the bare names write "HassTurnOn". Only an unambiguous match.
    bare = [tool for tool in schemas if _normalised(_bare(tool)) == _normalised(_bare(name))]
    if len(bare) == 1:
        return bare[0]
    raise InvalidToolCallError(
        f"there is no tool named {name!r}; the tools are: {', '.join(sorted(schemas))}"
    )


def _normalised(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _bare(name: str) -> str:
    """A tool's name without the integration in front of it ("intent__HassTurnOn")."""
    return name.rpartition("__")[2]


def parse_arguments(text: str) -> dict[str, Any]:
    """A JSON object from what the model wrote as arguments, as leniently as is safe."""
    text = text.strip()
    if not text:
        return {}
    if fenced := _CODE_FENCE.match(text):
        text = fenced.group(1)
    value = _loads(text)
    # Encoded twice: a JSON string that holds the JSON object.
    if isinstance(value, str):
        value = _loads(value.strip())
    # One object in a list.
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, dict):
        raise InvalidToolCallError(f"the arguments must be a JSON object, got: {text[:200]}")
    return value


def _loads(text: str) -> Any:
    candidates = [text, _TRAILING_COMMA.sub(r"\1", text)]
    # An object cut off at the end (the model stopped early): close what is open.
    missing = text.count("{") - text.count("}")
    if 0 < missing <= 3:
        candidates.append(_TRAILING_COMMA.sub(r"\1", text.rstrip(", ") + "}" * missing))
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    # Python literals: {'name': 'Kitchen', 'on': True}. literal_eval runs no code.
    for candidate in candidates:
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    raise InvalidToolCallError(f"the arguments are not valid JSON: {text[:200]}")


def fit_to_schema(args: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Coerce each argument to its property's type; drop empty and unknown ones."""
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    fitted: dict[str, Any] = {}
    for key, raw in args.items():
        value = _unwrap_json_text(raw)
        if value is None or value in ("", [], {}):
            # Small models fill every optional slot with "" or null; intents then fail.
            continue
        prop = properties.get(key)
        if prop is None:
            if properties and schema.get("additionalProperties") is not True:
                continue  # a key the tool does not have would fail the whole call
            fitted[key] = value
            continue
        fitted[key] = _coerce(value, prop, key)
    missing = [
        key for key in schema.get("required") or () if key not in fitted and isinstance(key, str)
    ]
    if missing:
        raise InvalidToolCallError(f"missing required argument(s): {', '.join(missing)}")
    return fitted


def _unwrap_json_text(value: Any) -> Any:
    """A JSON object or list written as a string value (the ollama integration's repair)."""
    if isinstance(value, str):
        text = value.strip()
        if (text.startswith("[") and text.endswith("]")) or (
            text.startswith("{") and text.endswith("}")
        ):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                pass
    return value


def _types(prop: Mapping[str, Any]) -> set[str]:
    kind = prop.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, Sequence):
        return {str(k) for k in kind}
    kinds: set[str] = set()
    for option in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(option, Mapping):
            kinds |= _types(option)
    return kinds


def _coerce(value: Any, prop: Mapping[str, Any], key: str) -> Any:
    kinds = _types(prop)
    if not kinds or _fits(value, kinds):
        return _coerce_enum(value, prop)
    if "array" in kinds and not isinstance(value, list):
        items = prop.get("items")
        item_prop = items if isinstance(items, Mapping) else {}
        return [_coerce(value, item_prop, key)]
    if isinstance(value, list) and len(value) == 1:
        return _coerce(value[0], prop, key)
    if kinds & {"integer", "number"} and isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            pass
        else:
            return int(number) if "integer" in kinds and number.is_integer() else number
    if "boolean" in kinds and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if "string" in kinds and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidToolCallError(
        f"argument {key!r} must be {' or '.join(sorted(kinds))}, got {value!r}"
    )


def _fits(value: Any, kinds: set[str]) -> bool:
    return any(_fits_kind(value, kind) for kind in kinds)


def _fits_kind(value: Any, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    match kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return number and float(value).is_integer()
        case "number":
            return number
        case "boolean":
            return isinstance(value, bool)
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
        case "null":
            return value is None
    return True  # a type this module does not know: leave the value alone


def _coerce_enum(value: Any, prop: Mapping[str, Any]) -> Any:
    """An enum value in the wrong case becomes the right one ("On" -> "on")."""
    options = prop.get("enum")
    if isinstance(value, str) and isinstance(options, Sequence) and value not in options:
        for option in options:
            if isinstance(option, str) and option.lower() == value.lower():
                return option
    if isinstance(value, list):
        items = prop.get("items")
        if isinstance(items, Mapping):
            return [_coerce_enum(item, items) for item in value]
    return value
