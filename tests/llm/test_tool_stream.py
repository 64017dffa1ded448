"""Streaming answers with tools: words go out at once, only a possible call is held."""

from __future__ import annotations

import json

import pytest

from heatcompute_node.engines.llm.tool_calls import ToolCall
from heatcompute_node.engines.llm.tool_stream import ToolCallStream

CALL = '<tool_call>{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}</tool_call>'
TURN_ON = ToolCall("HassTurnOn", json.dumps({"name": "kitchen light"}))


def stream(
    pieces: list[str], known: set[str] | None = None
) -> tuple[list[str], str, list[ToolCall]]:
    splitter = ToolCallStream(known)
    sent = [splitter.feed(piece) for piece in pieces]
    rest, calls = splitter.finish()
    return sent, rest, calls


def test_plain_words_go_out_as_they_come() -> None:
    sent, rest, calls = stream(["The", " kitchen", " light", " is", " on."])
    assert sent == ["The", " kitchen", " light", " is", " on."]
    assert (rest, calls) == ("", [])


def test_a_call_is_held_and_returned_at_the_end() -> None:
    pieces = [CALL[i : i + 7] for i in range(0, len(CALL), 7)]
    sent, rest, calls = stream(pieces, {"HassTurnOn"})
    assert "".join(sent) == ""
    assert (rest, calls) == ("", [TURN_ON])


def test_a_bare_json_call_from_a_small_model_is_held() -> None:
    sent, rest, calls = stream(
        [' {"name": "HassTurnOn",', ' "arguments": {"name": "kitchen light"}}']
    )
    assert "".join(sent) == ""
    assert (rest, calls) == ("", [TURN_ON])


def test_words_then_a_call_stream_the_words_only() -> None:
    pieces = [
        "Sure",
        ", turning it on. <to",
        "ol_call>",
        CALL.removeprefix("<tool_call>"),
        " Done.",
    ]
    sent, rest, calls = stream(pieces, {"HassTurnOn"})
    assert "".join(sent) == "Sure, turning it on. "
    assert sent[1] == ", turning it on. "  # "<to" is held: it may start the tag
    assert calls == [TURN_ON]
    assert rest == "Done."


@pytest.mark.parametrize(
    ("pieces", "text"),
    [
        (["5 ", "<", " 6"], "5 < 6"),  # a "<" that is no tag goes out with the next piece
        (["<b>bold</b>"], "<b>bold</b>"),
        (["{not json at all"], "{not json at all"),  # held as a possible call, then text
        ([CALL.replace("HassTurnOn", "Unknown")], CALL.replace("HassTurnOn", "Unknown")),
    ],
)
def test_what_only_looked_like_a_call_is_sent_as_text(pieces: list[str], text: str) -> None:
    sent, rest, calls = stream(pieces, {"HassTurnOn"})
    assert "".join(sent) + rest == text
    assert calls == []


def test_an_empty_answer_is_nothing() -> None:
    assert stream(["", "  "]) == (["", ""], "  ", [])
