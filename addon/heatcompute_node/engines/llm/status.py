"""The LLM engines' snapshot: per-model engine figures and model rows, as status and metrics.

Built by :meth:`ModelManager.snapshot` from each loaded model's :class:`EngineStats`
(itself a frozen snapshot taken under the engine's lock); rendering it reads nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...snapshot import EnergyFigures, EngineLoad, Metric, MetricKind, Sample
from .stats import EngineStats

# EngineStats field -> (metric, help, kind); None values are left out.
_FIGURES: dict[str, tuple[str, str, MetricKind]] = {
    "tokens_per_s": ("heatcompute_llm_tokens_per_second", "Generated tokens per second", "gauge"),
    "prompt_tokens_per_s": (
        "heatcompute_llm_prompt_tokens_per_second",
        "Prompt tokens processed per second",
        "gauge",
    ),
    "requests_active": ("heatcompute_llm_requests_active", "Sequences being decoded", "gauge"),
    "queue_depth": ("heatcompute_llm_queue_depth", "Requests waiting for a slot", "gauge"),
    "tokens_per_request": (
        "heatcompute_llm_tokens_per_request",
        "Mean generated tokens per request (recent requests)",
        "gauge",
    ),
    "wh_per_request": (
        "heatcompute_llm_energy_per_request_wh",
        "Mean energy per request (energy per token x tokens per request)",
        "gauge",
    ),
    "kv_cells_used": ("heatcompute_llm_kv_cells_used", "KV cache cells in use", "gauge"),
    "requests_total": ("heatcompute_llm_requests", "Requests finished", "counter"),
    "tokens_total": ("heatcompute_llm_tokens", "Tokens generated", "counter"),
    "cached_prompt_tokens_total": (
        "heatcompute_llm_cached_prompt_tokens",
        "Prompt tokens taken from the prefix cache",
        "counter",
    ),
    "faults": ("heatcompute_llm_faults", "Engine faults recovered from", "counter"),
    "prompt_cache_bytes": (
        "heatcompute_llm_prompt_cache_bytes",
        "RAM held by finished prompts saved for the next turn",
        "gauge",
    ),
    "prompt_cache_entries": (
        "heatcompute_llm_prompt_cache_entries",
        "Finished prompts saved in RAM",
        "gauge",
    ),
    "prompt_cache_hits": (
        "heatcompute_llm_prompt_cache_hits",
        "Requests whose prefix was copied back from RAM",
        "counter",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LlmSnapshot:
    """Every loaded chat model's engine figures, and every model's row."""

    key: str = "llm"
    engines: tuple[tuple[str, EngineStats], ...]
    """(model id, its engine's figures) for each loaded chat model."""
    models: tuple[Mapping[str, Any], ...]

    @property
    def load(self) -> EngineLoad:
        return EngineLoad.combine(
            EngineLoad(
                tokens_per_s=s.tokens_per_s,
                requests_active=s.requests_active,
                queue_depth=s.queue_depth,
                ttft_p95_s=s.ttft_p95_s,
                latency_p95_s=s.latency_p95_s,
            )
            for _, s in self.engines
        )

    def section(self, energy: EnergyFigures | None) -> dict[str, Any]:
        return {model: _figures(s, energy) for model, s in self.engines}

    def metrics(self, energy: EnergyFigures | None) -> Iterator[Metric]:
        """Per-model figures, labelled by model; latencies as p50/p95 quantiles."""
        if not self.engines:
            return
        figures = [(model, _figures(s, energy)) for model, s in self.engines]
        for key, (name, documentation, kind) in _FIGURES.items():
            yield Metric(
                name=name,
                help=documentation,
                kind=kind,
                labels=("model",),
                samples=tuple(
                    Sample((model,), f[key]) for model, f in figures if f[key] is not None
                ),
            )
        for what, documentation in (
            ("ttft", "Time to the first token"),
            ("latency", "Time from request to last token"),
        ):
            yield Metric(
                name=f"heatcompute_llm_{what}_seconds",
                help=documentation,
                labels=("model", "quantile"),
                samples=tuple(
                    Sample((model, quantile), f[f"{what}_{suffix}_s"])
                    for model, f in figures
                    for quantile, suffix in (("0.5", "p50"), ("0.95", "p95"))
                    if f[f"{what}_{suffix}_s"] is not None
                ),
            )


def _figures(s: EngineStats, energy: EnergyFigures | None) -> dict[str, Any]:
    # Energy per request: the node's energy per generated token times the model's mean
    # tokens per request. Prompt processing and idle watts are in the energy, so this is
    # what a request costs the household, not only its decode steps.
    per_1k = energy.wh_per_1k_tokens if energy is not None else None
    tokens = s.tokens_per_request
    return {
        "tokens_per_s": s.tokens_per_s,
        "prompt_tokens_per_s": s.prompt_tokens_per_s,
        "requests_active": s.requests_active,
        "queue_depth": s.queue_depth,
        "ttft_p50_s": s.ttft_p50_s,
        "ttft_p95_s": s.ttft_p95_s,
        "latency_p50_s": s.latency_p50_s,
        "latency_p95_s": s.latency_p95_s,
        "tokens_per_request": tokens,
        "wh_per_request": round(per_1k * tokens / 1000, 4)
        if per_1k is not None and tokens
        else None,
        "requests_total": s.requests_total,
        "tokens_total": s.tokens_total,
        "cached_prompt_tokens_total": s.cached_prompt_tokens_total,
        "kv_cells_used": s.kv_cells_used,
        "kv_cells_total": s.kv_cells_total,
        "faults": s.faults,
        "prompt_cache_bytes": s.prompt_cache_bytes,
        "prompt_cache_entries": s.prompt_cache_entries,
        "prompt_cache_hits": s.prompt_cache_hits,
        "knobs": {
            "max_background": s.knobs.max_background,
            "background_threads": s.knobs.background_threads,
            "duty_cycle": s.knobs.duty_cycle,
        },
    }
