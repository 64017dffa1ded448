"""Checks every MCP request passes before a message is read: Host, Origin, bearer.

DNS rebinding is the attack these stop: a web page on evil.example resolves its own name
to this node's address and posts from the browser. Such a request carries
``Host: evil.example`` (refused unless it is an address, a local name or a name the
owner allows) and ``Origin: http://evil.example`` (refused unless loopback, the node
itself, or an origin the owner allows). Clients outside browsers send no Origin.

The Host check guards only requests that carry no bearer token (let in because they come
from a trusted network): a rebinding page cannot present a token it never saw, and
browsers attach no Authorization header by themselves, while real clients (the
integration among them) reach the node by whatever name the owner's network gives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import ipaddress
import socket
from urllib.parse import urlsplit

from .tokens import Grant, TokenStore, TrustedNetworks

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


class RefusedError(Exception):
    """A request refused at the door: HTTP status, reason (for the client and the log)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8765
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    return name in _LOCAL_NAMES or (_is_address(name) and ipaddress.ip_address(name).is_loopback)


@dataclass(frozen=True, slots=True)
class Guard:
    tokens: TokenStore
    trusted: TrustedNetworks
    allowed_hosts: frozenset[str]
    allowed_origins: frozenset[str]

    @classmethod
    def build(
        cls,
        tokens: TokenStore,
        trusted: TrustedNetworks,
        *,
        hosts: Iterable[str] = (),
        origins: Iterable[str] = (),
    ) -> Guard:
        machine = socket.gethostname().lower()
        names = {machine, f"{machine}.local", machine.split(".")[0], *(h.lower() for h in hosts)}
        return cls(
            tokens=tokens,
            trusted=trusted,
            allowed_hosts=frozenset(names),
            allowed_origins=frozenset(o.rstrip("/").lower() for o in origins),
        )

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        name = _host_name(host_header)
        # An address can't be rebound; names must be known.
        return _is_address(name) or name in _LOCAL_NAMES or name in self.allowed_hosts

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True
        if origin.rstrip("/").lower() in self.allowed_origins:
            return True
        name = (urlsplit(origin).hostname or "").lower()
        if not name:
            return False
        return _is_loopback(name) or (host_header is not None and name == _host_name(host_header))

    def check(
        self, *, host: str | None, origin: str | None, authorization: str | None, remote: str | None
    ) -> Grant:
        """The request's grant, or RefusedError with the status the transport answers."""
        if not self.origin_ok(origin, host):
            raise RefusedError(
                403, "origin", f"Origin {origin} is not allowed (setting mcp_allowed_origins)"
            )
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            grant = self.tokens.authenticate(presented.strip())
            if grant is None:
                raise RefusedError(401, "token", "invalid bearer token")
            return grant
        if not self.host_ok(host):
            raise RefusedError(
                421, "host", f"Host {host!r} is not a name of this node (setting mcp_allowed_hosts)"
            )
        grant = self.trusted.grant_for(remote)
        if grant is not None:
            return grant
        raise RefusedError(
            401, "token", "missing bearer token: send 'Authorization: Bearer <token>'"
        )
