"""What each model version has done, counted as Triton counts it, handed out as frozen
snapshots (nobody reads the recorder's fields).

Triton's statistics extension: per model version, successes and failures with their
total time, time spent queued and computing, inferences (samples) and executions
(batches), and per batch size how many batches ran and how long they took.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import time


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    count: int = 0
    ns: int = 0

    def as_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchSizeStats:
    batch_size: int
    compute_infer: Duration


@dataclass(frozen=True, slots=True, kw_only=True)
class QuantizationReport:
    """The int8 check's outcome for one model version."""

    served: bool
    """True when the int8 variant serves; else the float model does."""
    reason: str
    epsilon: float
    max_abs_error: float | None = None
    agreement: float | None = None
    """Share of check samples whose top output index is the same in both variants."""
    speedup: float | None = None
    """Float model's time / int8 variant's time on the check set."""
    samples: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "served": self.served,
            "variant": "int8" if self.served else "float",
            "reason": self.reason,
            "epsilon": self.epsilon,
            "max_abs_error": self.max_abs_error,
            "agreement": self.agreement,
            "speedup": self.speedup,
            "samples": self.samples,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStats:
    """One model version's figures at one moment."""

    name: str
    version: int
    state: str
    """READY, LOADING, UNAVAILABLE (failed, with ``reason``) or DRAINING."""
    reason: str = ""
    last_inference_ms: int = 0
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    batch_stats: tuple[BatchSizeStats, ...] = ()
    pending: int = 0
    running: int = 0
    """Batches computing now."""
    busy_s: float = 0.0
    background_busy_s: float = 0.0
    quantization: QuantizationReport | None = None

    @property
    def mean_batch_size(self) -> float | None:
        if not self.execution_count:
            return None
        return round(self.inference_count / self.execution_count, 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStats:
    """The ONNX engine as a whole: every model version it knows of."""

    models: tuple[ModelStats, ...]
    threads: int
    busy_s: float
    """Seconds some batch was computing, summed over batches (ONNX work done)."""
    background_busy_s: float
    """... of which for background work (jobs), for the jobs' energy share."""

    @property
    def pending(self) -> int:
        return sum(model.pending for model in self.models)


@dataclass(slots=True)
class StatsRecorder:
    """Counts one model version's work; owned and written by its batcher (event loop)."""

    name: str
    version: int
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    success: list[int] = field(default_factory=lambda: [0, 0])
    fail: list[int] = field(default_factory=lambda: [0, 0])
    queue: list[int] = field(default_factory=lambda: [0, 0])
    compute: list[int] = field(default_factory=lambda: [0, 0])
    batches: Counter[int] = field(default_factory=Counter)
    batch_ns: Counter[int] = field(default_factory=Counter)
    busy_s: float = 0.0
    background_busy_s: float = 0.0

    def batch(self, *, size: int, requests: int, compute_ns: int, background: bool) -> None:
        self.execution_count += 1
        self.inference_count += size
        self.compute[0] += requests
        self.compute[1] += compute_ns
        self.batches[size] += 1
        self.batch_ns[size] += compute_ns
        self.busy_s += compute_ns / 1e9
        if background:
            self.background_busy_s += compute_ns / 1e9
        self.last_inference_ms = int(time.time() * 1000)

    def queued(self, ns: int) -> None:
        self.queue[0] += 1
        self.queue[1] += ns

    def finished(self, *, ok: bool, ns: int) -> None:
        target = self.success if ok else self.fail
        target[0] += 1
        target[1] += ns

    def snapshot(
        self,
        *,
        state: str,
        reason: str = "",
        pending: int = 0,
        running: int = 0,
        quantization: QuantizationReport | None = None,
    ) -> ModelStats:
        return ModelStats(
            name=self.name,
            version=self.version,
            state=state,
            reason=reason,
            last_inference_ms=self.last_inference_ms,
            inference_count=self.inference_count,
            execution_count=self.execution_count,
            success=Duration(count=self.success[0], ns=self.success[1]),
            fail=Duration(count=self.fail[0], ns=self.fail[1]),
            queue=Duration(count=self.queue[0], ns=self.queue[1]),
            compute_infer=Duration(count=self.compute[0], ns=self.compute[1]),
            batch_stats=tuple(
                BatchSizeStats(
                    batch_size=size,
                    compute_infer=Duration(count=self.batches[size], ns=self.batch_ns[size]),
                )
                for size in sorted(self.batches)
            ),
            pending=pending,
            running=running,
            busy_s=self.busy_s,
            background_busy_s=self.background_busy_s,
            quantization=quantization,
        )
