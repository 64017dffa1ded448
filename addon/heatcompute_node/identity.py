"""The node's stable identity: Home Assistant's unique id for the device."""

from __future__ import annotations

from pathlib import Path
import secrets

NODE_ID_FILE = "node_id"


def load_or_create_node_id(data_dir: Path) -> str:
    """A random 12-hex-digit id, created once and kept in the data directory.

    Random rather than derived from a MAC address: containers and VMs change MACs, and
    Home Assistant must keep recognising the same node across those.
    """
    path = data_dir / NODE_ID_FILE
    if path.is_file():
        node_id = path.read_text(encoding="utf-8").strip()
        if len(node_id) == 12 and all(c in "0123456789abcdef" for c in node_id):
            return node_id
    data_dir.mkdir(parents=True, exist_ok=True)
    node_id = secrets.token_hex(6)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(node_id + "\n", encoding="utf-8")
    tmp.replace(path)
    return node_id
