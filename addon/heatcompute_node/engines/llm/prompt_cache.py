"""Idle prefixes in RAM: the KV cells of finished sequences, saved, bounded, LRU.

In a unified KV cache every decode step attends over every occupied cell up to the
highest one, masked or not: 4,800 cells of idle prefix caches cut a single stream's
decode by 20-30 % (docs/benchmarks.md). So a finished sequence's cells leave the
context: llama.cpp copies them out (`llama_state_seq_get_data`) into an entry here, and
a later prompt that starts with the same tokens gets them copied back
(`llama_state_seq_set_data`, ~25 ms for 4,000 cells of SmolLM2) instead of computing
them again (~15 s). The context then holds only what runs.

The store is bounded in bytes; when a new entry does not fit, the least recently used
ones go. An entry is also dropped when a longer one supersedes it (the next turn of the
same conversation starts with it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
import itertools

import numpy as np
import numpy.typing as npt


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix, by binary search on C-speed slice compares.

    Both of one type (a list never equals a tuple)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True, slots=True, eq=False)
class PromptEntry:
    """The saved cells of one token sequence (`tokens[i]` at position `i`)."""

    tokens: tuple[int, ...]
    state: npt.NDArray[np.uint8]
    """llama.cpp's serialised sequence state, as `llama_state_seq_get_data` wrote it."""

    @property
    def nbytes(self) -> int:
        return int(self.state.nbytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptCacheStats:
    bytes_used: int
    bytes_limit: int
    entries: int
    hits: int
    """Placements that copied cells back from RAM."""
    evicted: int
    """Entries dropped to stay within the byte limit."""


class PromptCache:
    """Saved sequences in RAM, at most `limit_bytes` of them, least recently used out first.

    Used by the engine thread only (no lock); `stats()` reads plain integers."""

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("the prompt cache needs a positive byte limit")
        self.limit_bytes = limit_bytes
        self._entries: OrderedDict[int, PromptEntry] = OrderedDict()  # oldest first
        self._ids = itertools.count()
        self.bytes_used = 0
        self.hits = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, prompt: tuple[int, ...], limit: int) -> tuple[PromptEntry | None, int]:
        """The entry sharing the longest prefix with `prompt` (at most `limit` tokens)."""
        best: tuple[int, PromptEntry] | None = None
        best_len = 0
        if not prompt or limit <= 0:
            return None, 0
        first = prompt[0]
        for key, entry in self._entries.items():
            if entry.tokens[0] != first:
                continue
            n = min(common_prefix(entry.tokens, prompt), limit)
            # >=: of equal matches the most recently used (iterated last) wins.
            if n >= best_len and n > 0:
                best, best_len = (key, entry), n
        if best is None:
            return None, 0
        self._entries.move_to_end(best[0])
        return best[1], best_len

    def covers(self, tokens: tuple[int, ...]) -> bool:
        """True (and that entry marked as used) if an entry already holds all of `tokens`."""
        n = len(tokens)
        for key, entry in self._entries.items():
            if len(entry.tokens) >= n and entry.tokens[:n] == tokens:
                self._entries.move_to_end(key)
                return True
        return False

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.limit_bytes

    def add(self, tokens: tuple[int, ...], state: npt.NDArray[np.uint8]) -> bool:
        """Keep `state` for `tokens`; False if it is larger than the whole limit."""
        entry = PromptEntry(tokens, state)
        if not self.fits(entry.nbytes):
            return False
        # What the new entry starts with is served by it from now on.
        for key in [k for k, e in self._entries.items() if tokens[: len(e.tokens)] == e.tokens]:
            self._drop(key)
        while self.bytes_used + entry.nbytes > self.limit_bytes:
            self._drop(next(iter(self._entries)))
            self.evicted += 1
        self._entries[next(self._ids)] = entry
        self.bytes_used += entry.nbytes
        return True

    def entries(self) -> tuple[PromptEntry, ...]:
        """The saved entries, least recently used first."""
        return tuple(self._entries.values())

    def clear(self) -> None:
        self._entries.clear()
        self.bytes_used = 0

    def stats(self) -> PromptCacheStats:
        return PromptCacheStats(
            bytes_used=self.bytes_used,
            bytes_limit=self.limit_bytes,
            entries=len(self._entries),
            hits=self.hits,
            evicted=self.evicted,
        )

    def _drop(self, key: int) -> None:
        self.bytes_used -= self._entries.pop(key).nbytes
