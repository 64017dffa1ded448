"""The ONNX engine's snapshot: per model version figures as status and metrics.

Built by :meth:`OnnxEngine.snapshot` from the batchers' frozen :class:`ModelStats`;
rendering it reads nothing else. The metric names are Triton's (``nv_inference_*``,
labelled by model and version), so dashboards made for Triton read the node; its
counters carry Prometheus' ``_total`` suffix, like every counter of the node.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...snapshot import EnergyFigures, EngineLoad, Metric, MetricKind, Sample
from .stats import EngineStats, ModelStats

# (name, help, kind, ModelStats -> value): Triton's metrics.
_TRITON: tuple[tuple[str, str, MetricKind, Callable[[ModelStats], float]], ...] = (
    ("nv_inference_request_success", "Successful requests", "counter", lambda m: m.success.count),
    ("nv_inference_request_failure", "Failed requests", "counter", lambda m: m.fail.count),
    (
        "nv_inference_count",
        "Inferences (batch size counted)",
        "counter",
        lambda m: m.inference_count,
    ),
    ("nv_inference_exec_count", "Executions (batches)", "counter", lambda m: m.execution_count),
    (
        "nv_inference_request_duration_us",
        "Cumulative inference request duration in microseconds",
        "counter",
        lambda m: (m.success.ns + m.fail.ns) / 1000,
    ),
    (
        "nv_inference_queue_duration_us",
        "Cumulative inference queuing duration in microseconds",
        "counter",
        lambda m: m.queue.ns / 1000,
    ),
    (
        "nv_inference_compute_infer_duration_us",
        "Cumulative compute inference duration in microseconds",
        "counter",
        lambda m: m.compute_infer.ns / 1000,
    ),
    ("nv_inference_pending_request_count", "Requests in the batcher", "gauge", lambda m: m.pending),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OnnxSnapshot:
    key: str = "onnx"
    stats: EngineStats
    models: tuple[Mapping[str, Any], ...] = ()
    """ONNX models are not in the status's ``models`` list, which names what /v1 serves."""

    @property
    def load(self) -> EngineLoad:
        served = [m for m in self.stats.models if m.state == "READY"]
        return EngineLoad(
            requests_active=sum(m.running for m in served),
            queue_depth=sum(m.pending for m in served),
        )

    def section(self, energy: EnergyFigures | None) -> dict[str, Any]:
        models: dict[str, list[dict[str, Any]]] = {}
        for model in self.stats.models:
            if model.state != "RETIRED":
                models.setdefault(model.name, []).append(model_figures(model))
        return {
            "threads": self.stats.threads,
            "busy_s": round(self.stats.busy_s, 3),
            "background_busy_s": round(self.stats.background_busy_s, 3),
            "models": models,
        }

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        # Retired versions are summed in, so counters never go down across an update.
        versions: dict[tuple[str, str], list[ModelStats]] = {}
        for model in self.stats.models:
            versions.setdefault((model.name, str(model.version)), []).append(model)
        for name, documentation, kind, value in _TRITON:
            yield Metric(
                name=name,
                help=documentation,
                kind=kind,
                labels=("model", "version"),
                samples=tuple(
                    Sample(labels, float(sum(value(m) for m in group)))
                    for labels, group in versions.items()
                ),
            )
        yield Metric(
            name="heatcompute_onnx_batches",
            help="Batches run, by batch size",
            kind="counter",
            labels=("model", "version", "batch_size"),
            samples=tuple(
                Sample((m.name, str(m.version), str(b.batch_size)), b.compute_infer.count)
                for m in self.stats.models
                for b in m.batch_stats
            ),
        )
        yield Metric(
            name="heatcompute_onnx_busy_seconds",
            help="Seconds ONNX batches computed (background: for jobs)",
            kind="counter",
            labels=("work",),
            samples=(
                Sample(("all",), self.stats.busy_s),
                Sample(("background",), self.stats.background_busy_s),
            ),
        )


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
