"""Grammars that constrain output: JSON (any object, or a JSON Schema) and forced tool calls.

llama-cpp-python ships llama.cpp's JSON-Schema -> GBNF converter; its grammars have a
`root` rule. A tool call wraps the schema's grammar in the `<tool_call>` markers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
import re
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from .chat import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

_ROOT = re.compile(r"^root ::=", re.MULTILINE)


class SchemaError(ValueError):
    """The JSON Schema can't be turned into a grammar."""


def json_schema_grammar(schema: Mapping[str, Any]) -> str:
    """GBNF for JSON that validates against `schema`."""
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    # llama_cpp's converter refuses some schemas with a bare assert (a schema without a
    # type it knows, found by schemathesis): a client's mistake, not the node's.
    except (
        AssertionError,
        ValueError,
        KeyError,
        TypeError,
        NotImplementedError,
        RecursionError,
    ) as err:
        raise SchemaError(f"unsupported JSON Schema: {err}") from err


def json_object_grammar() -> str:
    """GBNF for any JSON object (`response_format: json_object`)."""
    return json_schema_grammar({"type": "object"})


def tool_call_grammar(tools: Sequence[Mapping[str, Any]]) -> str:
    """GBNF for exactly one call of one of `tools` (OpenAI function tools)."""
    variants: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function", tool)
        variants.append(
            {
                "type": "object",
                "properties": {
                    "name": {"const": function["name"]},
                    "arguments": function.get("parameters") or {"type": "object"},
                },
                "required": ["name", "arguments"],
            }
        )
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    try:
        inner = str(json_schema_to_gbnf(json.dumps(schema), ["name", "arguments"]))
    except (ValueError, KeyError, TypeError, NotImplementedError, RecursionError) as err:
        raise SchemaError(f"unsupported tool parameters schema: {err}") from err
    inner = _ROOT.sub("tool-call ::=", inner)
    opening, closing = json.dumps(TOOL_CALL_OPEN), json.dumps(TOOL_CALL_CLOSE)
    return f"root ::= {opening} tool-call {closing}\n{inner}"
