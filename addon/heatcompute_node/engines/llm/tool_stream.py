"""Streaming an answer that may contain tool calls: text goes out at once, calls don't.

With tools in a request, the model answers either in words or with a call. Holding the
whole answer back until it ends (so a call is never streamed as text) would make every
spoken or typed answer wait for its last token. Instead, only what may still become a
call is held: the start of an answer until it is clearly text (a call starts with
``<tool_call>`` or, from sloppy small models, a bare JSON object), and, inside text, a
trailing piece that could be the beginning of a ``<tool_call>`` tag. Once a call has
started, the rest is held and read by `parse_tool_calls` at the end.
"""

from __future__ import annotations

from enum import Enum, auto

from .chat import TOOL_CALL_OPEN
from .tool_calls import ToolCall, parse_tool_calls


class _Mode(Enum):
    UNDECIDED = auto()
    TEXT = auto()
    CALL = auto()


class ToolCallStream:
    """Splits streamed text into what can be sent now and the calls found at the end."""

    def __init__(self, known: set[str] | None = None) -> None:
        self._known = known
        self._held = ""
        self._mode = _Mode.UNDECIDED

    def feed(self, text: str) -> str:
        """Take the next piece of the answer; returns the text that may be sent now."""
        self._held += text
        if self._mode is _Mode.CALL:
            return ""
        if self._mode is _Mode.UNDECIDED:
            start = self._held.lstrip()
            if not start or TOOL_CALL_OPEN.startswith(start):
                return ""  # nothing yet, or a tag still being written
            if start.startswith(("{", "[", TOOL_CALL_OPEN)):
                self._mode = _Mode.CALL
                return ""
            self._mode = _Mode.TEXT
        return self._release_text()

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The answer ended: (text still to send, the tool calls in the answer)."""
        held, self._held = self._held, ""
        if self._mode is _Mode.CALL:
            content, calls = parse_tool_calls(held, self._known)
            if calls:
                return content, calls
        return held, []

    def _release_text(self) -> str:
        held = self._held
        tag = held.find(TOOL_CALL_OPEN)
        if tag >= 0:
            self._mode = _Mode.CALL
            self._held = held[tag:]
            return held[:tag]
        # Keep back the longest end of the text that could start the tag ("<", "<to"...).
        keep = next(
            (
                n
                for n in range(min(len(held), len(TOOL_CALL_OPEN) - 1), 0, -1)
                if held.endswith(TOOL_CALL_OPEN[:n])
            ),
            0,
        )
        self._held = held[len(held) - keep :]
        return held[: len(held) - keep]
