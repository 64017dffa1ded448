"""The model manager: which GGUF models the node has, and which are loaded.

Models come from the models directory and from explicit paths (``--model``), or are
downloaded into the directory. Several can be loaded at once (a chat model and an
embedding model); a model loads on first use and is unloaded after it has been idle
for a while, to give its memory back.

Each model's life is in the contract (`ModelEntry.state`): `available` (on disk),
`loading`, `loaded` or `failed` (its last load raised). A load runs as a task of its
own, so a request may stop waiting for it (`wait_s`) while it goes on: the API then
answers 503 `model_loading` with a Retry-After from the model's last load time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
import contextlib
from dataclasses import dataclass, field
import logging
import math
import os
from pathlib import Path
import re
import shutil
import time
from typing import Any, Literal

import aiohttp

from .chat import ChatTemplate
from .download import DownloadError, DownloadProgress, download
from .embeddings import EmbeddingEngine
from .native import ContextConfig
from .offload import Offload
from .runtime import Runtime
from .scheduler import Scheduler, SchedulerConfig
from .status import LlmSnapshot
from .tokenizer import Tokenizer

_LOGGER = logging.getLogger(__name__)

type ModelKind = Literal["chat", "embedding"]
type ModelState = Literal["available", "loading", "loaded", "failed"]

# A first guess of how fast a model loads (page cache cold, an ordinary SSD); after one
# load the model's own measured time is used.
_LOAD_BYTES_PER_S = 250e6

# Architectures that only make embeddings (no next-token head worth chatting with).
_EMBEDDING_ARCHS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "modern-bert"}
_RUNNING = ("downloading", "verifying")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.gguf$")


def valid_model_file_name(name: str) -> bool:
    """A plain file name ending in .gguf: no directories, nothing hidden."""
    return bool(_SAFE_NAME.match(name))


class ModelNotFoundError(LookupError):
    def __init__(self, model_id: str | None, kind: ModelKind) -> None:
        what = f"model {model_id!r}" if model_id else f"{kind} model"
        super().__init__(f"no {what} on this node")
        self.model_id = model_id


class ModelLoadingError(RuntimeError):
    """The model is still loading after the caller's wait; try again in `retry_after_s`."""

    def __init__(self, model_id: str, retry_after_s: int) -> None:
        super().__init__(f"model {model_id!r} is loading; try again in {retry_after_s} s")
        self.model_id = model_id
        self.retry_after_s = retry_after_s


class ModelLoadFailedError(RuntimeError):
    """The model could not be loaded (the next request tries again)."""

    def __init__(self, model_id: str, error: str) -> None:
        super().__init__(f"model {model_id!r} failed to load: {error}")
        self.model_id = model_id
        self.error = error


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    n_ctx: int = 8192
    n_slots: int = 16
    n_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    prefill_chunk: int = 128
    max_queue: int = 64
    embedding_ctx: int = 2048
    idle_unload_s: float = 900.0
    load_wait_s: float = 10.0
    """How long an API request waits for its model to load before it is told 503
    `model_loading` (jobs always wait)."""
    prompt_cache_mb: int = 1024
    """RAM for idle prompt prefixes (0: they stay in the KV cache); prompt_cache.py."""
    offload: Offload | None = None
    """Chat models' layers on other machines (the fleet lead's engine process only)."""


def engine_settings(
    *,
    threads: int,
    context: int,
    slots: int,
    idle_unload_s: float,
    prompt_cache_mb: int = 1024,
    offload: Offload | None = None,
) -> EngineSettings:
    """Engine sizing from the node's settings (`--llm-*`, HEATCOMPUTE_LLM_*, add-on options)."""
    return EngineSettings(
        n_threads=threads or (os.cpu_count() or 2),
        n_ctx=context,
        n_slots=slots,
        idle_unload_s=idle_unload_s,
        prompt_cache_mb=prompt_cache_mb,
        offload=offload,
    )


@dataclass(slots=True, eq=False)
class ChatModel:
    """A loaded chat model: what the API needs to serve it."""

    id: str
    tokenizer: Tokenizer
    template: ChatTemplate
    scheduler: Scheduler


@dataclass(slots=True, eq=False)
class ModelEntry:
    id: str
    path: Path
    kind: ModelKind
    tokenizer: Tokenizer
    created: int
    size_bytes: int = 0
    """Read once when registered: the status must not stat a file per model per call."""
    chat: ChatModel | None = None
    embedder: EmbeddingEngine | None = None
    last_used: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    loading: asyncio.Task[None] | None = None
    load_started: float = 0.0
    load_error: str | None = None
    """Why the last load failed; cleared by the next successful one."""
    load_s: float | None = None
    """How long the last successful load took."""

    @property
    def loaded(self) -> bool:
        return self.chat is not None or self.embedder is not None

    @property
    def state(self) -> ModelState:
        if self.loading is not None:
            return "loading"
        if self.loaded:
            return "loaded"
        return "failed" if self.load_error is not None else "available"

    def retry_after_s(self, now: float) -> int:
        """Whole seconds until the running load should be done (at least 1)."""
        expected = self.load_s if self.load_s is not None else self.size_bytes / _LOAD_BYTES_PER_S
        return max(1, math.ceil(expected - (now - self.load_started)))

    def busy(self) -> bool:
        if self.chat is None:
            return False
        stats = self.chat.scheduler.stats()
        return bool(stats.requests_active or stats.queue_depth)


class ModelManager:
    """Finds, loads, unloads and downloads models. Use from the event loop."""

    def __init__(
        self,
        models_dir: Path | None,
        paths: Sequence[Path] = (),
        settings: EngineSettings | None = None,
    ) -> None:
        self.models_dir = models_dir
        self._paths = tuple(paths)
        self.settings = settings or EngineSettings()
        self._entries: dict[str, ModelEntry] = {}
        self.downloads: dict[str, DownloadProgress] = {}
        self._retired_tokens = 0
        """Tokens generated by engines since unloaded: the count survives reloads."""
        self._reaper: asyncio.Task[None] | None = None

    # --- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.scan)
        period = max(1.0, min(60.0, self.settings.idle_unload_s / 4))
        self._reaper = asyncio.create_task(self._reap_forever(period), name="llm-model-reaper")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for entry in self._entries.values():
            if entry.loading is not None:
                # The load runs in a thread that can't be stopped: let it end, then unload.
                with contextlib.suppress(Exception):
                    await asyncio.shield(entry.loading)
            await self._unload(entry)
            entry.tokenizer.close()
        self._entries.clear()

    def scan(self) -> None:
        """Register every GGUF in the models directory and the explicit paths."""
        found = list(self._paths)
        if self.models_dir is not None and self.models_dir.is_dir():
            found += sorted(self.models_dir.glob("*.gguf"))
        for path in found:
            self.register(path)

    def register(self, path: Path) -> ModelEntry:
        model_id = path.name.removesuffix(".gguf")
        entry = self._entries.get(model_id)
        if entry is not None:
            return entry
        tokenizer = Tokenizer(path)
        kind: ModelKind = (
            "embedding"
            if tokenizer.architecture in _EMBEDDING_ARCHS or tokenizer.pooling_type is not None
            else "chat"
        )
        stat = path.stat()
        entry = ModelEntry(
            id=model_id,
            path=path,
            kind=kind,
            tokenizer=tokenizer,
            created=int(stat.st_mtime),
            size_bytes=stat.st_size,
        )
        self._entries[model_id] = entry
        _LOGGER.info("model %s (%s) at %s", model_id, kind, path)
        return entry

    # --- lookups -----------------------------------------------------------------------

    def entries(self) -> list[ModelEntry]:
        return list(self._entries.values())

    def find(self, model_id: str | None, kind: ModelKind) -> ModelEntry:
        """The named model, or the default of `kind` (chat models embed too)."""
        if model_id:
            entry = self._entries.get(model_id) or self._entries.get(model_id.removesuffix(".gguf"))
            if entry is None or (kind == "chat" and entry.kind != "chat"):
                raise ModelNotFoundError(model_id, kind)
            return entry
        ranked = sorted(self._entries.values(), key=lambda e: e.kind != kind)
        if not ranked or (kind == "chat" and ranked[0].kind != "chat"):
            raise ModelNotFoundError(None, kind)
        return ranked[0]

    async def chat(self, model_id: str | None, *, wait_s: float | None = None) -> ChatModel:
        """The chat model, loaded; waits at most `wait_s` for a load (None: as long as
        it takes), else raises `ModelLoadingError`."""
        entry = self.find(model_id, "chat")
        entry.last_used = time.monotonic()
        while (chat := entry.chat) is None or chat.scheduler.broken:
            await self._loaded(entry, self._load_chat, wait_s)
        return chat

    async def embeddings(
        self, model_id: str | None, *, wait_s: float | None = None
    ) -> EmbeddingEngine:
        entry = self.find(model_id, "embedding")
        entry.last_used = time.monotonic()
        while (embedder := entry.embedder) is None:
            await self._loaded(entry, self._load_embedder, wait_s)
        return embedder

    async def _loaded(
        self,
        entry: ModelEntry,
        load: Callable[[ModelEntry], Awaitable[None]],
        wait_s: float | None,
    ) -> None:
        """Wait for the entry's load (starting it if none runs)."""
        task = entry.loading
        if task is None:
            task = entry.loading = asyncio.create_task(
                self._load(entry, load), name=f"llm-load-{entry.id}"
            )
            # A load nobody waits for any more still ends cleanly (its error is kept).
            task.add_done_callback(_consume_outcome)
        # `wait` never cancels the load: a request that gives up (or goes away) leaves it
        # running for the next one.
        done, _ = await asyncio.wait({task}, timeout=wait_s)
        if not done:
            raise ModelLoadingError(entry.id, entry.retry_after_s(time.monotonic()))
        if task.cancelled():
            raise ModelLoadFailedError(entry.id, "the load was stopped")
        if (failure := task.exception()) is not None:
            raise ModelLoadFailedError(entry.id, entry.load_error or str(failure)) from failure

    async def _load(self, entry: ModelEntry, load: Callable[[ModelEntry], Awaitable[None]]) -> None:
        entry.load_started = started = time.monotonic()
        try:
            async with entry.lock:
                await load(entry)
        except Exception as err:
            entry.load_error = str(err) or type(err).__name__
            _LOGGER.exception("loading model %s failed", entry.id)
            raise
        else:
            entry.load_error = None
            entry.load_s = time.monotonic() - started
        finally:
            entry.loading = None

    async def _load_chat(self, entry: ModelEntry) -> None:
        if entry.chat is not None and entry.chat.scheduler.broken:
            await self._unload(entry)
        if entry.chat is None:
            entry.chat = await asyncio.to_thread(self._build_chat, entry)

    async def _load_embedder(self, entry: ModelEntry) -> None:
        if entry.embedder is None:
            entry.embedder = await asyncio.to_thread(
                EmbeddingEngine,
                entry.path,
                entry.tokenizer,
                n_ctx=self.settings.embedding_ctx,
                n_threads=self.settings.n_threads,
            )

    def _build_chat(self, entry: ModelEntry) -> ChatModel:
        s = self.settings
        context = ContextConfig(
            n_ctx=s.n_ctx,
            n_batch=512,
            n_seq_max=s.n_slots,
            n_threads=s.n_threads,
            offload=s.offload,
        )
        config = SchedulerConfig(
            n_slots=s.n_slots,
            n_batch=512,
            prefill_chunk=s.prefill_chunk,
            n_threads=s.n_threads,
            max_queue=s.max_queue,
            prompt_cache_bytes=s.prompt_cache_mb << 20,
        )
        scheduler = Scheduler(entry.tokenizer, lambda: Runtime.load(entry.path, context), config)
        tok = entry.tokenizer
        template = ChatTemplate(
            tok.chat_template,
            bos_token=tok.special_text(tok.bos) if tok.bos >= 0 else "",
            eos_token=tok.special_text(tok.eos) if tok.eos >= 0 else "",
        )
        _LOGGER.info("loaded chat model %s", entry.id)
        return ChatModel(id=entry.id, tokenizer=tok, template=template, scheduler=scheduler)

    # --- idle unload -------------------------------------------------------------------

    async def unload_idle(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        unloaded = []
        for entry in self._entries.values():
            idle = now - entry.last_used
            if entry.loaded and idle >= self.settings.idle_unload_s and not entry.busy():
                async with entry.lock:
                    await self._unload(entry)
                unloaded.append(entry.id)
                _LOGGER.info("unloaded %s after %.0f s idle", entry.id, idle)
        return unloaded

    async def _unload(self, entry: ModelEntry) -> None:
        chat, embedder = entry.chat, entry.embedder
        if chat is not None:
            # Counted as retired at once, and the tokens of its last steps after it
            # stopped: tokens_total never dips while the engine winds down.
            counted = chat.scheduler.stats().tokens_total
            self._retired_tokens += counted
        entry.chat = entry.embedder = None
        if chat is not None:
            await asyncio.to_thread(chat.scheduler.stop)
            self._retired_tokens += chat.scheduler.stats().tokens_total - counted
        if embedder is not None:
            await asyncio.to_thread(embedder.close)

    async def _reap_forever(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                await self.unload_idle()
            except Exception:  # the reaper must outlive one bad unload
                _LOGGER.exception("idle unload failed")

    # --- downloads ---------------------------------------------------------------------

    async def download(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        name: str,
        sha256: str | None = None,
    ) -> ModelEntry:
        """Download a GGUF into the models directory and register it."""
        progress = self.begin_download(url, name=name, sha256=sha256)
        return await self.finish_download(session, progress)

    def begin_download(self, url: str, *, name: str, sha256: str | None = None) -> DownloadProgress:
        """Check the request and make its progress visible at once, before any byte
        moves (so a client that polls right after asking finds it)."""
        if self.models_dir is None:
            raise ValueError("the node has no models directory to download into")
        if not valid_model_file_name(name):
            raise ValueError(f"bad model file name {name!r}")
        running = self.downloads.get(name)
        if running is not None and running.state in _RUNNING:
            raise ValueError(f"{name} is already downloading")
        progress = DownloadProgress(name=name, url=url, sha256=sha256)
        self.downloads[name] = progress
        return progress

    async def finish_download(
        self, session: aiohttp.ClientSession, progress: DownloadProgress
    ) -> ModelEntry:
        assert self.models_dir is not None
        path = await download(
            session,
            progress.url,
            self.models_dir / progress.name,
            sha256=progress.sha256,
            progress=progress,
            mark_done=False,
        )
        try:
            entry = await asyncio.to_thread(self.register, path)
        except Exception as err:
            # Not a model llama.cpp can read: keep it out of the directory, or every
            # later start would trip over it.
            path.unlink(missing_ok=True)
            progress.state, progress.error_code = "failed", "invalid_model"
            progress.error = f"{progress.name} is not a GGUF model this node can load: {err}"
            raise DownloadError(progress.error, "invalid_model") from err
        progress.state = "done"
        return entry

    def download_progress(self, name: str) -> DownloadProgress | None:
        """The latest download of `name` (running, done or failed), if any."""
        return self.downloads.get(name)

    def has_model_file(self, name: str) -> bool:
        """Whether a model of this file name is registered already."""
        return name.removesuffix(".gguf") in self._entries

    def free_bytes_for(self, name: str) -> int | None:
        """Room left for `name` in the models directory: free space plus what an
        interrupted download of it already holds (it resumes from there)."""
        if self.models_dir is None:
            return None
        self.models_dir.mkdir(parents=True, exist_ok=True)
        part = self.models_dir / f"{name}.part"
        have = part.stat().st_size if part.exists() else 0
        return shutil.disk_usage(self.models_dir).free + have

    # --- status ------------------------------------------------------------------------

    def tokens_total(self) -> int:
        """Tokens every chat engine has generated since start, unloaded ones included."""
        return self._retired_tokens + sum(
            e.chat.scheduler.stats().tokens_total for e in self._entries.values() if e.chat
        )

    def snapshot(self) -> LlmSnapshot:
        """The engines' figures and the model rows; reads only (no file access)."""
        return LlmSnapshot(
            engines=tuple(
                (e.id, e.chat.scheduler.stats()) for e in self._entries.values() if e.chat
            ),
            models=tuple(self.status()),
        )

    def status(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "id": e.id,
                "kind": e.kind,
                "state": e.state,
                "size_bytes": e.size_bytes,
                "error": e.load_error,
            }
            for e in self._entries.values()
        ]
        out += [
            {"id": p.name.removesuffix(".gguf"), "kind": "download", **p.as_dict()}
            for p in self.downloads.values()
            if p.state != "done"
        ]
        return out


def _consume_outcome(task: asyncio.Task[None]) -> None:
    # Already logged by `_load`; retrieving it keeps asyncio from warning about it.
    if not task.cancelled():
        task.exception()
