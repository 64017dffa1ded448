"""JSON Schemas of the request bodies the node reads, as its handlers validate them.

A request valid by these schemas is served (or refused for a reason outside the body:
a model or folder the node doesn't have, 404; a busy engine, 429); one that breaks them
gets a 400. schemathesis checks both directions against a real node (scripts/api_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from ..heat.jobs import MAX_ITEM_CHARS, MAX_ITEMS, MAX_TOKENS_LIMIT, PRIORITIES
from .openai_params import MAX_STOPS

_NON_EMPTY = {"type": "string", "minLength": 1}

_TOOL_CALL = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
        },
    },
}
_CONTENT_PART = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
}
CHAT_MESSAGE: dict[str, Any] = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": _CONTENT_PART},
                {"type": "null"},
            ]
        },
        "name": {"type": "string"},
        "tool_calls": {"type": "array", "items": _TOOL_CALL},
        "tool_call_id": {"type": "string"},
    },
}
_TOOL = {
    "type": "object",
    "required": ["function"],
    "properties": {
        "type": {"const": "function"},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "parameters": {"$ref": "#/components/schemas/JsonSchemaSubset"},
            },
        },
    },
}
JSON_SCHEMA_SUBSET: dict[str, Any] = {
    "description": "the JSON Schema subset the node turns into a grammar (types, properties, "
    "required, enum, items); other keywords are not promised",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["object", "array", "string", "number", "integer", "boolean"]},
        "properties": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "type": {"enum": ["string", "number", "integer", "boolean"]},
                    "enum": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "description": {"type": "string"},
                },
            },
        },
        "required": {"type": "array", "items": {"type": "string"}},
    },
}
_RESPONSE_FORMAT = {
    "anyOf": [
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"enum": ["text", "json_object"]}},
        },
        {
            "type": "object",
            "required": ["type", "json_schema"],
            "properties": {
                "type": {"const": "json_schema"},
                "json_schema": {
                    "type": "object",
                    "required": ["schema"],
                    "properties": {
                        "name": {"type": "string"},
                        "schema": {"$ref": "#/components/schemas/JsonSchemaSubset"},
                    },
                },
            },
        },
    ]
}
_TOOL_CHOICE = {
    "enum": ["none", "auto", "required"],
    "description": "also {type: function, function: {name}} naming one of tools, as OpenAI's",
}
# tool_choice "required" needs tools to choose from.
_REQUIRED_NEEDS_TOOLS = {
    "if": {"required": ["tool_choice"], "properties": {"tool_choice": {"const": "required"}}},
    "then": {"required": ["tools"], "properties": {"tools": {"type": "array", "minItems": 1}}},
}
_STOP = {
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "maxItems": MAX_STOPS},
        {"type": "null"},
    ]
}


def _range(low: float, high: float) -> dict[str, Any]:
    return {"type": "number", "minimum": low, "maximum": high}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or null: a null optional field is the same as none (OpenAI's API reads
    it so, and clients send it; found by a random fuzzing seed: the node took
    ``"max_tokens": null`` and the document said it would not)."""
    return {"anyOf": [schema, {"type": "null"}]}


# Fields every generation request reads; unknown fields are ignored (OpenAI clients send
# many a local server may leave aside).
_GENERATION_FIELDS: dict[str, Any] = {
    "model": {"type": "string"},
    "max_tokens": {"type": "integer", "minimum": 1},
    "max_completion_tokens": {"type": "integer", "minimum": 1},
    "n": {"const": 1},
    "stream": {"type": "boolean"},
    "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "temperature": _range(0, 2),
    "top_p": _range(0, 1),
    "top_k": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
    "min_p": _range(0, 1),
    "repeat_penalty": _range(0.01, 10),
    "frequency_penalty": _range(-2, 2),
    "presence_penalty": _range(-2, 2),
    "seed": {"type": "integer"},
    "stop": _STOP,
    "logit_bias": {
        "type": "object",
        "propertyNames": {"pattern": "^[0-9]{1,6}$"},
        "additionalProperties": {"type": "number"},
        "description": "token id -> bias (clamped to -100..100)",
    },
    "ignore_eos": {"type": "boolean"},
    "priority": {"enum": ["interactive", "background"]},
    "response_format": _RESPONSE_FORMAT,
}
_GENERATION = {name: _or_null(schema) for name, schema in _GENERATION_FIELDS.items()}

CHAT_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["messages"],
    **_REQUIRED_NEEDS_TOOLS,
    "properties": {
        **_GENERATION,
        "messages": {"type": "array", "minItems": 1, "items": CHAT_MESSAGE},
        "tools": _or_null({"type": "array", "items": _TOOL}),
        "tool_choice": _or_null(_TOOL_CHOICE),
    },
}
COMPLETION_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        **_GENERATION,
        "prompt": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1},
            ]
        },
    },
}
EMBEDDING_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string"},
        "input": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        },
        "encoding_format": {"enum": ["float", "base64"]},
    },
}

_JOB_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "additionalProperties": False,
    "properties": {
        "role": {"enum": ["system", "user", "assistant"]},
        "content": {"type": "string"},
    },
}
# Size limits (MAX_ITEMS items, MAX_ITEM_CHARS characters an item) are in the
# descriptions, not in maxItems/maxLength: a fuzzer's boundary case would be a 2 GB body.
_JOB_MESSAGES = {"type": "array", "minItems": 1, "items": _JOB_MESSAGE}
_TEXT_ITEM = {"type": "string", "minLength": 1}
_JOB_COMMON: dict[str, Any] = {
    "model": {
        **_NON_EMPTY,
        "description": "a model id; one the node lacks is a 400 model_not_available",
    },
    "priority": {"enum": list(PRIORITIES), "default": "normal"},
    "deadline": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 with a time zone; one already past means due now",
    },
    "deadline_in_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e9},
    "metadata": {
        "type": "object",
        "maxProperties": 16,
        "propertyNames": {"maxLength": 64},
        "additionalProperties": {"type": "string", "maxLength": 512},
    },
}
_JOB_GENERATION: dict[str, Any] = {
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS_LIMIT},
    "temperature": _range(0, 2),
    "top_p": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    "stop": {
        "anyOf": [
            _NON_EMPTY,
            {"type": "array", "maxItems": 4, "items": _NON_EMPTY},
        ]
    },
}
_FOLDER = {
    "folder": {
        **_NON_EMPTY,
        "description": "a directory inside one of the node's job folders (404 otherwise)",
    },
    "pattern": {
        "type": "string",
        "pattern": r"^(?!.*\.\.)[^/]+$",
        "description": "file name pattern, searched recursively (default *.txt, and *.jpg "
        "for read_text)",
    },
}


def _job(kind: str, items: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["kind", "items"],
        "additionalProperties": False,
        "not": {"required": ["deadline", "deadline_in_s"]},
        "properties": {
            "kind": {"const": kind},
            "items": {
                "type": "array",
                "minItems": 1,
                "items": items,
                "description": f"at most {MAX_ITEMS} items of at most {MAX_ITEM_CHARS} "
                "characters each (400 beyond)",
            },
            **_JOB_COMMON,
            **extra,
        },
    }


JOB_REQUEST: dict[str, Any] = {
    "oneOf": [
        _job(
            "chat",
            {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["messages"],
                        "properties": {"messages": _JOB_MESSAGES},
                    },
                    _JOB_MESSAGES,
                ]
            },
            _JOB_GENERATION,
        ),
        _job("completions", _TEXT_ITEM, _JOB_GENERATION),
        _job("embeddings", _TEXT_ITEM, {}),
        *(
            {
                "type": "object",
                "required": ["kind", "folder"],
                "additionalProperties": False,
                "not": {"required": ["deadline", "deadline_in_s"]},
                "properties": {"kind": {"const": kind}, **_FOLDER, **_JOB_COMMON},
            }
            for kind in ("embeddings", "read_text")
        ),
    ],
}
