"""The figures the heat governor and the status page read: throughput and latency.

Recorded by the engine thread, read by anyone through an immutable snapshot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import threading
import time

import numpy as np

_WINDOW_S = 10.0
_SAMPLES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Knobs:
    """Intensity controls of background work (set by the heat governor)."""

    max_background: int
    """Background sequences allowed to run at once (0 pauses background work)."""
    background_threads: int
    """Threads for steps that serve only background sequences."""
    duty_cycle: float
    """0-1: share of time background-only steps may compute; idle time fills the rest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStats:
    """One consistent snapshot of an engine's figures."""

    tokens_per_s: float
    """Generated tokens per second over the last 10 s."""
    prompt_tokens_per_s: float
    requests_active: int
    queue_depth: int
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    tokens_per_request: float | None
    """Mean completion tokens of recent requests."""
    requests_total: int
    tokens_total: int
    cached_prompt_tokens_total: int
    kv_cells_used: int
    kv_cells_total: int
    faults: int
    knobs: Knobs
    prompt_cache_bytes: int = 0
    """RAM held by saved prefixes (idle caches out of the KV cache)."""
    prompt_cache_entries: int = 0
    prompt_cache_hits: int = 0
    """Requests whose prefix was copied back from RAM."""


class StatsRecorder:
    """Rolling counters. `record_*` from the engine thread, `snapshot` from anywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: deque[tuple[float, int]] = deque()
        self._prompt: deque[tuple[float, int]] = deque()
        self._ttft: deque[float] = deque(maxlen=_SAMPLES)
        self._latency: deque[float] = deque(maxlen=_SAMPLES)
        self._per_request: deque[int] = deque(maxlen=_SAMPLES)
        self.requests_total = 0
        self.tokens_total = 0
        self.cached_total = 0
        self.faults = 0

    def record_step(self, generated: int, prompt: int) -> None:
        now = time.monotonic()
        with self._lock:
            if generated:
                self._tokens.append((now, generated))
                self.tokens_total += generated
                _prune(self._tokens, now)
            if prompt:
                self._prompt.append((now, prompt))
                _prune(self._prompt, now)

    def record_first_token(self, ttft_s: float) -> None:
        with self._lock:
            self._ttft.append(ttft_s)

    def record_finished(self, latency_s: float, completion_tokens: int, cached: int) -> None:
        with self._lock:
            self._latency.append(latency_s)
            self._per_request.append(completion_tokens)
            self.requests_total += 1
            self.cached_total += cached

    def record_fault(self) -> None:
        with self._lock:
            self.faults += 1

    def rates(self) -> tuple[float, float]:
        now = time.monotonic()
        with self._lock:
            return _rate(self._tokens, now), _rate(self._prompt, now)

    def percentiles(self) -> dict[str, float | None]:
        with self._lock:
            ttft, latency, per = list(self._ttft), list(self._latency), list(self._per_request)
        return {
            "ttft_p50_s": _pct(ttft, 50),
            "ttft_p95_s": _pct(ttft, 95),
            "latency_p50_s": _pct(latency, 50),
            "latency_p95_s": _pct(latency, 95),
            "tokens_per_request": float(np.mean(per)) if per else None,
        }


def _prune(samples: deque[tuple[float, int]], now: float) -> None:
    """Drop what fell out of the window (when recording: reading changes nothing)."""
    while samples and samples[0][0] < now - _WINDOW_S:
        samples.popleft()


def _rate(samples: deque[tuple[float, int]], now: float) -> float:
    recent = [(t, n) for t, n in samples if t >= now - _WINDOW_S]
    if not recent:
        return 0.0
    span = max(now - recent[0][0], 1.0)
    return sum(n for _, n in recent) / span


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if values else None
