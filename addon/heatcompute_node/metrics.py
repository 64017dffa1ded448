"""/metrics in Prometheus text format, read from the node's status at scrape time.

A custom collector (rather than gauges updated everywhere) keeps one source of truth:
what /metrics says is exactly what /api/status says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from .api.errors import Handler
from .api.openapi import describe
from .node import Node

REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
REQUESTS_KEY = web.AppKey("metrics_requests", Counter)


class NodeCollector(Collector):
    def __init__(self, node: Node) -> None:
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        status = self._node.status()
        info = InfoMetricFamily("heatcompute_node", "Node identity")
        info.add_metric(
            [],
            {
                "node_id": status["node_id"],
                "version": status["version"],
                "hardware": status["hardware"],
                "name": status["name"],
            },
        )
        yield info
        heat = status["heat"]
        yield _gauge(
            "heatcompute_heat_target_watts",
            "Heat target (0 when off)",
            heat["target_w"] if heat["wanted"] else 0.0,
        )
        yield _gauge(
            "heatcompute_heat_wanted", "1 while heat is wanted", 1.0 if heat["wanted"] else 0.0
        )
        yield _gauge("heatcompute_max_power_watts", "Configured max power", heat["max_power_w"])
        if status["power_w"] is not None:
            yield _gauge("heatcompute_power_watts", "Measured power draw", status["power_w"])
        yield CounterMetricFamily(
            "heatcompute_energy_kwh",
            "Energy drawn (= heat delivered) since first start",
            value=status["energy_kwh"],
        )
        yield _gauge(
            "heatcompute_intensity_ratio",
            "Share of background capacity in use",
            status["intensity"],
        )
        temps = GaugeMetricFamily(
            "heatcompute_temperature_celsius", "Temperatures", labels=["sensor"]
        )
        for sensor, value in status["temperatures"]["sensors"].items():
            temps.add_metric([sensor], value)
        for place in ("room", "outside"):
            value = status["temperatures"][f"{place}_c"]
            if value is not None:
                temps.add_metric([place], value)
        yield temps
        work = status["work"]
        yield _gauge(
            "heatcompute_tokens_per_second", "Generated tokens per second", work["tokens_per_s"]
        )
        yield _gauge(
            "heatcompute_requests_active", "Requests being served", work["requests_active"]
        )
        yield _gauge("heatcompute_queue_depth", "Requests waiting", work["queue_depth"])
        yield _gauge(
            "heatcompute_jobs_pending", "Deferrable jobs not finished", work["jobs_pending"]
        )
        yield _gauge("heatcompute_uptime_seconds", "Seconds since start", status["uptime_s"])
        yield from _llm_metrics(status.get("llm") or {})
        yield from _heat_control_metrics(status)


def _heat_control_metrics(
    status: dict[str, Any],
) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Safety trips, heat reuse and energy per token (present once the heat service runs)."""
    safety = status.get("safety")
    if safety is not None:
        active = GaugeMetricFamily(
            "heatcompute_safety_trip_active", "1 while a safety trip is in force", labels=["kind"]
        )
        count = CounterMetricFamily(
            "heatcompute_safety_trips", "Safety trips fired since start", labels=["kind"]
        )
        for kind, trip in safety["trips"].items():
            active.add_metric([kind], 1.0 if trip["active"] else 0.0)
            count.add_metric([kind], trip["count"])
        yield active
        yield count
    energy = status.get("energy")
    if energy is not None:
        yield CounterMetricFamily(
            "heatcompute_energy_wanted_kwh",
            "Energy drawn while heat was wanted (reused heat)",
            value=energy["wanted_kwh"],
        )
        if energy["heat_reuse"] is not None:
            yield _gauge(
                "heatcompute_heat_reuse_ratio",
                "Wanted-heat energy / total energy",
                energy["heat_reuse"],
            )
        if energy["wh_per_1k_tokens"] is not None:
            yield _gauge(
                "heatcompute_energy_per_1k_tokens_wh",
                "Energy per 1000 generated tokens since start",
                energy["wh_per_1k_tokens"],
            )
    governor = status.get("governor")
    if governor is not None:
        yield _gauge(
            "heatcompute_governor_setpoint_watts",
            "Power the governor aims for",
            governor["setpoint_w"],
        )


# status["llm"][model] key -> (metric, help, kind); None values are left out.
_LLM_FIGURES: dict[str, tuple[str, str, str]] = {
    "tokens_per_s": ("heatcompute_llm_tokens_per_second", "Generated tokens per second", "g"),
    "prompt_tokens_per_s": (
        "heatcompute_llm_prompt_tokens_per_second",
        "Prompt tokens processed per second",
        "g",
    ),
    "requests_active": ("heatcompute_llm_requests_active", "Sequences being decoded", "g"),
    "queue_depth": ("heatcompute_llm_queue_depth", "Requests waiting for a slot", "g"),
    "tokens_per_request": (
        "heatcompute_llm_tokens_per_request",
        "Mean generated tokens per request (recent requests)",
        "g",
    ),
    "wh_per_request": (
        "heatcompute_llm_energy_per_request_wh",
        "Mean energy per request (energy per token x tokens per request)",
        "g",
    ),
    "kv_cells_used": ("heatcompute_llm_kv_cells_used", "KV cache cells in use", "g"),
    "requests_total": ("heatcompute_llm_requests", "Requests finished", "c"),
    "tokens_total": ("heatcompute_llm_tokens", "Tokens generated", "c"),
    "cached_prompt_tokens_total": (
        "heatcompute_llm_cached_prompt_tokens",
        "Prompt tokens taken from the prefix cache",
        "c",
    ),
    "faults": ("heatcompute_llm_faults", "Engine faults recovered from", "c"),
}


def _llm_metrics(
    models: dict[str, dict[str, Any]],
) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    """Per-model engine figures, labelled by model; latencies as p50/p95 quantiles."""
    if not models:
        return
    for key, (name, documentation, kind) in _LLM_FIGURES.items():
        family: GaugeMetricFamily | CounterMetricFamily = (
            GaugeMetricFamily(name, documentation, labels=["model"])
            if kind == "g"
            else CounterMetricFamily(name, documentation, labels=["model"])
        )
        for model, figures in models.items():
            if figures.get(key) is not None:
                family.add_metric([model], figures[key])
        yield family
    for what, documentation in (
        ("ttft", "Time to the first token"),
        ("latency", "Time from request to last token"),
    ):
        family = GaugeMetricFamily(
            f"heatcompute_llm_{what}_seconds", documentation, labels=["model", "quantile"]
        )
        for model, figures in models.items():
            for quantile, suffix in (("0.5", "p50"), ("0.95", "p95")):
                value = figures.get(f"{what}_{suffix}_s")
                if value is not None:
                    family.add_metric([model, quantile], value)
        yield family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


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
