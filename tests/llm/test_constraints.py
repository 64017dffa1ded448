"""Schemas the grammar converter can't express are the client's mistake (a 400), never a 500;
those it can give grammars llama.cpp parses and whose output is the schema's JSON."""

from __future__ import annotations

import json
import re

import pytest

from heatcompute_node.engines.llm.constraints import SchemaError, json_schema_grammar
from heatcompute_node.engines.llm.request import Finished, GenerationRequest
from heatcompute_node.engines.llm.sampling import SamplingParams
from heatcompute_node.engines.llm.scheduler import Scheduler
from heatcompute_node.engines.llm.tokenizer import Tokenizer


async def constrained(
    engine: Scheduler, tokenizer: Tokenizer, grammar: str, seed: int, *, max_tokens: int
) -> Finished:
    """What the random tiny model writes under `grammar`, sampled with `seed`."""
    return await engine.submit(
        GenerationRequest(
            prompt=tuple(tokenizer.tokenize("JSON please")),
            max_tokens=max_tokens,
            sampling=SamplingParams(temperature=1.0, seed=seed, grammar=grammar),
        )
    ).result()


def test_a_schema_of_an_unknown_type_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="unsupported JSON Schema"):
        json_schema_grammar({"type": "fancy"})
    with pytest.raises(SchemaError, match="unsupported JSON Schema"):
        json_schema_grammar({"$ref": "#/nowhere"})


@pytest.mark.parametrize(
    "schema",
    [
        # Found by schemathesis: the converter refused these (one with a bare assert),
        # though each is in the subset the node's API describes.
        {"required": ["a", "b"]},
        {"properties": {"a": {"description": "a room"}}, "required": ["a"]},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]},
    ],
)
async def test_required_keys_are_written_whatever_else_the_schema_says(
    engine: Scheduler, tiny_tokenizer: Tokenizer, schema: dict[str, object]
) -> None:
    """Annotations constrain nothing, and a required key without a schema of its own may
    hold any value, but it is there: the output opens with the first required key (the
    random tiny model fills "any value" with more text than fits, so only its start is
    read)."""
    grammar = json_schema_grammar(schema)
    first = schema["required"][0]  # type: ignore[index]
    for seed in range(4):
        finished = await constrained(engine, tiny_tokenizer, grammar, seed, max_tokens=12)
        assert finished.reason in ("stop", "length"), finished
        opening = re.match(r'\{\s*"(\w*)"', finished.text)
        assert opening is not None, finished.text
        assert opening.group(1) == first


def test_a_plain_object_schema_becomes_a_grammar() -> None:
    assert "root ::=" in json_schema_grammar({"type": "object"})


# Strings whose JSON needs every kind of escape, and a few that need none.
AWKWARD = [
    "Küche",
    'say "hi"',
    "C:\\temp",
    "tab\there",
    "form\ffeed",
    "bell\x07",
    "\x00nul",
    "line\nbreak",
    "emoji 🔥",
    "lone \ud800 surrogate",
    "",
]
AWKWARD_SCHEMA = {
    "type": "object",
    "properties": {
        "room": {"enum": AWKWARD},
        "": {"const": 'x"y'},
        'we"ird\\name': {"type": "integer"},
    },
    "required": ["room", "", 'we"ird\\name'],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", range(12))
async def test_awkward_strings_make_a_grammar_whose_output_is_valid_json(
    engine: Scheduler, tiny_tokenizer: Tokenizer, seed: int
) -> None:
    """Found by schemathesis: the converter left JSON escapes (\\f, \\", \\u0001) in its
    literals for llama.cpp to misread ("the grammar does not parse"), and a property named
    "" took the root rule's name. The random tiny model picks its own branches: each
    seed's output must be JSON that the schema accepts."""
    grammar = json_schema_grammar(AWKWARD_SCHEMA)
    finished = await constrained(engine, tiny_tokenizer, grammar, seed, max_tokens=200)
    assert finished.reason == "stop", finished
    value = json.loads(finished.text)
    assert value["room"] in AWKWARD
    assert value[""] == 'x"y'
    assert isinstance(value['we"ird\\name'], int)
    assert set(value) == {"room", "", 'we"ird\\name'}


def test_printable_non_ascii_is_written_as_itself() -> None:
    grammar = json_schema_grammar({"enum": ["Küche", "Wohnzimmer"]})
    assert '"\\"Küche\\""' in grammar  # not "K\\u00fcche": a model writes what it reads
