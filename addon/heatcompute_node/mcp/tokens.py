"""Who may call which tools: bearer tokens with scopes, revocable by the owner.

Three kinds of grant reach the bridge:

- the node's own token (the one Home Assistant's integration holds): every scope;
- MCP tokens the owner lists in the settings (``name:scope+scope:token``), or creates and
  revokes at run time through ``/api/mcp/tokens`` (kept in ``<data dir>/mcp_tokens.json``
  as SHA-256 hashes only, so the file never holds a usable secret);
- requests from a trusted network without a token (off unless the owner lists one; the
  add-on's Supervisor network, for Home Assistant's own ``mcp`` client).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
import hashlib
import hmac
import ipaddress
import json
import os
from pathlib import Path
import re
import secrets
import threading
from typing import Literal, cast, get_args

type Scope = Literal["files", "databases", "homeassistant"]
SCOPES: tuple[Scope, ...] = get_args(Scope.__value__)
ALL_SCOPES: frozenset[Scope] = frozenset(SCOPES)
TOKENS_FILE_NAME = "mcp_tokens.json"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch: "$" lets a trailing newline in


class TokenSpecError(ValueError):
    """A token or network setting the bridge cannot use."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What one request may reach: the grant's name (for the log) and its scopes."""

    name: str
    scopes: frozenset[Scope]


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """``files+databases`` (or ``files,databases``, or a list) -> the scopes; unknown ones fail."""
    items = re.split(r"[+,\s]+", text) if isinstance(text, str) else list(text)
    scopes = {item.strip().lower() for item in items if item.strip()}
    unknown = sorted(scopes - set(SCOPES))
    if unknown:
        raise TokenSpecError(
            f"unknown MCP scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}"
        )
    if not scopes:
        raise TokenSpecError("an MCP token needs at least one scope")
    return frozenset(cast("set[Scope]", scopes))


@dataclass(frozen=True, slots=True)
class TokenSpec:
    """A token from the settings: ``name:scope+scope:token``."""

    name: str
    scopes: frozenset[Scope]
    token: str

    @classmethod
    def parse(cls, text: str) -> TokenSpec:
        name, sep1, rest = text.partition(":")
        scopes, sep2, token = rest.partition(":")
        if not (sep1 and sep2):
            raise TokenSpecError("an MCP token setting reads name:scope+scope:token")
        if not _NAME.fullmatch(name):
            raise TokenSpecError(f"MCP token name {name!r}: letters, digits, _ . - only")
        if len(token) < 16:
            raise TokenSpecError(f"MCP token {name!r} is shorter than 16 characters")
        return cls(name=name, scopes=parse_scopes(scopes), token=token)


@dataclass(frozen=True, slots=True)
class TrustedNetworks:
    """Networks whose requests need no token, and the scopes they get."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    scopes: frozenset[Scope]

    @classmethod
    def parse(cls, cidrs: Iterable[str], scopes: Iterable[str]) -> TrustedNetworks:
        try:
            networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        except ValueError as err:
            raise TokenSpecError(f"MCP trusted network: {err}") from err
        return cls(networks, parse_scopes(scopes) if networks else frozenset())

    def grant_for(self, remote: str | None) -> Grant | None:
        if not self.networks or not remote:
            return None
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return None
        if any(address in network for network in self.networks):
            return Grant(name=f"trusted network ({remote})", scopes=self.scopes)
        return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token created at run time; only its hash is kept."""

    name: str
    scopes: frozenset[Scope]
    created_at: str
    digest: bytes


class TokenStore:
    """Answers "who is this bearer?" for the bridge. Thread-safe; revocation is immediate."""

    def __init__(
        self, node_token: str, specs: Iterable[TokenSpec] = (), data_dir: Path | None = None
    ) -> None:
        self._fixed: list[tuple[bytes, Grant]] = [(_digest(node_token), Grant("node", ALL_SCOPES))]
        self._configured = {spec.name for spec in specs}
        self._fixed.extend((_digest(s.token), Grant(s.name, s.scopes)) for s in specs)
        self._path = data_dir / TOKENS_FILE_NAME if data_dir is not None else None
        self._lock = threading.Lock()
        self._stored: dict[str, StoredToken] = self._load()

    def authenticate(self, presented: str) -> Grant | None:
        digest = _digest(presented)
        found: Grant | None = None
        with self._lock:
            candidates = [
                *self._fixed,
                *((t.digest, Grant(t.name, t.scopes)) for t in self._stored.values()),
            ]
        # Every candidate is compared (constant time each), so timing says nothing about
        # which token nearly matched.
        for known, grant in candidates:
            if hmac.compare_digest(digest, known):
                found = grant
        return found

    def create(self, name: str, scopes: frozenset[Scope]) -> str:
        """A new token (returned once, never stored in clear)."""
        if not _NAME.fullmatch(name):
            raise TokenSpecError(f"token name {name!r}: letters, digits, _ . - only (1-64)")
        if not scopes:
            raise TokenSpecError("a token needs at least one scope")
        token = "hcm_" + secrets.token_urlsafe(32)
        with self._lock:
            if name in self._stored or name in self._configured or name == "node":
                raise TokenSpecError(f"a token named {name!r} exists already")
            self._stored[name] = StoredToken(
                name=name,
                scopes=scopes,
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                digest=_digest(token),
            )
            self._save()
        return token

    def revoke(self, name: str) -> bool:
        with self._lock:
            if self._stored.pop(name, None) is None:
                return False
            self._save()
            return True

    def is_configured(self, name: str) -> bool:
        return name in self._configured

    def listing(self) -> list[dict[str, object]]:
        with self._lock:
            stored = list(self._stored.values())
        rows: list[dict[str, object]] = [
            {"name": grant.name, "scopes": sorted(grant.scopes), "source": "settings"}
            for _, grant in self._fixed[1:]
        ]
        rows.extend(
            {
                "name": t.name,
                "scopes": sorted(t.scopes),
                "source": "api",
                "created_at": t.created_at,
            }
            for t in stored
        )
        return rows

    def _load(self) -> dict[str, StoredToken]:
        if self._path is None or not self._path.exists():
            return {}
        raw = json.loads(self._path.read_text(encoding="utf-8"))
        return {
            item["name"]: StoredToken(
                name=item["name"],
                scopes=parse_scopes(item["scopes"]),
                created_at=item["created_at"],
                digest=bytes.fromhex(item["sha256"]),
            )
            for item in raw.get("tokens", [])
        }

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "tokens": [
                {
                    "name": t.name,
                    "scopes": sorted(t.scopes),
                    "created_at": t.created_at,
                    "sha256": t.digest.hex(),
                }
                for t in self._stored.values()
            ]
        }
        tmp = self._path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=1)
        os.replace(tmp, self._path)
