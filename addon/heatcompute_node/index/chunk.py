"""Cutting text into passages: a few sentences each, on paragraph and sentence bounds.

A passage is what a search returns and what one embedding describes, so it should hold
one thought: paragraphs are packed up to ``MAX_CHARS`` (about 150 tokens, well inside
the embedding model's 512), a longer paragraph is cut between sentences, and a sentence
longer still between words. Each passage keeps the line it starts on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import re

from .extract import Section

MAX_CHARS = 600
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    page: int | None
    line: int
    """First line of the passage in its section, from 1."""


def _paragraphs(text: str) -> Iterator[tuple[int, str, bool, bool]]:
    """(first line, text, starts a new topic, holds more than a heading) of each
    paragraph: runs of lines between blank lines; a Markdown heading starts a paragraph
    and a new topic of its own."""
    start, lines, heading = 0, list[str](), False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#") and lines:
            yield start, " ".join(lines), heading, len(lines) > 1 or not heading
            lines = []
        if stripped:
            if not lines:
                start, heading = number, stripped.startswith("#")
            lines.append(stripped.lstrip("#").strip() + (":" if stripped.startswith("#") else ""))
        elif lines:
            yield start, " ".join(lines), heading, len(lines) > 1 or not heading
            lines = []
    if lines:
        yield start, " ".join(lines), heading, len(lines) > 1 or not heading


def _pieces(paragraph: str, limit: int) -> Iterator[str]:
    """The paragraph in pieces of at most `limit` characters, cut between sentences
    (between words for a sentence that is longer on its own)."""
    piece = ""
    for sentence in _SENTENCE_END.split(_SPACES.sub(" ", paragraph).strip()):
        words = [sentence] if len(sentence) <= limit else sentence.split(" ")
        for whole in words:
            word = whole[:limit]
            if piece and len(piece) + 1 + len(word) > limit:
                yield piece
                piece = ""
            piece = f"{piece} {word}" if piece else word
    if piece:
        yield piece


def chunk_sections(sections: Sequence[Section], max_chars: int = MAX_CHARS) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in sections:
        text, first, body = "", 1, False
        for line, paragraph, new_topic, has_body in _paragraphs(section.text):
            # A heading starts a new passage, unless the passage so far is only headings.
            if new_topic and body:
                chunks.append(Chunk(text, section.page, first))
                text, body = "", False
            for piece in _pieces(paragraph, max_chars):
                if text and len(text) + 1 + len(piece) > max_chars:
                    chunks.append(Chunk(text, section.page, first))
                    text = ""
                if not text:
                    first = line
                text = f"{text}\n{piece}" if text else piece
            body = body or has_body
        if text:
            chunks.append(Chunk(text, section.page, first))
    return chunks


def estimate_chunks(kind: str, size: int) -> int:
    """Passages a file will likely give, from its size alone (for the backlog)."""
    if kind == "image":
        return 2
    if kind == "pdf":
        return max(1, size // 3000)  # PDF bytes are mostly layout, fonts and images
    return max(1, size // MAX_CHARS)
