"""Wiring of the ONNX engine into the node, all in one place: its life cycle, its figures
in /api/status and /metrics (read from the engine's frozen snapshots), and its key.

The /metrics names follow Triton's (``nv_inference_*``, labelled by model and version),
so dashboards made for Triton read the node as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.registry import Collector

from ..engines.onnx.engine import OnnxEngine
from ..engines.onnx.stats import EngineStats, ModelStats
from ..metrics import REGISTRY_KEY
from .keys import NODE_KEY

ONNX_KEY = web.AppKey("onnx_engine", OnnxEngine)


def setup_service(app: web.Application, engine: OnnxEngine | None = None) -> None:
    """Build the engine (cheap; models load when the app starts)."""
    if engine is None:
        settings = app[NODE_KEY].settings
        engine = OnnxEngine(settings.onnx_repository_dir, threads=settings.llm_threads)
    app[ONNX_KEY] = engine
    app[REGISTRY_KEY].register(OnnxCollector(engine))
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    engine = app[ONNX_KEY]
    await engine.start()
    app[NODE_KEY].add_status_contributor(OnnxStatus(engine))
    yield
    await engine.close()


def model_figures(model: ModelStats) -> dict[str, Any]:
    """One model version's figures as /api/status shows them."""
    queue, compute = model.queue, model.compute_infer
    return {
        "version": model.version,
        "state": model.state,
        "reason": model.reason or None,
        "requests_success": model.success.count,
        "requests_failed": model.fail.count,
        "inferences": model.inference_count,
        "executions": model.execution_count,
        "mean_batch_size": model.mean_batch_size,
        "batch_sizes": {str(b.batch_size): b.compute_infer.count for b in model.batch_stats},
        "queue_ms_mean": round(queue.ns / queue.count / 1e6, 3) if queue.count else None,
        "compute_ms_mean": round(compute.ns / compute.count / 1e6, 3) if compute.count else None,
        "pending": model.pending,
        "running": model.running,
        "busy_s": round(model.busy_s, 3),
        "quantization": model.quantization.as_json() if model.quantization else None,
    }


class OnnxStatus:
    """Adds the ONNX engine's figures to the node's status."""

    def __init__(self, engine: OnnxEngine) -> None:
        self._engine = engine

    def contribute(self, status: dict[str, Any]) -> None:
        stats = self._engine.stats()
        work = status.setdefault("work", {})
        work["queue_depth"] = work.get("queue_depth", 0) + stats.pending
        models: dict[str, list[dict[str, Any]]] = {}
        for model in stats.models:
            if model.state != "RETIRED":
                models.setdefault(model.name, []).append(model_figures(model))
        status["onnx"] = {
            "threads": stats.threads,
            "busy_s": round(stats.busy_s, 3),
            "background_busy_s": round(stats.background_busy_s, 3),
            "models": models,
        }


# Triton's metric names: (name, help, ModelStats -> value, counter?)
_TRITON_METRICS: tuple[tuple[str, str, Callable[[ModelStats], float], bool], ...] = (
    ("nv_inference_request_success", "Successful requests", lambda m: m.success.count, True),
    ("nv_inference_request_failure", "Failed requests", lambda m: m.fail.count, True),
    ("nv_inference_count", "Inferences (batch size counted)", lambda m: m.inference_count, True),
    ("nv_inference_exec_count", "Executions (batches)", lambda m: m.execution_count, True),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds",
        lambda m: (m.success.ns + m.fail.ns) / 1000,
        True,
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds",
        lambda m: m.queue.ns / 1000,
        True,
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds",
        lambda m: m.compute_infer.ns / 1000,
        True,
    ),
    ("nv_inference_pending_request_count", "Requests in the batcher", lambda m: m.pending, False),
)


class OnnxCollector(Collector):
    def __init__(self, engine: OnnxEngine) -> None:
        self._engine = engine

    def collect(
        self,
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily | UnknownMetricFamily]:
        stats = self._engine.stats()
        yield from _model_metrics(stats)
        batches = CounterMetricFamily(
            "heatcompute_onnx_batches",
            "Batches run, by batch size",
            labels=["model", "version", "batch_size"],
        )
        for model in stats.models:
            for size in model.batch_stats:
                batches.add_metric(
                    [model.name, str(model.version), str(size.batch_size)], size.compute_infer.count
                )
        yield batches
        busy = CounterMetricFamily(
            "heatcompute_onnx_busy_seconds", "Seconds ONNX batches computed", labels=["work"]
        )
        busy.add_metric(["all"], stats.busy_s)
        busy.add_metric(["background"], stats.background_busy_s)
        yield busy


def _model_metrics(stats: EngineStats) -> Iterator[GaugeMetricFamily | UnknownMetricFamily]:
    # Retired versions are summed in, so counters never go down across an update.
    totals: dict[tuple[str, str], list[ModelStats]] = {}
    for model in stats.models:
        totals.setdefault((model.name, str(model.version)), []).append(model)
    for name, documentation, value, counter in _TRITON_METRICS:
        # Triton's counters carry no _total suffix; untyped keeps their exact names.
        family: UnknownMetricFamily | GaugeMetricFamily = (
            UnknownMetricFamily(name, documentation, labels=["model", "version"])
            if counter
            else GaugeMetricFamily(name, documentation, labels=["model", "version"])
        )
        for labels, models in totals.items():
            family.add_metric(list(labels), float(sum(value(m) for m in models)))
        yield family
