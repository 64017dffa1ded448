"""The lead's end of the tunnel to one worker: a port on 127.0.0.1 for llama.cpp.

llama.cpp's RPC client connects to ``127.0.0.1:<local port>``; each such connection is
carried over mutual TLS to the worker (pinned to the worker's paired certificate) and
counted. When the worker's side ends (the worker stopped, the network is gone: the
socket options in tls.py notice within seconds), the local side is closed at once and
the owner is told, so no request waits on a worker that is not there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import logging
import ssl
from typing import Any

from .pipe import Connections, Traffic, pipe
from .state import Peer
from .tls import HANDSHAKE_TIMEOUT_S, keep_alive
from .tunnel_server import OP_PING, OP_RPC

_LOGGER = logging.getLogger(__name__)
PING_TIMEOUT_S = 3.0


class WorkerUnreachableError(ConnectionError):
    """The worker's tunnel did not answer, or refused this node."""


class WorkerLink:
    def __init__(
        self,
        peer: Peer,
        tls: Callable[[], ssl.SSLContext],
        on_lost: Callable[[str, str], None],
    ) -> None:
        if not peer.address:
            raise ValueError(f"worker {peer.name} was paired without a tunnel address")
        self.peer = peer
        self._host, _, port = peer.address.rpartition(":")
        self._port = int(port)
        self._tls = tls
        self._on_lost = on_lost
        self.traffic = Traffic()
        self._listener: asyncio.Server | None = None
        self._streams = Connections()
        self.local_endpoint: str | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._tls(),
                    server_hostname=self._host,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
                ),
                PING_TIMEOUT_S + HANDSHAKE_TIMEOUT_S,
            )
        except (OSError, ssl.SSLError, TimeoutError) as err:
            raise WorkerUnreachableError(
                f"worker {self.peer.name} ({self.peer.address}): {err or type(err).__name__}"
            ) from err
        keep_alive(writer.get_extra_info("socket"))
        return reader, writer

    async def ping(self) -> dict[str, Any]:
        """The worker's answer (its free memory...); raises WorkerUnreachableError."""
        reader, writer = await self._connect()
        try:
            writer.write(OP_PING)
            line = await asyncio.wait_for(reader.readline(), PING_TIMEOUT_S)
            answer = json.loads(line)
        except (OSError, ssl.SSLError, TimeoutError, ValueError) as err:
            # A refused certificate shows here: TLS 1.3 reports it after the handshake.
            raise WorkerUnreachableError(
                f"worker {self.peer.name} ({self.peer.address}): {err or type(err).__name__}"
            ) from err
        finally:
            writer.close()
        if not isinstance(answer, dict):
            raise WorkerUnreachableError(f"worker {self.peer.name}: a ping answer not understood")
        return answer

    async def open(self) -> str:
        """Listen on 127.0.0.1 for llama.cpp; returns ``127.0.0.1:<port>``."""
        if self._listener is None:
            self._listener = await asyncio.start_server(self._accept, "127.0.0.1", 0)
            port = self._listener.sockets[0].getsockname()[1]
            self.local_endpoint = f"127.0.0.1:{port}"
        assert self.local_endpoint is not None
        return self.local_endpoint

    async def close(self) -> None:
        """Stop listening and end every stream (the owner is not told: it asked)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self.local_endpoint = None
        await self._streams.end_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._streams.carry(writer, self._carry(reader, writer))

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            remote = await self._connect()
            remote[1].write(OP_RPC)
        except WorkerUnreachableError as err:
            self._on_lost(self.peer.node_id, str(err))
            return
        how = await pipe((reader, writer), remote, self.traffic)
        _LOGGER.debug("RPC stream to %s ended: %s", self.peer.name, how)
        if not how.startswith("local"):
            self._on_lost(
                self.peer.node_id, f"worker {self.peer.name} ({self.peer.address}): {how}"
            )
