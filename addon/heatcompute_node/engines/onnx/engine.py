"""The ONNX engine: a model repository on disk, its loaded versions and their batchers.

The repository is a folder per model, a numbered folder per version, and a small
``config.json`` beside them (``config.py``)::

    <repository>/
      text-direction/
        config.json
        check.npz          (inputs the int8 variant is checked on; optional)
        1/model.onnx
        2/model.onnx

Each model is loaded on its own: one that fails (a broken file, a bad config) is marked
unavailable with its reason and every other model keeps serving. Loading again (after a
new version folder appears, or with another version policy to roll back) builds the new
versions beside the running ones, switches requests over once they are ready, and lets
the old versions answer what they had already taken before they are closed: no request
fails or is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
import contextlib
from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
import time
from typing import Any

from .batcher import BackgroundGate, Done, DynamicBatcher, InferRequest, Tensors
from .config import CONFIG_FILE_NAME, ConfigError, ModelConfig, merge_config, parse_config
from .errors import ModelNotFoundError, ModelUnavailableError
from .quantize import prepare_serving_variant
from .session import MODEL_FILE_NAME, ModelLoadError, ModelVersion
from .stats import EngineStats, ModelStats, QuantizationReport
from .status import OnnxSnapshot

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class RepositoryEntry:
    """One line of the repository index (Triton's repository index extension)."""

    name: str
    version: str
    state: str
    reason: str


@dataclass(slots=True)
class _Model:
    name: str
    config: ModelConfig | None = None
    serving: dict[int, DynamicBatcher] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    reason: str = ""
    """Why the model (rather than one version) can't serve; empty when it can."""
    quantization: dict[int, QuantizationReport] = field(default_factory=dict)
    stamps: dict[int, tuple[float, str]] = field(default_factory=dict)
    retired: list[ModelStats] = field(default_factory=list)
    """Figures of versions no longer served (their counts stay in the totals)."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OnnxEngine:
    def __init__(
        self,
        repository: Path,
        *,
        threads: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.threads = threads or os.process_cpu_count() or 1
        self.gate = BackgroundGate(clock)
        self._clock = clock
        self._models: dict[str, _Model] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="onnx")

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Load every model in the repository; one failing doesn't stop the others."""
        for name in await asyncio.to_thread(self._folders):
            try:
                await self.load(name)
            except (ModelUnavailableError, ModelNotFoundError) as err:
                _LOGGER.warning("ONNX model %s not loaded: %s", name, err)

    async def close(self) -> None:
        for model in self._models.values():
            for batcher in model.serving.values():
                await batcher.stop()
            model.serving.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the repository ------------------------------------------------------------------

    async def load(self, name: str, override: Mapping[str, Any] | None = None) -> None:
        """(Re)load a model from its folder; raises if it ends up unable to serve."""
        folder = self._folder(name)
        if folder is None:
            raise ModelNotFoundError(
                f"failed to load '{name}', failed to poll from model repository"
            )
        model = self._models.setdefault(name, _Model(name))
        async with model.lock:
            await self._load(model, folder, override or {})

    async def unload(self, name: str) -> None:
        model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"failed to unload '{name}': it is not loaded")
        async with model.lock:
            serving, model.serving = model.serving, {}
            model.reason = "unloaded"
            for batcher in serving.values():
                await self._retire(model, batcher)

    def index(self) -> list[RepositoryEntry]:
        entries: list[RepositoryEntry] = []
        for name in sorted(set(self._folders()) | set(self._models)):
            model = self._models.get(name)
            if model is None:
                entries.append(RepositoryEntry(name=name, version="", state="", reason=""))
                continue
            for version in sorted(model.serving):
                entries.append(
                    RepositoryEntry(name=name, version=str(version), state="READY", reason="")
                )
            for version, reason in sorted(model.failed.items()):
                entries.append(
                    RepositoryEntry(
                        name=name, version=str(version), state="UNAVAILABLE", reason=reason
                    )
                )
            if not model.serving and not model.failed:
                entries.append(
                    RepositoryEntry(name=name, version="", state="UNAVAILABLE", reason=model.reason)
                )
        return entries

    def served_versions(self, name: str) -> list[int]:
        model = self._models.get(name)
        return sorted(model.serving) if model is not None else []

    def names(self) -> list[str]:
        return sorted(name for name, model in self._models.items() if model.serving)

    # --- serving ------------------------------------------------------------------------

    def batcher(self, name: str, version: int | None = None) -> DynamicBatcher:
        """The batcher that serves ``name`` (its newest served version by default)."""
        model = self._models.get(name)
        if model is None:
            if self._folder(name) is None:
                raise ModelNotFoundError(f"Request for unknown model: '{name}' is not found")
            raise ModelUnavailableError(f"Request for unknown model: '{name}' is not loaded")
        if not model.serving:
            raise ModelUnavailableError(
                f"Request for unknown model: '{name}' has no available versions"
                + (f" ({model.reason})" if model.reason else "")
            )
        if version is None:
            return model.serving[max(model.serving)]
        batcher = model.serving.get(version)
        if batcher is None:
            reason = model.failed.get(version)
            if reason is not None:
                raise ModelUnavailableError(
                    f"Request for unknown model: '{name}' version {version} is not at ready "
                    f"state: {reason}"
                )
            raise ModelNotFoundError(
                f"Request for unknown model: '{name}' version {version} is not found"
            )
        return batcher

    def config(self, name: str) -> ModelConfig:
        model = self._models.get(name)
        if model is None or model.config is None:
            raise ModelNotFoundError(f"Request for unknown model: '{name}' is not found")
        return model.config

    async def infer(self, name: str, version: int | None, request: InferRequest) -> Tensors:
        return await self.batcher(name, version).infer(request)

    # --- the governor's knobs --------------------------------------------------------------

    def set_knobs(
        self,
        *,
        max_background: int | None = None,
        background_threads: int | None = None,
        duty_cycle: float | None = None,
    ) -> None:
        """Background ONNX work takes the CPU share the knobs give (threads × duty / n)."""
        if max_background == 0 or duty_cycle == 0:
            share = 0.0
        else:
            threads = background_threads or self.threads
            share = min(
                1.0, threads * (duty_cycle if duty_cycle is not None else 1.0) / self.threads
            )
        self.gate.share = share
        for model in self._models.values():
            for batcher in model.serving.values():
                batcher.wake()

    # --- figures ---------------------------------------------------------------------------

    def snapshot(self) -> OnnxSnapshot:
        """The engine's figures for the node's status and /metrics."""
        return OnnxSnapshot(stats=self.stats())

    def stats(self) -> EngineStats:
        models: list[ModelStats] = []
        for model in self._models.values():
            models.extend(model.retired)
            for version, batcher in sorted(model.serving.items()):
                models.append(
                    batcher.stats.snapshot(
                        state="READY",
                        pending=batcher.pending,
                        running=batcher.running,
                        quantization=model.quantization.get(version),
                    )
                )
            for version, reason in model.failed.items():
                models.append(
                    ModelStats(name=model.name, version=version, state="UNAVAILABLE", reason=reason)
                )
        return EngineStats(
            models=tuple(models),
            threads=self.threads,
            busy_s=sum(m.busy_s for m in models),
            background_busy_s=sum(m.background_busy_s for m in models),
        )

    # --- helpers -------------------------------------------------------------------------

    async def _load(self, model: _Model, folder: Path, override: Mapping[str, Any]) -> None:
        try:
            raw = await asyncio.to_thread(_read_raw_config, folder)
            config = parse_config(merge_config(raw, override), name=model.name)
        except ConfigError as err:
            model.reason = f"invalid config: {err}"
            if not model.serving:
                model.config = None
            raise ModelUnavailableError(f"failed to load '{model.name}': {model.reason}") from err
        available = await asyncio.to_thread(_versions, folder)
        chosen = config.version_policy.choose(available)
        if not chosen:
            model.reason = f"no version folder with {MODEL_FILE_NAME} matches the version policy"
            raise ModelUnavailableError(f"failed to load '{model.name}': {model.reason}")
        new: dict[int, DynamicBatcher] = {}
        failed: dict[int, str] = {}
        for version in chosen:
            path = folder / str(version) / MODEL_FILE_NAME
            stamp = (await asyncio.to_thread(_mtime, path), json.dumps(config.as_json()))
            current = model.serving.get(version)
            if current is not None and model.stamps.get(version) == stamp:
                new[version] = current  # unchanged: keeps serving as it is
                continue
            try:
                loaded, report = await asyncio.to_thread(
                    self._load_version, model.name, version, path, folder, config
                )
            except ModelLoadError as err:
                failed[version] = str(err)
                continue
            batcher = DynamicBatcher(
                loaded,
                config,
                run_in_thread=self._run,
                gate=self.gate,
                instances=self.instances(config),
                clock=self._clock,
            )
            batcher.start()
            new[version] = batcher
            model.stamps[version] = stamp
            if report is not None:
                model.quantization[version] = report
            else:
                model.quantization.pop(version, None)
        if not new:
            model.failed.update(failed)
            model.reason = "; ".join(failed.values())
            # The versions that served before keep serving: a bad update breaks nothing.
            raise ModelUnavailableError(f"failed to load '{model.name}': {model.reason}")
        old = model.serving
        model.config, model.serving, model.failed, model.reason = config, new, failed, ""
        for version, batcher in old.items():
            if new.get(version) is not batcher:
                await self._retire(model, batcher)
        _LOGGER.info("ONNX model %s serving versions %s", model.name, sorted(new))

    def _load_version(
        self, name: str, version: int, path: Path, folder: Path, config: ModelConfig
    ) -> tuple[ModelVersion, QuantizationReport | None]:
        threads = self.instance_threads(config)
        loaded = ModelVersion.load(name, version, path, threads=threads)
        return prepare_serving_variant(loaded, folder, config, threads=threads)

    def instances(self, config: ModelConfig) -> int:
        """Batches a model computes at once: its instances, at most one per thread."""
        return max(1, min(config.instance_count, self.threads))

    def instance_threads(self, config: ModelConfig) -> int:
        """Threads of one instance: the engine's threads shared by the model's instances.

        Batches computed at once share one session, and each runs on the calling thread
        plus the session's intra-op threads: given each the engine's threads, two
        instances would run more threads than there are. On small models one thread per
        instance is also the cheapest way to use the cores: the threads of one batch meet
        at a barrier per operator, which costs more than the operator itself
        (docs/benchmarks.md, the kernel's ceiling).
        """
        return max(1, self.threads // self.instances(config))

    async def _retire(self, model: _Model, batcher: DynamicBatcher) -> None:
        """Answer what the version has taken, then close it (its counts are kept)."""
        await batcher.drain()
        await batcher.stop()
        model.retired.append(batcher.stats.snapshot(state="RETIRED"))

    def _run(self, work: Callable[[], Tensors], done: Done) -> None:
        """``work`` on a worker thread; ``done`` with its result on the loop, in the one
        callback that the worker's wake-up schedules (no future, no task in between)."""
        loop = asyncio.get_running_loop()

        def job() -> None:
            result: Tensors | Exception
            try:
                result = work()
            except Exception as err:  # noqa: BLE001 - handed to the batcher, which reports it
                result = err
            with contextlib.suppress(RuntimeError):  # the loop closed while it computed
                loop.call_soon_threadsafe(done, result)

        self._pool.submit(job)

    def _folders(self) -> list[str]:
        if not self.repository.is_dir():
            return []
        return sorted(
            p.name for p in self.repository.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def _folder(self, name: str) -> Path | None:
        if not name or "/" in name or name.startswith("."):
            return None
        folder = self.repository / name
        return folder if folder.is_dir() else None


def _read_raw_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE_NAME
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return raw


def _versions(folder: Path) -> list[int]:
    return sorted(
        int(p.name)
        for p in folder.iterdir()
        # ASCII digits only: a folder named "²" passes str.isdigit() and breaks int().
        if p.is_dir()
        and p.name.isascii()
        and p.name.isdigit()
        and int(p.name) > 0
        and (p / MODEL_FILE_NAME).exists()
    )


def _mtime(path: Path) -> float:
    return path.stat().st_mtime
