"""Sequence slots and the prefix cache.

A slot is one llama.cpp sequence id and the tokens whose KV cells it holds. When a
request ends, what it computed stays cached: the next request that starts with the
same tokens (the voice assistant's system prompt, the chat history so far) reuses those
cells instead of computing them again. Where the cache lives:
- with a `PromptCache` (the default), in RAM: the finished sequence's cells are saved
  and leave the context, and come back on a hit (prompt_cache.py says why);
- without one, in the context: the slot keeps its cells (idle, evictable).
A prefix of a running sequence is shared too, by copying cells (in a unified cache that
only tags them with the new sequence).

Placing a request is two steps: `place` decides (which slot, which cells it can reuse,
how many new cells preparing it takes) without touching the cache, so the scheduler can
first make room; `prepare` then does it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import time
from typing import TYPE_CHECKING

from .kv_ledger import KvLedger
from .native import LlamaContext
from .prompt_cache import PromptCache, PromptEntry, common_prefix

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Placement", "Slot", "SlotPool", "common_prefix"]

_CELLS_PER_TOKEN = 64
"""Most cells copied back from RAM per prompt token they save computing."""


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
    """Leading prompt tokens the slot holds once prepared."""
    source: Slot | PromptEntry | None = None
    """Where they come from: the slot itself (cut down to them), another sequence (cells
    shared), a saved entry (cells copied back from RAM), or nowhere."""

    @property
    def new_cells(self) -> int:
        """Cells preparing occupies for a while beyond the prompt's own: a saved entry
        is copied back whole, then cut to `cached`."""
        return len(self.source.tokens) if isinstance(self.source, PromptEntry) else 0

    @property
    def keeps(self) -> tuple[Slot, ...]:
        """Slots whose cells preparing needs: not to be evicted before it."""
        if isinstance(self.source, Slot) and self.source is not self.slot:
            return (self.slot, self.source)
        return (self.slot,)


class SlotPool:
    """All sequences of one context; finds, prepares, saves and evicts them."""

    def __init__(
        self, context: LlamaContext, n_slots: int, saved: PromptCache | None = None
    ) -> None:
        self._context = context
        self.slots = [Slot(seq_id) for seq_id in range(n_slots)]
        self.ledger = KvLedger(context.n_ctx)
        self.saved = saved

    def place(self, prompt: Sequence[int]) -> Placement | None:
        """Pick an idle slot for `prompt`, reusing the longest cached prefix; None if all busy."""
        idle = [s for s in self.slots if not s.busy]
        if not idle:
            return None
        # At least the last prompt token is computed again: its logits start generation.
        limit = len(prompt) - 1
        as_list = list(prompt)  # list == tuple is never true: compare like with like
        best, best_len = None, 0
        for slot in self.slots:
            n = min(common_prefix(slot.tokens, as_list), limit)
            if n > best_len:
                best, best_len = slot, n
        if self.saved is not None:
            entry, n = self.saved.longest(tuple(prompt), limit)
            # Equal: sharing a running sequence's cells costs no copy and no new cells.
            # A copy back is ~1,000x cheaper per cell than computing a token, but it
            # occupies the whole entry's cells for a moment: not for a token or two.
            if entry is not None and n > best_len and n * _CELLS_PER_TOKEN >= len(entry.tokens):
                return Placement(self._emptiest(idle), n, entry)
        empty = [s for s in idle if not s.tokens]
        if best is not None and not best.busy and (best_len == len(best.tokens) or not empty):
            # In place: it loses nothing of the cache, or there is no free slot to use.
            return Placement(best, best_len, best)
        # A short shared prefix (often only the BOS token) must not cut a cached
        # conversation down to it: the prefix is shared into another slot instead.
        target = self._emptiest([s for s in idle if s is not best])
        return Placement(target, best_len, best)

    def prepare(self, placement: Placement) -> int:
        """Put the placement's cached prefix into its slot; returns the tokens it holds
        (0 when saved cells could not be copied back: no room in the cache)."""
        slot, source, n = placement.slot, placement.source, placement.cached
        if source is slot:
            self.truncate(slot, n)
            return n
        self.truncate(slot, 0)
        if isinstance(source, Slot):
            self._context.seq_cp(source.seq_id, slot.seq_id, 0, n)
            self.ledger.share_prefix(source.seq_id, slot.seq_id, n)
            slot.tokens = source.tokens[:n]
            return n
        if isinstance(source, PromptEntry):
            assert self.saved is not None
            if not self._context.set_seq_state(slot.seq_id, source.state):
                return 0
            self.ledger.append(slot.seq_id, len(source.tokens))
            slot.tokens = list(source.tokens)
            self.truncate(slot, n)
            self.saved.hits += 1
            return n
        return 0

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
        """The slot's sequence ended; its first `keep` cells stay cached (None: all):
        saved to RAM and dropped from the context, or left in it as an idle cache."""
        slot.busy = False
        slot.last_used = time.monotonic()
        if keep is not None:
            self.truncate(slot, keep)
        if self.saved is not None:
            if slot.tokens:
                self._save(slot)
            self.truncate(slot, 0)

    def evict_one(self, keep: Sequence[Slot] = ()) -> bool:
        """Free the cells of the least recently used idle cache; False if none is left."""
        candidates = [s for s in self.slots if not s.busy and s.tokens and s not in keep]
        if not candidates:
            return False
        self.truncate(min(candidates, key=lambda s: s.last_used), 0)
        return True

    def cached_tokens(self) -> int:
        return sum(len(s.tokens) for s in self.slots if not s.busy)

    def _save(self, slot: Slot) -> None:
        assert self.saved is not None
        tokens = tuple(slot.tokens)
        # Eight streams of one prompt and greedy answers end with the same tokens: one copy.
        if self.saved.covers(tokens) or not self.saved.fits(
            self._context.seq_state_size(slot.seq_id)
        ):
            return
        state = self._context.seq_state(slot.seq_id)
        self.saved.add(tokens, state)

    @staticmethod
    def _emptiest(idle: list[Slot]) -> Slot:
        """An empty slot, else the one unused longest (its cache is the stalest)."""
        return min(idle, key=lambda s: (bool(s.tokens), s.last_used))
