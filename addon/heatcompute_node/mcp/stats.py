"""The bridge's own figures: calls, tool errors, refusals and call latency.

`McpStats` counts on the event loop; `snapshot()` hands out a frozen `McpSnapshot`
that status and metrics read (status_wiring.py), so nobody reads these counters' insides.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
import math

_LATENCY_WINDOW = 1000  # recent calls the percentiles are taken over


@dataclass(frozen=True, slots=True, kw_only=True)
class McpSnapshot:
    calls: int
    """tools/call requests answered (successes and tool errors)."""
    tool_errors: int
    """Calls that ended as an isError result (bad arguments, refused paths or queries...)."""
    refusals: int
    """Requests refused before any tool ran (auth, scope, Origin, Host, size, protocol)."""
    refusals_by_reason: tuple[tuple[str, int], ...]
    calls_by_tool: tuple[tuple[str, int], ...]
    latency_p50_s: float | None
    latency_p95_s: float | None


class McpStats:
    def __init__(self) -> None:
        self._calls: Counter[str] = Counter()
        self._tool_errors = 0
        self._refusals: Counter[str] = Counter()
        self._latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)

    def call(self, tool: str, seconds: float, *, error: bool) -> None:
        self._calls[tool] += 1
        self._tool_errors += error
        self._latencies.append(seconds)

    def refusal(self, reason: str) -> None:
        self._refusals[reason] += 1

    def snapshot(self) -> McpSnapshot:
        ordered = sorted(self._latencies)
        return McpSnapshot(
            calls=sum(self._calls.values()),
            tool_errors=self._tool_errors,
            refusals=sum(self._refusals.values()),
            refusals_by_reason=tuple(sorted(self._refusals.items())),
            calls_by_tool=tuple(sorted(self._calls.items())),
            latency_p50_s=_quantile(ordered, 0.5),
            latency_p95_s=_quantile(ordered, 0.95),
        )


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
