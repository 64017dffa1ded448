"""Token bytes -> text deltas for a stream, with stop strings.

Two things make this more than a join: a token can end in the middle of a UTF-8
character, and a stop string can span tokens. Text that could still turn out to be the
start of a stop string is held back until it can't, so a stop string never leaks into
the output, not even partly.
"""

from __future__ import annotations

import codecs


class TextStream:
    """Feeds token pieces in, gives text out; knows when a stop string was hit."""

    def __init__(self, stops: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.text = ""
        """Everything emitted so far."""
        self.stopped = False

    def feed(self, piece: bytes) -> str:
        """Add one token's bytes; return the text that is now safe to emit."""
        if self.stopped:
            return ""
        pending = self._held + self._decoder.decode(piece)
        if not self._stops:
            self._held = ""
            return self._emit(pending)
        cut = _first_stop(pending, self._stops)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return self._emit(pending[:cut])
        keep = _partial_stop_suffix(pending, self._stops)
        self._held = pending[len(pending) - keep :] if keep else ""
        return self._emit(pending[: len(pending) - keep])

    def flush(self) -> str:
        """The end of the stream: whatever was held back is text after all."""
        if self.stopped:
            return ""
        rest = self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return self._emit(rest)

    def _emit(self, text: str) -> str:
        self.text += text
        return text


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    positions = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(positions) if positions else None


def _partial_stop_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that is a proper start of some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
