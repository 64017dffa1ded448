"""Which KV cells each sequence holds, so the engine knows how full the cache is.

llama.cpp does not report free cells, and with a unified cache a prefix copied from one
sequence to another shares cells (a cell is freed when its last sequence lets go of
it). The ledger mirrors that with reference counts: one id per cell, each sequence a
list of cell ids by position.
"""

from __future__ import annotations

import itertools


class KvLedger:
    """A mirror of the KV cache's occupancy: cells per sequence, shared cells counted once."""

    def __init__(self, n_cells: int) -> None:
        self.n_cells = n_cells
        self._refs: dict[int, int] = {}
        self._cells: dict[int, list[int]] = {}
        self._next = itertools.count()

    @property
    def used(self) -> int:
        return len(self._refs)

    @property
    def free(self) -> int:
        return self.n_cells - len(self._refs)

    def length(self, seq_id: int) -> int:
        return len(self._cells.get(seq_id, ()))

    def append(self, seq_id: int, n: int) -> None:
        """`n` new cells for the next positions of `seq_id` (after a decode)."""
        cells = self._cells.setdefault(seq_id, [])
        for _ in range(n):
            cell = next(self._next)
            self._refs[cell] = 1
            cells.append(cell)

    def share_prefix(self, src: int, dst: int, n: int) -> None:
        """`dst` (empty) now also holds the first `n` cells of `src` (llama_memory_seq_cp)."""
        assert not self._cells.get(dst), "share_prefix needs an empty destination"
        shared = self._cells.get(src, [])[:n]
        for cell in shared:
            self._refs[cell] += 1
        self._cells[dst] = list(shared)

    def truncate(self, seq_id: int, n: int) -> int:
        """Keep the first `n` cells of `seq_id` (llama_memory_seq_rm); returns cells freed."""
        cells = self._cells.get(seq_id)
        if not cells or n >= len(cells):
            return 0
        freed = 0
        for cell in cells[n:]:
            left = self._refs[cell] - 1
            if left:
                self._refs[cell] = left
            else:
                del self._refs[cell]
                freed += 1
        del cells[n:]
        return freed

    def clear(self) -> None:
        self._refs.clear()
        self._cells.clear()
