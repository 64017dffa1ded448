"""The one place the bridge's figures join the node's status and /metrics.

Kept apart so that the node's move to typed status snapshots only has to change this
file: the bridge hands out a frozen `McpSnapshot`, this module shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..node import Node
from .stats import McpStats


class _StatusPart:
    def __init__(self, stats: McpStats) -> None:
        self._stats = stats

    def contribute(self, status: dict[str, Any]) -> None:
        snapshot = self._stats.snapshot()
        part = asdict(snapshot)
        part["refusals_by_reason"] = dict(snapshot.refusals_by_reason)
        part["calls_by_tool"] = dict(snapshot.calls_by_tool)
        status["mcp"] = part


class _Collector(Collector):
    def __init__(self, stats: McpStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        snapshot = self._stats.snapshot()
        calls = CounterMetricFamily("heatcompute_mcp_calls", "MCP tool calls", labels=["tool"])
        for tool, count in snapshot.calls_by_tool:
            calls.add_metric([tool], count)
        yield calls
        yield CounterMetricFamily(
            "heatcompute_mcp_tool_errors",
            "MCP tool calls that ended as errors",
            value=snapshot.tool_errors,
        )
        refusals = CounterMetricFamily(
            "heatcompute_mcp_refusals", "MCP requests refused before a tool ran", labels=["reason"]
        )
        for reason, count in snapshot.refusals_by_reason:
            refusals.add_metric([reason], count)
        yield refusals
        latency = GaugeMetricFamily(
            "heatcompute_mcp_call_seconds",
            "MCP tool call latency (recent calls)",
            labels=["quantile"],
        )
        for quantile, value in (("0.5", snapshot.latency_p50_s), ("0.95", snapshot.latency_p95_s)):
            if value is not None:
                latency.add_metric([quantile], value)
        yield latency


def wire(node: Node, registry: CollectorRegistry, stats: McpStats) -> None:
    node.add_status_contributor(_StatusPart(stats))
    registry.register(_Collector(stats))
