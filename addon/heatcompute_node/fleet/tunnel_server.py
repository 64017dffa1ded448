"""The worker's end of the tunnel: admits paired leads, refuses everyone else.

A connection is plain TCP until the TLS handshake (made per connection with the
current pairing, so pairing changes need no restart). A peer whose certificate was
not paired fails the handshake and is counted as refused. After the handshake the
peer says what it wants in one byte: ``P`` (ping: this node's free memory as one JSON
line) or ``R`` (a stream to ggml's RPC server on 127.0.0.1, for as long as it lasts).
ggml's server serves one connection at a time and queues the others; llama.cpp opens a
new one while its last is still closing, so streams are never turned away here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
import contextlib
from dataclasses import dataclass, field
import json
import logging
import ssl
from typing import Any

from .keys import der_fingerprint
from .pipe import Connections, Traffic, pipe
from .state import Peer
from .tls import HANDSHAKE_TIMEOUT_S, keep_alive

_LOGGER = logging.getLogger(__name__)

OP_PING = b"P"
OP_RPC = b"R"
_OP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class TunnelServerStats:
    traffic: Traffic
    refused: int = 0
    last_refusal: str | None = None
    streams: dict[str, int] = field(default_factory=dict)
    """Open RPC streams per lead (node id)."""

    @property
    def lead(self) -> str | None:
        """The lead whose RPC streams are open, if any."""
        return next(iter(self.streams), None)


class TunnelServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        rpc_endpoint: Callable[[], str | None],
        tls: Callable[[], ssl.SSLContext],
        peers: Callable[[], Mapping[str, Peer]],
        ping: Callable[[], dict[str, Any]],
    ) -> None:
        self.host, self.port = host, port
        self._rpc_endpoint = rpc_endpoint
        self._tls = tls
        self._peers = peers
        self._ping = ping
        self.stats = TunnelServerStats(traffic=Traffic())
        self._server: asyncio.Server | None = None
        self._streams = Connections()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._streams.end_all()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._streams.carry(writer, self._serve(reader, writer))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        keep_alive(writer.get_extra_info("socket"))
        peer_address = writer.get_extra_info("peername")
        try:
            await writer.start_tls(self._tls(), ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
        except (ssl.SSLError, OSError, TimeoutError) as err:
            self._refuse(f"{peer_address}: TLS handshake refused ({err})")
            return
        peer = self._paired_peer(writer)
        if peer is None:
            self._refuse(f"{peer_address}: certificate not paired")
            return
        try:
            op = await asyncio.wait_for(reader.readexactly(1), _OP_TIMEOUT_S)
        except (asyncio.IncompleteReadError, OSError, TimeoutError):
            return
        if op == OP_PING:
            writer.write(json.dumps(self._ping()).encode() + b"\n")
            with contextlib.suppress(OSError):
                await writer.drain()
        elif op == OP_RPC:
            await self._rpc_stream(peer, reader, writer)

    async def _rpc_stream(
        self, peer: Peer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        endpoint = self._rpc_endpoint()
        if endpoint is None:
            _LOGGER.warning("RPC stream for %s: ggml's RPC server is not running", peer.name)
            return
        host, _, port = endpoint.rpartition(":")
        try:
            rpc = await asyncio.open_connection(host, int(port))
        except OSError as err:
            _LOGGER.warning("ggml's RPC server at %s: %s", endpoint, err)
            return
        streams = self.stats.streams
        streams[peer.node_id] = streams.get(peer.node_id, 0) + 1
        _LOGGER.debug("lead %s (%s) connected to the RPC server", peer.name, peer.node_id)
        try:
            # Seen from the worker: "sent" goes to the lead (results), "received" from it.
            how = await pipe(rpc, (reader, writer), self.stats.traffic)
        finally:
            streams[peer.node_id] -= 1
            if not streams[peer.node_id]:
                del streams[peer.node_id]
        _LOGGER.debug("lead %s's RPC stream ended (%s)", peer.name, how)

    def _paired_peer(self, writer: asyncio.StreamWriter) -> Peer | None:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        fingerprint = der_fingerprint(der)
        for peer in self._peers().values():
            if peer.fingerprint == fingerprint:
                return peer
        return None

    def _refuse(self, why: str) -> None:
        self.stats.refused += 1
        self.stats.last_refusal = why
        _LOGGER.warning("fleet tunnel refused %s", why)
