"""Pure-Python pieces of the engine: stop strings over token boundaries, the KV ledger."""

from __future__ import annotations

from heatcompute_node.engines.llm.kv_ledger import KvLedger
from heatcompute_node.engines.llm.slots import common_prefix
from heatcompute_node.engines.llm.text_stream import TextStream


def feed_all(stream: TextStream, pieces: list[bytes]) -> str:
    return "".join(stream.feed(p) for p in pieces) + stream.flush()


def test_stop_string_split_across_tokens_never_leaks() -> None:
    stream = TextStream(("</answer>",))
    out = [stream.feed(p) for p in [b"The light ", b"is on</", b"ans", b"wer> trailing"]]
    assert "".join(out) == "The light is on"
    assert out[1] == "is on"  # "</" is held back until it can't be a stop any more
    assert stream.stopped


def test_held_text_is_released_when_it_is_not_a_stop() -> None:
    stream = TextStream(("STOP",))
    assert stream.feed(b"ST") == ""
    assert stream.feed(b"ar") == "STar"
    assert not stream.stopped


def test_multibyte_character_split_across_tokens() -> None:
    data = "Wärme 🔥".encode()
    assert feed_all(TextStream(), [data[:2], data[2:8], data[8:]]) == "Wärme 🔥"


def test_first_of_several_stops_wins() -> None:
    stream = TextStream(("b", "a"))
    assert feed_all(stream, [b"xxab"]) == "xx"


def test_ledger_counts_shared_prefix_cells_once() -> None:
    ledger = KvLedger(100)
    ledger.append(0, 30)
    ledger.share_prefix(0, 1, 20)
    ledger.append(1, 5)
    assert ledger.used == 35
    assert ledger.truncate(0, 0) == 10  # the 20 shared cells stay with sequence 1
    assert ledger.used == 25
    assert ledger.truncate(1, 0) == 25
    assert ledger.free == 100


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([5, 6], [5, 6]) == 2
    assert common_prefix(list(range(1000)), [*range(777), -1]) == 777
