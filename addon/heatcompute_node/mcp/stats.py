"""The bridge's own figures: calls, tool errors, refusals and call latency.

`McpStats` counts on the event loop and is the node's status source for the bridge:
`snapshot()` hands out a frozen `McpSnapshot` (a `PartSnapshot`), which renders the
``mcp`` status section and the ``heatcompute_mcp_*`` metrics. Nobody reads the counters'
insides; status_wiring.py is the one place it joins the node.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
import math
from typing import Any

from ..snapshot import IDLE, EnergyFigures, EngineLoad, Metric, Sample, counter

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
    key: str = "mcp"
    models: tuple[Mapping[str, Any], ...] = ()

    @property
    def load(self) -> EngineLoad:
        return IDLE  # tool calls are short reads, not engine work

    def section(self, energy: EnergyFigures | None) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "tool_errors": self.tool_errors,
            "refusals": self.refusals,
            "refusals_by_reason": dict(self.refusals_by_reason),
            "calls_by_tool": dict(self.calls_by_tool),
            "latency_p50_s": self.latency_p50_s,
            "latency_p95_s": self.latency_p95_s,
        }

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        yield Metric(
            name="heatcompute_mcp_calls",
            help="MCP tool calls",
            kind="counter",
            labels=("tool",),
            samples=tuple(Sample((tool,), n) for tool, n in self.calls_by_tool),
        )
        yield counter(
            "heatcompute_mcp_tool_errors", "MCP tool calls that ended as errors", self.tool_errors
        )
        yield Metric(
            name="heatcompute_mcp_refusals",
            help="MCP requests refused before a tool ran",
            kind="counter",
            labels=("reason",),
            samples=tuple(Sample((reason,), n) for reason, n in self.refusals_by_reason),
        )
        yield Metric(
            name="heatcompute_mcp_call_seconds",
            help="MCP tool call latency (recent calls)",
            labels=("quantile",),
            samples=tuple(
                Sample((quantile,), value)
                for quantile, value in (("0.5", self.latency_p50_s), ("0.95", self.latency_p95_s))
                if value is not None
            ),
        )


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
