"""The worker: ggml's RPC server on 127.0.0.1 and the tunnel end that admits leads.

The work a lead sends here heats this room: it runs in this node's helper process, so
the node's meter counts it (hardware/helpers.py for the simulated one), and it is
useful work asked for by another node. Its share of this node's energy is shown in the
worker's status (CPU time of the RPC server over the node's whole CPU time, times the
energy of each sample interval).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import contextlib
import logging
import os
import ssl
from typing import Any

from ..hardware.base import HardwareReading
from ..hardware.helpers import add_helper, node_cpu_time, remove_helper
from ..heat.accounting import J_PER_KWH
from .memory import available_bytes
from .rpc_server import RpcServerProcess
from .state import Peer
from .tunnel_server import TunnelServer

_LOGGER = logging.getLogger(__name__)
RESTART_DELAY_S = 1.0


class Worker:
    def __init__(
        self,
        *,
        node_id: str,
        name: str,
        host: str,
        port: int,
        threads: int,
        tls: Callable[[], ssl.SSLContext],
        peers: Callable[[], Mapping[str, Peer]],
    ) -> None:
        self.node_id, self.name = node_id, name
        self.rpc = RpcServerProcess(threads or (os.cpu_count() or 2))
        self.tunnel = TunnelServer(
            host,
            port,
            rpc_endpoint=lambda: self.rpc.endpoint,
            tls=tls,
            peers=peers,
            ping=self._ping,
        )
        self.energy_kwh = 0.0
        self._last: tuple[float, float, float] | None = None
        """(time, RPC server CPU s, node CPU s) at the previous sample."""
        self._helper: int | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.rpc.start()
        self._helper = add_helper(self.rpc.cpu_s)
        await self.tunnel.start()
        self._watch = asyncio.create_task(self._keep_rpc_running(), name="fleet-rpc-watch")
        _LOGGER.info(
            "fleet worker: tunnel on %s:%d, ggml RPC server on %s",
            self.tunnel.host,
            self.tunnel.port,
            self.rpc.endpoint,
        )

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.tunnel.stop()
        await self.rpc.stop()
        if self._helper is not None:
            remove_helper(self._helper)

    async def _keep_rpc_running(self) -> None:
        while True:
            code = await self.rpc.wait()
            _LOGGER.warning("ggml's RPC server ended (%s): starting it again", code)
            await asyncio.sleep(RESTART_DELAY_S)
            try:
                await self.rpc.start()
            except (RuntimeError, OSError, TimeoutError) as err:
                _LOGGER.error("ggml's RPC server does not start: %s", err)

    def _ping(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "name": self.name,
            "free_memory": available_bytes(),
            "serving": self.tunnel.stats.lead,
        }

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        """The share of this sample's energy that was work for a lead."""
        rpc_cpu, node_cpu = self.rpc.cpu_s(), node_cpu_time()
        last, self._last = self._last, (now, rpc_cpu, node_cpu)
        if last is None or reading.power_w is None:
            return
        dt, d_rpc, d_node = now - last[0], rpc_cpu - last[1], node_cpu - last[2]
        if dt <= 0 or d_rpc <= 0 or d_node <= 0:
            return
        share = min(1.0, d_rpc / d_node)
        self.energy_kwh += reading.power_w * dt * share / J_PER_KWH
