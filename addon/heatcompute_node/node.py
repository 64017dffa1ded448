"""The node at run time: its identity, hardware, energy counter, heat target and status.

One `Node` per process. The HTTP layer reads `status()` and calls `set_heat()`; the
sampler task reads the hardware every `status_interval_s`, integrates energy and pushes
a status event whenever something a user could see has changed by enough to matter
(status_events.py decides what that is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from dataclasses import replace
from datetime import UTC, datetime
import logging
import time
from typing import Any, Protocol

from . import API_VERSION, __version__
from .events import EventHub
from .hardware.base import HardwareReading, HardwareSource
from .hardware.detect import open_hardware
from .heat.accounting import STATE_FILE_NAME, EnergyCounter
from .heat.status import HeatControlSnapshot
from .heat.target import HeatTarget
from .identity import load_or_create_node_id
from .loop_lag import LoopLagMonitor
from .memory import total_memory_bytes
from .node_status import RESERVED_KEYS, NodeFigures, NodeStatus
from .runtime_config import RuntimeConfig, load_config, save_config
from .settings import Settings
from .snapshot import StatusSource
from .status_events import StatusPublisher, StatusThrottle

_LOGGER = logging.getLogger(__name__)


class HeatControlSource(Protocol):
    """The heat service's controller: intensity, jobs, governor, safety, energy."""

    def snapshot(self) -> HeatControlSnapshot: ...


class SampleListener(Protocol):
    """Something (the heat controller) that acts on every hardware sample."""

    def on_sample(self, reading: HardwareReading, now: float) -> None: ...


class Node:
    """Everything the node knows at run time, behind a small interface."""

    def __init__(
        self,
        settings: Settings,
        *,
        hardware: HardwareSource | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.token = settings.resolve_token()
        self.node_id = load_or_create_node_id(settings.data_dir)
        self.events = EventHub()
        self._clock = clock
        self._started = clock()
        self._hardware = hardware
        self._energy: EnergyCounter | None = None
        self._heat = HeatTarget()
        self._heat_refreshed_at = self._started
        self._effective_heat: HeatTarget | None = None
        self._listeners: list[SampleListener] = []
        self._config = load_config(settings.data_dir, max_power_limit_w=settings.max_power_w)
        self._reading = HardwareReading(power_w=None)
        self.memory_bytes = total_memory_bytes()
        self._sources: dict[str, StatusSource] = {}
        self._heat_control: HeatControlSource | None = None
        self.loop_lag = LoopLagMonitor()
        self.add_status_source(self.loop_lag)
        self._sampler: asyncio.Task[None] | None = None
        self._status_events = StatusPublisher(
            self.status,
            lambda status: self.events.publish("status", dict(status)),
            clock,
            StatusThrottle(max_power_w=settings.max_power_w),
        )

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._hardware is None:
            self._hardware = await asyncio.to_thread(
                open_hardware,
                self.settings.hardware,
                max_power_w=self.settings.max_power_w,
                idle_power_w=self.settings.idle_power_w,
            )
        self._energy = await asyncio.to_thread(
            EnergyCounter,
            self.settings.data_dir / STATE_FILE_NAME,
            flush_interval_s=self.settings.energy_flush_s,
        )
        self.loop_lag.start()
        await self._sample()
        self._sampler = asyncio.create_task(self._sample_forever(), name="heatcompute-sampler")
        _LOGGER.info(
            "node %s (%s) started, hardware %s",
            self.node_id,
            self.settings.node_name,
            self.hardware_name,
        )

    async def stop(self) -> None:
        await self.loop_lag.stop()
        self._status_events.cancel()
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        if self._energy is not None:
            await asyncio.to_thread(self._energy.close)
        if self._hardware is not None:
            self._hardware.close()

    # --- what the API uses -----------------------------------------------------------

    @property
    def heat(self) -> HeatTarget:
        return self._heat

    @property
    def hardware_name(self) -> str:
        return self._hardware.name if self._hardware is not None else "none"

    @property
    def reading(self) -> HardwareReading:
        return self._reading

    def set_heat(self, target: HeatTarget) -> None:
        self._heat = target
        self._heat_refreshed_at = self._clock()
        self._effective_heat = None  # re-judged by the safety monitor at the next sample
        self.publish_status(urgent=True)

    @property
    def heat_refreshed_at(self) -> float:
        """Monotonic time of the last heat target from Home Assistant (the watchdog's)."""
        return self._heat_refreshed_at

    @property
    def effective_heat(self) -> HeatTarget:
        """The heat target in force: Home Assistant's unless safety overrides it."""
        return self._effective_heat if self._effective_heat is not None else self._heat

    def set_effective_heat(self, target: HeatTarget) -> None:
        self._effective_heat = target

    @property
    def energy(self) -> EnergyCounter | None:
        return self._energy

    def add_sample_listener(self, listener: SampleListener) -> None:
        self._listeners.append(listener)

    @property
    def config(self) -> RuntimeConfig:
        return self._config

    @property
    def max_power_w(self) -> float:
        """The effective power cap: the user's runtime choice within the configured limit."""
        return self._config.max_power_w

    async def set_config(self, config: RuntimeConfig) -> None:
        self._config = config
        await asyncio.to_thread(save_config, self.settings.data_dir, config)
        if self._heat.target_w > config.max_power_w:
            # A lowered cap also lowers a standing target: never ask for more than allowed.
            self._heat = replace(self._heat, target_w=config.max_power_w)
        self.publish_status(urgent=True)

    def add_status_source(self, source: StatusSource) -> None:
        """An engine or service whose snapshot goes into status, events and /metrics."""
        key = source.snapshot().key
        if key in RESERVED_KEYS or key in self._sources:
            raise ValueError(f"status section {key!r} is taken")
        self._sources[key] = source

    def remove_status_source(self, source: StatusSource) -> None:
        self._sources = {k: s for k, s in self._sources.items() if s is not source}

    def set_heat_control(self, source: HeatControlSource | None) -> None:
        self._heat_control = source

    def snapshot(self) -> NodeStatus:
        """Everything the node shows, at this moment. Reads only: building it changes
        nothing, so status, events and scrapes may build it as often as they like."""
        energy = self._energy
        figures = NodeFigures(
            node_id=self.node_id,
            name=self.settings.node_name,
            version=__version__,
            api_version=API_VERSION,
            hardware=self.hardware_name,
            memory_bytes=self.memory_bytes,
            uptime_s=self._clock() - self._started,
            heat=self._heat,
            reading=self._reading,
            energy_kwh=energy.total_kwh if energy is not None else 0.0,
            config=self._config,
            max_power_limit_w=self.settings.max_power_w,
            updated_at=datetime.now(UTC),
        )
        heat = self._heat_control
        return NodeStatus(
            node=figures,
            heat=heat.snapshot() if heat is not None else None,
            parts=tuple(source.snapshot() for source in self._sources.values()),
        )

    def status(self) -> dict[str, Any]:
        """The status as /api/status and the SSE stream send it."""
        return self.snapshot().as_dict()

    def publish_status(self, *, urgent: bool = False) -> None:
        """Push the status to subscribers if something changed by enough to matter.

        `urgent`: someone asked for this change (a heat target, the config); it goes out
        at once instead of waiting for the rate limit.
        """
        self._status_events.offer(urgent=urgent)

    # --- sampling ----------------------------------------------------------------------

    async def _sample(self) -> None:
        assert self._hardware is not None
        assert self._energy is not None
        try:
            # Sensors are files (sysfs) or a library (NVML): read them off the loop.
            self._reading = await asyncio.to_thread(self._hardware.read)
        except Exception:  # a flaky sensor must not stop heat accounting
            _LOGGER.exception("hardware read failed on %s", self.hardware_name)
            return
        now = self._clock()
        for listener in self._listeners:
            try:
                listener.on_sample(self._reading, now)
            except Exception:  # heat control failing must not stop heat accounting
                _LOGGER.exception("sample listener %r failed", listener)
        if self._reading.power_w is not None:
            self._energy.add_sample(self._reading.power_w, now, wanted=self.effective_heat.wanted)

    async def _sample_forever(self) -> None:
        assert self._energy is not None
        while True:
            await asyncio.sleep(self.settings.status_interval_s)
            await self._sample()
            # The sample goes out first: a slow disk must not hold back what it shows.
            self.publish_status()
            # An fsync'd write at most every energy_flush_s, off the loop: a busy disk can
            # take long over an fsync. Safe: only this task adds samples, and it waits.
            await asyncio.to_thread(self._energy.maybe_flush, self._clock())
