r"""Grammars that constrain output: JSON (any object, or a JSON Schema) and forced tool calls.

llama-cpp-python ships llama.cpp's JSON-Schema -> GBNF converter; its grammars have a
`root` rule. A tool call wraps the schema's grammar in the `<tool_call>` markers.

Three of the converter's ways are mended here (found by schemathesis): its string literals
escape only quotes and line breaks, so an enum value or a property name with a
backslash escape in its JSON (`\f`, `\"`, `\u0001`) gave a grammar llama.cpp can't parse
(or one whose JSON was wrong); a property named "" took the name `root` from the object
it belongs to; and a schema with only a description (or only required keys) was
"unrecognized". Literals here are the exact JSON text, GBNF-escaped, with printable
non-ASCII kept as it is (a model writes "Küche", not "K\u00fcche").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
import re
from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from .chat import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

_ROOT = re.compile(r"^root ::=", re.MULTILINE)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ANNOTATIONS = frozenset(
    {"description", "title", "examples", "default", "$comment", "deprecated", "readOnly",
     "writeOnly"}
)  # fmt: skip
_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


# llama_cpp's converter has no type hints: its calls are marked below.
class _Converter(SchemaConverter):
    def __init__(self, prop_order: Mapping[str, int]) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            prop_order=prop_order, allow_fetch=False, dotall=False, raw_pattern=False
        )
        self._root_visited = False

    def visit(self, schema: Any, name: str) -> Any:
        # The converter names a rule after its path and calls the top one "" -> root; a
        # top-level property named "" would be called root too, and take the name first.
        if not name:
            if self._root_visited:
                name = "empty-key"
            self._root_visited = True
        if isinstance(schema, dict):
            schema = _constraints_only(schema)
        return super().visit(schema, name)  # type: ignore[no-untyped-call]

    def _format_literal(self, literal: str) -> str:
        return gbnf_literal(_readable_json(literal))


def _constraints_only(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without its annotations, which constrain nothing: the converter took
    ``{"description": "..."}`` for a schema it does not know. Properties or required keys
    without a type are an object's, as JSON Schema reads them; a required key without a
    schema of its own may hold any value (the converter would drop it, and the output
    could lack it)."""
    kept = {key: value for key, value in schema.items() if key not in _ANNOTATIONS}
    if "type" not in kept and ("properties" in kept or "required" in kept):
        kept["type"] = "object"
    required, properties = kept.get("required"), kept.get("properties", {})
    if isinstance(required, list) and isinstance(properties, dict):
        unnamed: dict[str, Any] = {
            key: {} for key in required if isinstance(key, str) and key not in properties
        }
        if unnamed:
            kept["properties"] = {**properties, **unnamed}
    return kept


def gbnf_literal(text: str) -> str:
    """A GBNF string literal that matches exactly ``text``."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in _GBNF_ESCAPES:
            out.append(_GBNF_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate has no UTF-8: never matched
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _readable_json(literal: str) -> str:
    """The converter's literals are ``json.dumps`` text (ASCII, non-ASCII as \\uXXXX): the
    same JSON with printable non-ASCII written as itself. Anything else is left as it is."""
    try:
        value = json.loads(literal)
    except ValueError:
        return literal
    if json.dumps(value) != literal:
        return literal
    text = json.dumps(value, ensure_ascii=False)
    # Lone surrogates stay JSON escapes (they have no UTF-8 of their own).
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def json_schema_to_gbnf(schema: str, prop_order: Sequence[str] = ()) -> str:
    """llama_cpp's ``json_schema_to_gbnf``, on the mended converter."""
    converter = _Converter({name: index for index, name in enumerate(prop_order)})
    resolved = converter.resolve_refs(json.loads(schema), "stdin")
    converter.visit(resolved, "")
    return str(converter.format_grammar())  # type: ignore[no-untyped-call]


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
