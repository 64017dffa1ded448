"""The model manager: which GGUF models the node has, and which are loaded.

Models come from the models directory and from explicit paths (``--model``), or are
downloaded into the directory. Several can be loaded at once (a chat model and an
embedding model); a model loads on first use and is unloaded after it has been idle
for a while, to give its memory back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass, field
import logging
import os
from pathlib import Path
import re
import time
from typing import Any, Literal

import aiohttp

from .chat import ChatTemplate
from .download import DownloadProgress, download
from .embeddings import EmbeddingEngine
from .native import ContextConfig
from .runtime import Runtime
from .scheduler import Scheduler, SchedulerConfig
from .tokenizer import Tokenizer

_LOGGER = logging.getLogger(__name__)

type ModelKind = Literal["chat", "embedding"]

# Architectures that only make embeddings (no next-token head worth chatting with).
_EMBEDDING_ARCHS = {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "modern-bert"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.gguf$")


def valid_model_file_name(name: str) -> bool:
    """A plain file name ending in .gguf: no directories, nothing hidden."""
    return bool(_SAFE_NAME.match(name))


class ModelNotFoundError(LookupError):
    def __init__(self, model_id: str | None, kind: ModelKind) -> None:
        what = f"model {model_id!r}" if model_id else f"{kind} model"
        super().__init__(f"no {what} on this node")
        self.model_id = model_id


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    n_ctx: int = 8192
    n_slots: int = 16
    n_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    prefill_chunk: int = 128
    max_queue: int = 64
    embedding_ctx: int = 2048
    idle_unload_s: float = 900.0
    prompt_cache_mb: int = 1024
    """RAM for idle prompt prefixes (0: they stay in the KV cache); prompt_cache.py."""


def engine_settings(
    *, threads: int, context: int, slots: int, idle_unload_s: float, prompt_cache_mb: int = 1024
) -> EngineSettings:
    """Engine sizing from the node's settings (`--llm-*`, HEATCOMPUTE_LLM_*, add-on options)."""
    return EngineSettings(
        n_threads=threads or (os.cpu_count() or 2),
        n_ctx=context,
        n_slots=slots,
        idle_unload_s=idle_unload_s,
        prompt_cache_mb=prompt_cache_mb,
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
    chat: ChatModel | None = None
    embedder: EmbeddingEngine | None = None
    last_used: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def loaded(self) -> bool:
        return self.chat is not None or self.embedder is not None

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
        entry = ModelEntry(
            id=model_id,
            path=path,
            kind=kind,
            tokenizer=tokenizer,
            created=int(path.stat().st_mtime),
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

    async def chat(self, model_id: str | None) -> ChatModel:
        entry = self.find(model_id, "chat")
        entry.last_used = time.monotonic()
        async with entry.lock:
            if entry.chat is not None and entry.chat.scheduler.broken:
                await self._unload(entry)
            if entry.chat is None:
                entry.chat = await asyncio.to_thread(self._load_chat, entry)
        return entry.chat

    async def embeddings(self, model_id: str | None) -> EmbeddingEngine:
        entry = self.find(model_id, "embedding")
        entry.last_used = time.monotonic()
        async with entry.lock:
            if entry.embedder is None:
                entry.embedder = await asyncio.to_thread(
                    EmbeddingEngine,
                    entry.path,
                    entry.tokenizer,
                    n_ctx=self.settings.embedding_ctx,
                    n_threads=self.settings.n_threads,
                )
        return entry.embedder

    def _load_chat(self, entry: ModelEntry) -> ChatModel:
        s = self.settings
        context = ContextConfig(
            n_ctx=s.n_ctx, n_batch=512, n_seq_max=s.n_slots, n_threads=s.n_threads
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
        entry.chat = entry.embedder = None
        if chat is not None:
            await asyncio.to_thread(chat.scheduler.stop)
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
        if self.models_dir is None:
            raise ValueError("the node has no models directory to download into")
        if not valid_model_file_name(name):
            raise ValueError(f"bad model file name {name!r}")
        progress = DownloadProgress(name=name, url=url)
        self.downloads[name] = progress
        path = await download(
            session, url, self.models_dir / name, sha256=sha256, progress=progress
        )
        return await asyncio.to_thread(self.register, path)

    # --- status ------------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "id": e.id,
                "kind": e.kind,
                "state": "loaded" if e.loaded else "available",
                "size_bytes": e.path.stat().st_size if e.path.exists() else None,
            }
            for e in self._entries.values()
        ]
        out += [
            {"id": p.name.removesuffix(".gguf"), "kind": "download", **p.as_dict()}
            for p in self.downloads.values()
            if p.state != "done"
        ]
        return out
