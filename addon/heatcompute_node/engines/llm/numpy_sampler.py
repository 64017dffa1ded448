"""The fast path: llama.cpp's sampler chain redone in numpy on the logits row in place.

`llama_sampler_sample` copies all 49k logits into token records and runs the chain over
them in C: ~480 µs a token at temperature 0.7 on the dev machine, 6-11 % of an
8-sequence decode step (bench/sampling.py). For requests without a grammar or penalties
this path reads the row where llama.cpp left it and does the same filters, in the order
Sampler builds the chain:

    logit_bias -> top_k -> top_p -> min_p -> temperature -> dist    (greedy: argmax)

Each filter keeps the tokens llama.cpp's keeps (llama-sampler.cpp, llama.cpp as vendored
by llama-cpp-python 0.3.36):

- logit_bias adds each bias (float32) to its token's logit; ids outside the vocabulary
  are ignored.
- top_k <= 0 is off; otherwise the k highest logits (all tokens if k >= the vocabulary).
- top_p < 1 keeps the shortest run of tokens, by descending logit, whose float32 running
  sum of probabilities reaches top_p (at least one token). The probabilities are the
  softmax of the logits at that point, before temperature, summed one by one in float32
  like the chain does (a flat distribution over 49k tokens cuts where the chain's
  rounding cuts, not where exact arithmetic would).
- min_p > 0 keeps tokens whose logit >= max logit + logf(min_p), i.e. p >= min_p * p_max.
- temperature divides the remaining logits; dist samples their softmax.
- greedy (temperature <= 0, or one float32 rounds to 0) is the first highest logit.

Where llama.cpp leaves the choice to its sort (std::partial_sort, std::sort), which of
several tokens tied at top_k's k-th place or at top_p's cut stay, this path keeps the
lowest ids. numpy's float32 `exp` can differ from glibc's `expf` in the last bit, so a
top_p cut within ~1e-7 of top_p may fall one token apart; probabilities agree to ~1e-7.

No full sort and no pass slower than a vectorised one over the vocabulary: top_k finds
its threshold in a 1/16 sample, top_p sorts the head of the distribution, dist over the
whole vocabulary computes exp only near the top (the tail is reached by rejection), and
a draw over many tokens adds block sums, then the running sums of one block.

Draws come from the numpy Generator it is given (Sampler seeds one per sequence from the
request's seed): the same seed gives the same text on every run of this engine, but not
the text llama.cpp's own mt19937 stream would give. Anything this path cannot do the
chain's way (NaN or infinite logits) it hands back to the chain by returning None.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from .sampling import SamplingParams

type Logits = npt.NDArray[np.float32]
type TokenIds = npt.NDArray[np.intp]
type Probabilities = npt.NDArray[np.float64]

HEAD_GAP = 10.0
"""top_p sorts the logits this far below the top first: usually a few hundred tokens;
when they do not reach top_p, more (see _heads)."""
SAMPLE_STRIDE = 16
"""top_k estimates its threshold from every 16th logit."""
BLOCK = 256
"""Tokens per block of a draw's running sums."""


class NumpySampler:
    """One sequence's sampling without grammar or penalties; owned by Sampler."""

    def __init__(self, n_vocab: int, params: SamplingParams, rng: np.random.Generator) -> None:
        self.n_vocab = n_vocab
        # The chain takes float parameters: compare and compute with what it gets.
        temperature = np.float32(params.temperature) if params.temperature > 0 else np.float32(0)
        self._temperature = temperature
        self._top_k = params.top_k if params.top_k > 0 else 0
        top_p = np.float32(params.top_p)
        self._top_p = top_p if params.top_p < 1.0 and top_p < 1 else None
        min_p = np.float32(params.min_p)
        self._min_p_log = np.float32(math.log(min_p)) if params.min_p > 0 and min_p > 0 else None
        self._filters = bool(self._top_k or self._top_p is not None or self._min_p_log is not None)
        biases = {t: b for t, b in params.logit_bias.items() if 0 <= t < n_vocab}
        self._bias_ids = np.fromiter(biases.keys(), dtype=np.intp, count=len(biases))
        self._bias = np.fromiter(biases.values(), dtype=np.float32, count=len(biases))
        self._biased_row = np.empty(n_vocab, dtype=np.float32) if biases else None
        self._rng = rng
        # Tokens more than `gap` below the top (after temperature) weigh < exp(-gap) each:
        # all of them together are proposed with mass n_vocab * exp(-gap) = 1/8.
        self._tail_gap = math.log(8 * n_vocab)

    @property
    def greedy(self) -> bool:
        return bool(self._temperature <= 0)

    def sample(self, logits: Logits) -> int | None:
        """The next token from a logits row, or None when the chain must decide."""
        row = self._biased(logits)
        if self.greedy:
            token = int(row.argmax())
            return None if math.isnan(row[token]) else token
        top = float(row.max())
        if not math.isfinite(top):
            return None
        if not self._filters:
            return self._sample_whole_vocabulary(row, top)
        ids, values = self._filter(row, top)
        weights = self._weights(values, top)
        sums = _running_sums(weights)
        return int(ids[_find(weights, sums, self._rng.random() * float(sums[-1]))])

    def distribution(self, logits: Logits) -> tuple[TokenIds, Probabilities] | None:
        """The tokens `sample` can return and their probabilities (or None: the chain's)."""
        row = self._biased(logits)
        if self.greedy:
            token = int(row.argmax())
            return None if math.isnan(row[token]) else (np.array([token]), np.ones(1))
        top = float(row.max())
        if not math.isfinite(top):
            return None
        ids, values = self._filter(row, top) if self._filters else (np.arange(row.size), row)
        weights = self._weights(values, top).astype(np.float64)
        return ids, weights / weights.sum()

    # --- the chain's filters ------------------------------------------------------------

    def _biased(self, logits: Logits) -> Logits:
        row = self._biased_row
        if row is None:
            return logits
        np.positive(logits, out=row)  # a copy that does not touch the row llama.cpp owns
        row[self._bias_ids] += self._bias
        return row

    def _filter(self, row: Logits, top: float) -> tuple[TokenIds, Logits]:
        """The candidates after top_k, top_p and min_p; every filter keeps the top token."""
        ids: TokenIds | None = None  # None: the whole vocabulary, in id order
        values = row
        if self._top_k:
            ids = _top_k(row, self._top_k)
            values = row[ids]
        if self._top_p is not None:
            ids = _top_p(row, ids, values, top, self._top_p)
            values = row[ids]
        if self._min_p_log is not None:
            # p >= min_p * p_max as a logit threshold: the same float32 sum as the chain.
            keep = values >= np.float32(top) + self._min_p_log
            if ids is None:
                ids = keep.nonzero()[0]
                if not ids.size:  # min_p > 1: the chain keeps its first token, the top
                    ids = np.array([int(row.argmax())])
            else:
                ids = ids[keep] if keep.any() else ids[:1]
            values = row[ids]
        return (np.arange(row.size) if ids is None else ids), values

    def _weights(self, values: Logits, top: float) -> Logits:
        """exp((logit - top) / temperature) in float32: dist's softmax, unnormalised."""
        weights = values - np.float32(top)
        np.divide(weights, self._temperature, out=weights)
        np.exp(weights, out=weights)
        return weights

    # --- dist over the whole vocabulary -------------------------------------------------

    def _sample_whole_vocabulary(self, row: Logits, top: float) -> int:
        """An exact draw from softmax(row / T) that computes exp for the head only.

        Rejection sampling: the head (tokens within `gap` of the top after temperature,
        tens to a few thousand) is proposed with its true weights; the tail as a uniform
        pick over the vocabulary with weight E = exp(-gap) per token, kept with
        probability weight / E (a head token picked there is rejected). Every token is
        then drawn with probability proportional to its weight, and a round that is
        rejected (rarely: the proposal mass is 1/8) starts over.
        """
        temperature = float(self._temperature)
        cut = np.float32(top - self._tail_gap * temperature)
        head = (row >= cut).nonzero()[0]
        weights = self._weights(row[head], top)
        sums = _running_sums(weights)
        head_mass = float(sums[-1])
        cut_value = float(cut)
        tail_weight = math.exp((cut_value - top) / temperature)  # above every tail token's
        tail_mass = row.size * tail_weight
        rng = self._rng
        while True:
            r = rng.random() * (head_mass + tail_mass)
            if r < head_mass:
                return int(head[_find(weights, sums, r)])
            token = int(rng.integers(row.size))
            logit = float(row[token])
            if logit < cut_value and rng.random() * tail_weight < math.exp(
                (logit - top) / temperature
            ):
                return token


def _running_sums(weights: Logits) -> npt.NDArray[np.float64]:
    """Running sums of float32 weights in float64: per token when few, else per block.

    numpy's cumsum takes ~4 ns a token, block sums (reduceat) a tenth of that; a draw
    then finds its block first (_find).
    """
    if weights.size <= 4 * BLOCK:
        return weights.cumsum(dtype=np.float64)
    starts = np.arange(0, weights.size, BLOCK)
    sums: npt.NDArray[np.float64] = np.add.reduceat(weights, starts, dtype=np.float64).cumsum()
    return sums


def _find(weights: Logits, sums: npt.NDArray[np.float64], r: float) -> int:
    """The first index whose running sum exceeds r, 0 <= r < sums[-1]: never a weight 0."""
    r = min(r, math.nextafter(float(sums[-1]), 0.0))
    found = int(sums.searchsorted(r, side="right"))
    if sums.size == weights.size:
        return found
    start = found * BLOCK
    block = weights[start : start + BLOCK]
    before = float(sums[found - 1]) if found else 0.0
    i = int(block.cumsum(dtype=np.float64).searchsorted(r - before, side="right"))
    if i == block.size:  # the two sums round apart: the block's last token that weighs
        i = int(block.nonzero()[0][-1])
    return start + i


def _top_k(row: Logits, k: int) -> TokenIds:
    """The ids of the k highest logits, highest first; of tokens tied at the k-th place,
    the lowest ids (llama.cpp's partial sort keeps any)."""
    n = row.size
    if k >= n:
        return _descending(row, np.arange(n))
    # A threshold that ~1.5 k tokens reach, from a 1/16 sample; if fewer do, all tokens.
    sample = row[::SAMPLE_STRIDE]
    j = min(sample.size, 3 * k // (2 * SAMPLE_STRIDE) + 4)
    head = (row >= np.partition(sample, sample.size - j)[sample.size - j]).nonzero()[0]
    if head.size < k:
        head = np.arange(n)
    if head.size > k:
        values = row[head]
        keep = values >= np.partition(values, head.size - k)[head.size - k]
        kept = int(np.count_nonzero(keep))
        if kept > k:  # ties at the k-th place: the lowest ids of them stay
            tied = (values == values[keep].min()).nonzero()[0]
            keep[tied[k - kept :]] = False
        head = head[keep]
    return _descending(row, head)


def _top_p(
    row: Logits, ids: TokenIds | None, values: Logits, top: float, top_p: np.float32
) -> TokenIds:
    """The shortest run of ids, by descending logit, whose probabilities reach top_p.

    `ids` None is the whole vocabulary in id order; otherwise ids are sorted (top_k).
    """
    exp = np.exp(values - np.float32(top))
    # The chain adds one by one in float32, in the candidates' order; a pairwise sum
    # differs by ~1e-5 over 49k tokens, enough to move the cut. cumsum is that sum.
    total = exp.cumsum()[-1]
    if ids is not None:
        return ids[: _cut(exp / total, top_p, ids.size)]
    for head in _heads(row, exp, top, total, top_p):
        ordered = _descending(row, head)
        last = _cut(exp[ordered] / total, top_p, row.size if head.size == row.size else None)
        if last is not None:
            return ordered[:last]
    raise AssertionError("unreachable: the whole vocabulary always gives a cut")


def _heads(
    row: Logits, exp: Logits, top: float, total: np.float32, top_p: np.float32
) -> Iterator[TokenIds]:
    """Ever larger sets of the highest logits in which top_p's cut may lie.

    Sorting 49k tokens is what this path avoids: first the tokens within HEAD_GAP of the
    top, then all that may count (p >= (1 - top_p) / n: the rest cannot add up to
    1 - top_p, though float32 sums may still fall short), then the whole vocabulary.
    """
    yield (row >= np.float32(top - HEAD_GAP)).nonzero()[0]
    yield (exp >= (1 - top_p) / row.size * total).nonzero()[0]
    yield np.arange(row.size)


def _cut(probs: npt.NDArray[np.float32], top_p: np.float32, default: int | None) -> int | None:
    """How many of `probs` (descending) the chain keeps: the first running sum >= top_p.

    `default` is what to keep when the sum never gets there (the chain: everything).
    """
    reached = probs.cumsum() >= top_p
    first = int(reached.argmax())
    return first + 1 if reached[first] else default


def _descending(row: Logits, ids: TokenIds) -> TokenIds:
    """`ids` (in id order) by descending logit; equal logits stay in id order."""
    ordered: TokenIds = ids[(-row[ids]).argsort(kind="stable")]
    return ordered
