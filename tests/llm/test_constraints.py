"""Schemas the grammar converter can't express are the client's mistake (a 400), never a 500."""

from __future__ import annotations

import pytest

from heatcompute_node.engines.llm.constraints import SchemaError, json_schema_grammar


def test_a_schema_without_a_known_type_is_a_schema_error() -> None:
    # llama_cpp's converter refuses this one with a bare assert (found by schemathesis).
    with pytest.raises(SchemaError, match="unsupported JSON Schema"):
        json_schema_grammar({"required": ["a", "b"]})


def test_a_plain_object_schema_becomes_a_grammar() -> None:
    assert "root ::=" in json_schema_grammar({"type": "object"})
