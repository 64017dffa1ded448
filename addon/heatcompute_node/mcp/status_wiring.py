"""The one place the bridge's figures join the node's status, events and /metrics.

The bridge's `McpStats` is a status source like the engines: its frozen `McpSnapshot`
renders the ``mcp`` section and the ``heatcompute_mcp_*`` metrics (stats.py).
"""

from __future__ import annotations

from ..node import Node
from .stats import McpStats


def wire(node: Node, stats: McpStats) -> None:
    node.add_status_source(stats)
