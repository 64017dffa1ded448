"""A small house for the MCP bridge's tests: shared folders, a secret beside them, a
recorder-like database, and a node serving them on 127.0.0.1."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import hashlib
import json
from pathlib import Path
import sqlite3
from typing import Any

from aiohttp import ClientResponse

from heatcompute_node.settings import Settings

from .conftest import TOKEN, NodeClient

FILES_TOKEN = "files-only-token-0123456789"
DB_TOKEN = "databases-only-token-0123456789"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ENERGY = "sensor.heater_energy"
TEMPERATURE = "sensor.living_room_temperature"


@dataclass(frozen=True)
class House:
    root: Path
    share: Path
    sibling: Path
    secret: Path
    notes: Path
    recorder: Path
    inventory: Path

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "data_dir": self.root / "data",
            "token": TOKEN,
            "zeroconf": False,
            "status_interval_s": 0.05,
            "mcp_folders": (self.share,),
            "mcp_databases": (self.recorder, self.inventory),
            "mcp_recorder_db": self.recorder,
            "mcp_tokens": (f"webui:files:{FILES_TOKEN}", f"sql:databases:{DB_TOKEN}"),
        }
        values.update(overrides)
        return Settings(**values)


def build_recorder(
    path: Path, *, now: datetime = NOW, hours: int = 48, state_rows: int = 0
) -> None:
    """A database with the recorder's tables and columns (the parts the tools read):
    hourly long-term statistics for an energy meter and a thermometer, and a state every
    few minutes for the thermometer (`state_rows` of them, ending at `now`)."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        PRAGMA journal_mode = WAL;
        CREATE TABLE states_meta (metadata_id INTEGER PRIMARY KEY, entity_id VARCHAR(255));
        CREATE TABLE states (
            state_id INTEGER PRIMARY KEY, state VARCHAR(255), last_changed_ts FLOAT,
            last_updated_ts FLOAT, metadata_id INTEGER, attributes_id INTEGER,
            old_state_id INTEGER);
        CREATE INDEX ix_states_metadata_id_last_updated_ts ON states (metadata_id, last_updated_ts);
        CREATE TABLE statistics_meta (
            id INTEGER PRIMARY KEY, statistic_id VARCHAR(255), source VARCHAR(32),
            unit_of_measurement VARCHAR(255), has_mean BOOLEAN, has_sum BOOLEAN, name VARCHAR(255));
        CREATE TABLE statistics (
            id INTEGER PRIMARY KEY, created_ts FLOAT, metadata_id INTEGER, start_ts FLOAT,
            mean FLOAT, min FLOAT, max FLOAT, last_reset_ts FLOAT, state FLOAT, sum FLOAT);
        CREATE TABLE statistics_short_term (
            id INTEGER PRIMARY KEY, created_ts FLOAT, metadata_id INTEGER, start_ts FLOAT,
            mean FLOAT, min FLOAT, max FLOAT, last_reset_ts FLOAT, state FLOAT, sum FLOAT);
        """
    )
    db.execute("INSERT INTO states_meta VALUES (1, ?)", (TEMPERATURE,))
    db.executemany(
        "INSERT INTO statistics_meta VALUES (?, ?, 'recorder', ?, ?, ?, ?)",
        [(1, ENERGY, "kWh", 0, 1, "Heater energy"), (2, TEMPERATURE, "°C", 1, 0, "Living room")],
    )
    start = now - timedelta(hours=hours)
    rows: list[
        tuple[
            float, int, float, float | None, float | None, float | None, float | None, float | None
        ]
    ] = []
    for hour in range(hours):
        ts = (start + timedelta(hours=hour)).timestamp()
        # The heater draws 0.5 kWh every hour: the running sum grows by 0.5.
        rows.append((ts, 1, ts, None, None, None, 0.5 * (hour + 1), 0.5 * (hour + 1)))
        rows.append((ts, 2, ts, 20.0 + hour % 3, 19.0, 22.0, None, None))
    db.executemany(
        "INSERT INTO statistics (created_ts, metadata_id, start_ts, mean, min, max, state, sum) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    if state_rows:
        step = 300.0
        first = now.timestamp() - step * state_rows
        db.executemany(
            "INSERT INTO states (state, last_changed_ts, last_updated_ts, metadata_id) "
            "VALUES (?, NULL, ?, 1)",
            ((f"{20 + (i % 40) / 10:.1f}", first + i * step) for i in range(state_rows)),
        )
    db.commit()
    db.close()


def build_house(root: Path) -> House:
    share = root / "share"
    (share / "notes").mkdir(parents=True)
    sibling = root / "share_evil"  # shares a prefix with "share", but isn't inside it
    sibling.mkdir()
    (sibling / "stolen.txt").write_text("sibling secret\n")
    secret = root / "secret.txt"
    secret.write_text("top secret\n")
    notes = share / "notes" / "heating.md"
    notes.write_text("# Heating\n" + "".join(f"line {i}\n" for i in range(1, 101)))
    (share / "photo.jpg").write_bytes(b"\xff\xd8\xff\x00\x10JFIF" + bytes(200))
    (share / "link_out.txt").symlink_to(secret)
    (share / "link_dir_out").symlink_to(root)
    (share / "link_in.md").symlink_to(notes)
    line = b"x" * 1023 + b"\n"
    (share / "huge.log").write_bytes(b"first line\n" + line * (5 * 1024) + b"last line\n")
    recorder = root / "config" / "home-assistant_v2.db"
    recorder.parent.mkdir()
    build_recorder(recorder, state_rows=600)
    inventory = root / "inventory.db"
    db = sqlite3.connect(inventory)
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, room TEXT)")
    db.executemany(
        "INSERT INTO items (name, room) VALUES (?, ?)", [("heater", "office"), ("lamp", "hall")]
    )
    db.commit()
    db.close()
    return House(root, share, sibling, secret, notes, recorder, inventory)


def file_digest(path: Path) -> str:
    """The database and its WAL side files, as bytes: nothing a query does may change them."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + "-wal")):
        if part.exists():
            digest.update(part.read_bytes())
    return digest.hexdigest()


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def headers(token: str | None = TOKEN, **extra: str) -> dict[str, str]:
    out = dict(MCP_HEADERS)
    if token is not None:
        out["Authorization"] = f"Bearer {token}"
    out.update(extra)
    return out


async def post(
    client: NodeClient, body: Any, token: str | None = TOKEN, **extra: str
) -> ClientResponse:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return await client.post("/mcp", data=data, headers=headers(token, **extra))


async def rpc(
    client: NodeClient, method: str, params: dict[str, Any] | None = None, token: str | None = TOKEN
) -> dict[str, Any]:
    response = await post(
        client, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}}, token
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    assert body["id"] == 7
    return body


async def call(
    client: NodeClient, tool: str, token: str | None = TOKEN, **arguments: Any
) -> tuple[bool, Any]:
    """(is_error, the tool's JSON result or its error text)."""
    body = await rpc(client, "tools/call", {"name": tool, "arguments": arguments}, token)
    result = body["result"]
    text = result["content"][0]["text"]
    return result["isError"], text if result["isError"] else json.loads(text)
