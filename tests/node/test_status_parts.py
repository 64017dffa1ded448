"""A new engine or service shows its figures by registering one status source.

The document index, ONNX and MCP parts plug in the same way: a frozen snapshot with its
load, its model rows, its section and its metrics. This test adds one (a stand-in with
fixed figures: no such engine exists yet) to a real node and reads it back from
/api/status, /metrics and the SSE stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
import pytest

from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.snapshot import EnergyFigures, EngineLoad, Metric, gauge

from .conftest import NodeClient, auth


@dataclass(frozen=True, slots=True, kw_only=True)
class _IndexSnapshot:
    key: str = "documents"
    load: EngineLoad = field(default_factory=lambda: EngineLoad(requests_active=2, queue_depth=3))
    models: tuple[Mapping[str, Any], ...] = (
        {"id": "index-embedder", "kind": "embedding", "state": "loaded"},
    )

    def section(self, energy: EnergyFigures | None) -> Mapping[str, Any]:
        return {"documents": 7, "energy_known": energy is not None}

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        yield gauge("heatcompute_documents_indexed", "Documents in the index", 7)


class _Index:
    def snapshot(self) -> _IndexSnapshot:
        return _IndexSnapshot()


async def test_a_new_part_shows_in_status_metrics_and_events(client: NodeClient) -> None:
    node = client.app[NODE_KEY]
    node.add_status_source(_Index())

    response = await client.get("/api/status", headers=auth())
    status = await response.json()
    assert status["documents"] == {"documents": 7, "energy_known": True}
    assert status["work"]["requests_active"] == 2
    assert status["work"]["queue_depth"] == 3
    assert {"id": "index-embedder", "kind": "embedding", "state": "loaded"} in status["models"]

    response = await client.get("/metrics", headers=auth())
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    assert families["heatcompute_documents_indexed"].samples[0].value == 7
    assert families["heatcompute_requests_active"].samples[0].value == 2

    async with client.get("/api/events", headers=auth()) as events:
        async for line in events.content:
            if line.startswith(b"data: "):
                first = json.loads(line[6:])
                break
    assert first["documents"]["documents"] == 7


async def test_a_section_has_one_owner(client: NodeClient) -> None:
    node = client.app[NODE_KEY]
    node.add_status_source(_Index())
    with pytest.raises(ValueError, match="documents"):
        node.add_status_source(_Index())

    @dataclass(frozen=True, slots=True, kw_only=True)
    class _Thief(_IndexSnapshot):
        key: str = "work"

    class _Bad:
        def snapshot(self) -> _Thief:
            return _Thief()

    with pytest.raises(ValueError, match="work"):
        node.add_status_source(_Bad())
