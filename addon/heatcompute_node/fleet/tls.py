"""Mutual TLS between paired nodes, and sockets that notice a lost peer within seconds.

Each side trusts exactly the certificates it was given at pairing (each its own
anchor; no authority, no host names). A handshake with anything else fails: that is
the tunnel's refusal. TCP keepalive and a user timeout bound how long a dead peer or
a cut cable goes unnoticed, idle or mid-transfer.
"""

from __future__ import annotations

from collections.abc import Iterable
import socket
import ssl

from .keys import NodeKey

KEEPALIVE_IDLE_S = 1
KEEPALIVE_INTERVAL_S = 1
KEEPALIVE_PROBES = 3
USER_TIMEOUT_MS = 4000
"""Sent data unacknowledged this long: the connection is dead (a cable, a crash)."""
HANDSHAKE_TIMEOUT_S = 5.0


def context(key: NodeKey, peer_certificates: Iterable[str], *, server: bool) -> ssl.SSLContext:
    """A TLS 1.3 context that shows this node's certificate and accepts only the peers'."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(key.cert_path, key.key_path)
    ctx.check_hostname = False  # pinned certificates, not names
    ctx.verify_mode = ssl.CERT_REQUIRED
    pems = "".join(peer_certificates)
    if pems:
        ctx.load_verify_locations(cadata=pems)
    # With no peer loaded nothing verifies: every handshake is refused.
    return ctx


def keep_alive(sock: socket.socket | None) -> None:
    """Keepalive probes every second after one idle second, and a user timeout."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hasattr(socket, "TCP_KEEPIDLE"):  # Linux; the add-on and CI run there
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
