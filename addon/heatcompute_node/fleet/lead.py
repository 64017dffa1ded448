"""The lead: one model split over this node and its workers, kept serving.

A loop reconciles what should run with what runs: it pings lost workers (each second),
plans the split over the reachable ones by free memory (plan.py), and (re)starts the
engine process with it. A worker whose RPC stream breaks (tunnel_client.py says so at
once) costs the engine process at once, so its running requests fail within seconds
instead of hanging; the model then runs on the lead alone if it fits there, or is
reported unavailable. A worker that comes back gets its layers again as soon as no
request is running (a restart drops running requests, so it waits for a quiet moment).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import functools
import logging
from pathlib import Path
import ssl
import time
from typing import Literal

import aiohttp

from ..hardware.helpers import add_helper, remove_helper
from .engine_process import EngineProcess, EngineStartError
from .memory import available_bytes
from .plan import DoesNotFitError, Holder, SplitPlan, plan_split
from .state import Peer
from .tunnel_client import WorkerLink, WorkerUnreachableError

_LOGGER = logging.getLogger(__name__)

type LeadState = Literal["starting", "split", "local", "unavailable"]
type LinkState = Literal["connecting", "connected", "lost"]
PROBE_INTERVAL_S = 1.0
RETRY_FAILED_START_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitModel:
    """The model the lead splits, as read from its file."""

    id: str
    path: Path
    n_layer: int
    size_bytes: int


@dataclass(slots=True)
class WorkerView:
    peer: Peer
    state: LinkState = "connecting"
    free_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineShape:
    threads: int
    context: int
    slots: int


class Lead:
    def __init__(
        self,
        *,
        node_id: str,
        name: str,
        model: SplitModel,
        workers: list[Peer],
        tls: Callable[[Peer], ssl.SSLContext],
        engine_dir: Path,
        shape: EngineShape,
        memory: Callable[[], int] | None = None,
    ) -> None:
        self.node_id, self.name = node_id, name
        self.model = model
        self._engine_dir = engine_dir
        self._shape = shape
        self._memory = memory
        self.links = {
            p.node_id: WorkerLink(p, functools.partial(tls, p), self._lost) for p in workers
        }
        self.workers = {p.node_id: WorkerView(p) for p in workers}
        self.state: LeadState = "starting"
        self.error: str | None = None
        self.plan: SplitPlan | None = None
        self.recoveries = 0
        self.lost_at: float | None = None
        self.last_recovery_s: float | None = None
        """Seconds from a worker's loss to the model serving again (alone or split)."""
        self.engine: EngineProcess | None = None
        self._engine_workers: tuple[str, ...] = ()
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._inflight = 0
        self._retry_at = 0.0
        self._tokens_before = 0
        self._tokens_engine = 0
        self._ready_mark = (0, 0)
        self._task: asyncio.Task[None] | None = None
        self._helper = 0
        self._engine_cpu_done = 0.0
        self._session: aiohttp.ClientSession | None = None

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        # The engine process's CPU is this node's work and this room's heat.
        self._helper = add_helper(self.cpu_s)
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)
        )
        self._task = asyncio.create_task(self._run(), name="fleet-lead")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.engine is not None:
            self._engine_cpu_done += self.engine.cpu_s()
            await self.engine.stop()
            self.engine = None
        for link in self.links.values():
            await link.close()
        if self._session is not None:
            await self._session.close()
        remove_helper(self._helper)

    def cpu_s(self) -> float:
        """CPU seconds of the engine processes so far, ended ones included."""
        engine = self.engine
        return self._engine_cpu_done + (engine.cpu_s() if engine is not None else 0.0)

    # --- what the proxy uses -------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def wait_ready(self, timeout_s: float) -> EngineProcess | None:
        """The engine once it serves, waiting up to ``timeout_s``; None if it does not."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        engine = self.engine
        return engine if self._ready.is_set() and engine is not None and engine.running else None

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Around each forwarded request: a returned worker waits for none running."""
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._wake.set()  # a returned worker may now get its layers back

    @property
    def tokens_total(self) -> int:
        return self._tokens_before + self._tokens_engine

    @property
    def bytes_total(self) -> int:
        """Bytes through all tunnels, both ways, since the lead started."""
        return sum(
            link.traffic.bytes_sent + link.traffic.bytes_received for link in self.links.values()
        )

    def serving_traffic(self) -> tuple[int, int]:
        """(bytes, tokens) since the engine last became ready: generation only, without
        the weights a (re)load sends to the workers."""
        bytes_mark, tokens_mark = self._ready_mark
        return self.bytes_total - bytes_mark, self.tokens_total - tokens_mark

    # --- the loop --------------------------------------------------------------------------

    def _lost(self, node_id: str, reason: str) -> None:
        """A worker's stream broke: end the engine now, so its requests fail now."""
        view = self.workers[node_id]
        if view.state == "lost":
            return
        _LOGGER.warning("fleet: %s", reason)
        view.state, view.error = "lost", reason
        self.error = reason
        if node_id in self._engine_workers and self.engine is not None:
            self._ready.clear()
            self.state = "starting"
            self.lost_at = time.monotonic()
            self.engine.kill()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._reconcile()
            except Exception:  # the loop must outlive any one failure
                _LOGGER.exception("fleet lead: reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), PROBE_INTERVAL_S)
            self._wake.clear()

    async def _reconcile(self) -> None:
        await self._probe()
        wanted = tuple(i for i, v in self.workers.items() if v.state == "connected")
        engine = self.engine
        if engine is not None and engine.running:
            if wanted == self._engine_workers:
                await self._count_tokens(engine)
                return
            if set(wanted) > set(self._engine_workers) and self._inflight:
                return  # restore the split at a quiet moment
        elif self.state == "unavailable" and time.monotonic() < self._retry_at:
            return
        await self._rebuild(wanted)

    async def _probe(self) -> None:
        """Ping every worker that is not carrying a running split (those the tunnel
        watches itself)."""
        engine_up = self.engine is not None and self.engine.running
        for node_id, link in self.links.items():
            view = self.workers[node_id]
            if engine_up and view.state == "connected" and node_id in self._engine_workers:
                continue
            try:
                answer = await link.ping()
            except WorkerUnreachableError as err:
                if view.state != "lost":
                    _LOGGER.warning("fleet: %s", err)
                view.state, view.error = "lost", str(err)
                continue
            free = answer.get("free_memory")
            view.free_bytes = int(free) if isinstance(free, int | float) else None
            view.state, view.error = "connected", None

    async def _rebuild(self, wanted: tuple[str, ...]) -> None:
        self._ready.clear()
        had_engine = self.engine is not None
        if self.engine is not None:
            self._tokens_before += self._tokens_engine
            self._tokens_engine = 0
            engine, self.engine = self.engine, None  # its watch: a stop, not a loss
            self._engine_cpu_done += engine.cpu_s()
            await engine.stop()
        self.state = "starting"
        for link in self.links.values():
            await link.close()  # fresh local ends: llama.cpp connects anew
        free = (self._memory or available_bytes)()
        holders = [Holder(node_id=self.node_id, name=self.name, free_bytes=free)]
        for node_id in wanted:
            view = self.workers[node_id]
            holders.append(
                Holder(
                    node_id=node_id,
                    name=view.peer.name,
                    free_bytes=view.free_bytes or 0,
                    endpoint=await self.links[node_id].open(),
                )
            )
        try:
            plan = plan_split(self.model.n_layer, self.model.size_bytes, holders)
        except DoesNotFitError as err:
            self._unavailable(f"{self.model.id} does not fit without its workers: {err}")
            return
        engine = EngineProcess(
            model_path=self.model.path,
            model_id=self.model.id,
            data_dir=self._engine_dir,
            threads=self._shape.threads,
            context=self._shape.context,
            slots=self._shape.slots,
            offload=plan.offload,
        )
        try:
            await engine.start(self.session)
        except EngineStartError as err:
            self._unavailable(str(err))
            return
        self.engine, self.plan, self._engine_workers = engine, plan, wanted
        await self._count_tokens(engine)
        self._ready_mark = (self.bytes_total, self.tokens_total)
        self.state = "split" if wanted else "local"
        if len(wanted) == len(self.workers):
            self.error = None
        if had_engine:
            self.recoveries += 1
        if self.lost_at is not None:
            self.last_recovery_s = round(time.monotonic() - self.lost_at, 2)
            self.lost_at = None
        self._ready.set()
        asyncio.create_task(self._watch(engine), name="fleet-engine-watch")  # noqa: RUF006
        _LOGGER.info(
            "fleet: %s serving %s: %s",
            self.model.id,
            self.state,
            ", ".join(f"{r.name} {r.first_layer}-{r.last_layer}" for r in plan.ranges),
        )

    def _unavailable(self, why: str) -> None:
        _LOGGER.error("fleet: %s", why)
        self.state, self.error, self.plan = "unavailable", why, None
        self._engine_workers = ()
        self._retry_at = time.monotonic() + RETRY_FAILED_START_S

    async def _watch(self, engine: EngineProcess) -> None:
        code = await engine.wait()
        if self.engine is engine:
            _LOGGER.warning("fleet: the engine process ended (%s)", code)
            self._ready.clear()
            self.state = "starting"
            if self.lost_at is None:
                self.lost_at = time.monotonic()
            self._wake.set()

    async def _count_tokens(self, engine: EngineProcess) -> None:
        tokens = await engine.tokens_total(self.session)
        if tokens is not None and self.engine is engine:
            self._tokens_engine = tokens
