"""/metrics in Prometheus text format, read from the node's snapshot at scrape time.

A custom collector (rather than gauges updated everywhere) keeps one source of truth:
what /metrics says is exactly what /api/status says. Each part names its own metric
families (:class:`~.snapshot.Metric`); this module only turns them into Prometheus's.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .api.errors import Handler
from .api.openapi import describe
from .node import Node
from .snapshot import Metric

REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
REQUESTS_KEY = web.AppKey("metrics_requests", Counter)


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        status = self._node.snapshot()
        node = status.node
        info = InfoMetricFamily("heatcompute_node", "Node identity")
        info.add_metric(
            [],
            {
                "node_id": node.node_id,
                "version": node.version,
                "hardware": node.hardware,
                "name": node.name,
            },
        )
        yield info
        for metric in status.metrics():
            yield _family(metric)


def _family(metric: Metric) -> GaugeMetricFamily | CounterMetricFamily:
    labels = list(metric.labels)
    family: GaugeMetricFamily | CounterMetricFamily = (
        CounterMetricFamily(metric.name, metric.help, labels=labels)
        if metric.kind == "counter"
        else GaugeMetricFamily(metric.name, metric.help, labels=labels)
    )
    for sample in metric.samples:
        family.add_metric(list(sample.labels), sample.value)
    return family


@describe(
    "Prometheus metrics (text exposition format)",
    tag="meta",
    response={"type": "string"},
    response_type="text/plain",
)
async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY_KEY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


@web.middleware
async def request_metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    route = request.match_info.route.resource
    request.app[REQUESTS_KEY].labels(
        request.method,
        route.canonical if route is not None else "unmatched",
        str(response.status),
    ).inc()
    return response


def setup(app: web.Application, node: Node) -> None:
    # A registry per app, not the global one: tests build many apps in one process.
    registry = CollectorRegistry()
    registry.register(NodeCollector(node))
    app[REGISTRY_KEY] = registry
    app[REQUESTS_KEY] = Counter(
        "heatcompute_http_requests",
        "HTTP requests by route and status",
        ["method", "route", "status"],
        registry=registry,
    )
    app.router.add_get("/metrics", metrics_handler)
