"""Sequence slots and the prefix cache.

A slot is one llama.cpp sequence id and the tokens whose KV cells it holds. When a
request ends its slot keeps those cells (idle, evictable): the next request that starts
with the same tokens (the voice assistant's system prompt, the chat history so far)
reuses them instead of computing them again. A prefix of a running sequence is shared
too, by copying cells (in a unified cache that only tags them with the new sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING

from .kv_ledger import KvLedger
from .native import LlamaContext

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(slots=True, eq=False)
class Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)
    """Tokens whose KV cells this sequence holds, by position."""
    busy: bool = False
    last_used: float = 0.0


@dataclass(frozen=True, slots=True)
class Placement:
    slot: Slot
    cached: int
    """Leading prompt tokens already in the slot's cells."""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix, by binary search on C-speed slice compares."""
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


class SlotPool:
    """All sequences of one context; finds, prepares and evicts them."""

    def __init__(self, context: LlamaContext, n_slots: int) -> None:
        self._context = context
        self.slots = [Slot(seq_id) for seq_id in range(n_slots)]
        self.ledger = KvLedger(context.n_ctx)

    def place(self, prompt: Sequence[int]) -> Placement | None:
        """Pick an idle slot for `prompt`, reusing the longest cached prefix; None if all busy."""
        idle = [s for s in self.slots if not s.busy]
        if not idle:
            return None
        # At least the last prompt token is computed again: its logits start generation.
        limit = len(prompt) - 1
        prompt = list(prompt)  # list == tuple is never true: compare like with like
        best, best_len = None, 0
        for slot in self.slots:
            n = min(common_prefix(slot.tokens, prompt), limit)
            if n > best_len:
                best, best_len = slot, n
        empty = [s for s in idle if not s.tokens]
        if best is not None and not best.busy and (best_len == len(best.tokens) or not empty):
            # In place: it loses nothing of the cache, or there is no free slot to use.
            self.truncate(best, best_len)
            return Placement(best, best_len)
        # A short shared prefix (often only the BOS token) must not cut a cached
        # conversation down to it: the prefix is shared into another slot instead.
        # Prefer an empty slot, else the one unused longest (its cache is the stalest).
        target = min(
            (s for s in idle if s is not best), key=lambda s: (bool(s.tokens), s.last_used)
        )
        self.truncate(target, 0)
        if best is None:
            return Placement(target, 0)
        self._context.seq_cp(best.seq_id, target.seq_id, 0, best_len)
        self.ledger.share_prefix(best.seq_id, target.seq_id, best_len)
        target.tokens = best.tokens[:best_len]
        return Placement(target, best_len)

    def truncate(self, slot: Slot, n: int) -> None:
        """Drop the slot's cells from position `n` on."""
        if n < len(slot.tokens):
            self._context.seq_rm(slot.seq_id, n, -1)
            self.ledger.truncate(slot.seq_id, n)
            del slot.tokens[n:]

    def extend(self, slot: Slot, tokens: Sequence[int]) -> None:
        """Record cells a decode just filled."""
        slot.tokens.extend(tokens)
        self.ledger.append(slot.seq_id, len(tokens))

    def release(self, slot: Slot, *, keep: int | None = None) -> None:
        """The slot's sequence ended; its first `keep` cells stay as cache (None: all)."""
        slot.busy = False
        slot.last_used = time.monotonic()
        if keep is not None:
            self.truncate(slot, keep)

    def evict_one(self, keep: Slot | None = None) -> bool:
        """Free the cells of the least recently used idle cache; False if none is left."""
        candidates = [s for s in self.slots if not s.busy and s.tokens and s is not keep]
        if not candidates:
            return False
        self.truncate(min(candidates, key=lambda s: s.last_used), 0)
        return True

    def cached_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.slots if not s.busy)
