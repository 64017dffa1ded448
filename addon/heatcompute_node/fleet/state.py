"""What pairing and the role choice leave behind: ``<data_dir>/fleet/state.json``.

Peers are the nodes whose certificates this node accepts (and, for a lead's workers,
where their tunnels are). The role is the last one chosen through the API; without
one, the node starts in the role its settings give (``fleet_worker``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal, get_args

_LOGGER = logging.getLogger(__name__)

type RoleName = Literal["off", "worker", "lead"]
ROLES: tuple[str, ...] = get_args(RoleName.__value__)
STATE_FILE = "state.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Peer:
    node_id: str
    name: str
    certificate: str
    fingerprint: str
    address: str | None = None
    """``host:port`` of the peer's tunnel (a lead needs it for each worker)."""

    def public(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "name": self.name,
            "address": self.address,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    name: RoleName = "off"
    model: str | None = None
    """The lead's split model (its id in /v1/models)."""
    workers: tuple[str, ...] = ()
    """The lead's workers, by node id, in the order their layers follow the lead's."""


@dataclass(slots=True, kw_only=True)
class FleetState:
    peers: dict[str, Peer] = field(default_factory=dict)
    role: Role | None = None
    """None: never chosen through the API (the settings decide)."""

    def to_json(self) -> str:
        role = self.role
        return json.dumps(
            {
                "peers": [
                    {
                        "node_id": p.node_id,
                        "name": p.name,
                        "certificate": p.certificate,
                        "fingerprint": p.fingerprint,
                        "address": p.address,
                    }
                    for p in self.peers.values()
                ],
                "role": None
                if role is None
                else {"name": role.name, "model": role.model, "workers": list(role.workers)},
            },
            indent=2,
        )

    @classmethod
    def parse(cls, text: str) -> FleetState:
        raw = json.loads(text)
        peers = {
            str(p["node_id"]): Peer(
                node_id=str(p["node_id"]),
                name=str(p["name"]),
                certificate=str(p["certificate"]),
                fingerprint=str(p["fingerprint"]),
                address=p.get("address"),
            )
            for p in raw.get("peers", [])
        }
        role_raw = raw.get("role")
        role = None
        if isinstance(role_raw, dict) and role_raw.get("name") in ROLES:
            role = Role(
                name=role_raw["name"],
                model=role_raw.get("model"),
                workers=tuple(str(w) for w in role_raw.get("workers", [])),
            )
        return cls(peers=peers, role=role)


def load(directory: Path) -> FleetState:
    path = directory / STATE_FILE
    try:
        return FleetState.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return FleetState()
    except (OSError, ValueError, KeyError, TypeError) as err:
        # A broken file must not stop the node: it starts unpaired and says why.
        _LOGGER.error("fleet state %s unreadable (%s): starting unpaired", path, err)
        return FleetState()


def save(directory: Path, state: FleetState) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(state.to_json())
        file.flush()
        os.fsync(file.fileno())
    tmp.replace(path)
