"""The bridge through the real `mcp` SDK client (1.12.4) over Streamable HTTP, and its
SQLite tools while another process keeps writing the database in WAL mode."""

from __future__ import annotations

import asyncio
from datetime import timedelta
import json
from pathlib import Path
import sys
from typing import Any

from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamablehttp_client
import pytest

from heatcompute_node.app import create_app

from .conftest import TOKEN, MakeClient, NodeClient, StaticHardware
from .mcp_home import ENERGY, NOW, TEMPERATURE, House, build_house, call


@pytest.fixture
def house(tmp_path: Path) -> House:
    return build_house(tmp_path)


@pytest.fixture
async def mcp(socket_enabled: None, house: House, make_client: MakeClient) -> NodeClient:
    return await make_client(create_app(house.settings(), hardware=StaticHardware()))


def _url(client: NodeClient) -> str:
    return f"http://127.0.0.1:{client.port}/mcp"


def _json(result: object) -> dict[str, Any]:
    content = result.content  # type: ignore[attr-defined]
    parsed: dict[str, Any] = json.loads(content[0].text)
    return parsed


async def test_sdk_client_lists_and_calls_every_tool(mcp: NodeClient, house: House) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        streamablehttp_client(_url(mcp), headers=auth) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        assert init.serverInfo.name == "heatcompute"
        assert init.protocolVersion == "2025-06-18"  # the SDK's newest; we speak it
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert len(tools) == 11
        assert all(tool.annotations and tool.annotations.readOnlyHint for tool in tools.values())

        folders = await session.call_tool("list_allowed_folders", {})
        assert _json(folders)["folders"] == [str(house.share.resolve())]
        listing = _json(await session.call_tool("list_folder", {"path": str(house.share)}))
        assert "notes" in {e["name"] for e in listing["entries"]}
        found = _json(await session.call_tool("search_files", {"pattern": "*.md"}))
        assert any(m.endswith("heating.md") for m in found["matches"])
        text = _json(
            await session.call_tool("read_text_file", {"path": str(house.notes), "head": 1})
        )
        assert text["text"] == "# Heating\n"
        info = _json(await session.call_tool("file_info", {"path": str(house.notes)}))
        assert info["type"] == "file"
        assert info["mime_type"] == "text/markdown"

        databases = _json(await session.call_tool("list_databases", {}))
        assert [d["name"] for d in databases["databases"]] == ["home-assistant_v2", "inventory"]
        tables = _json(await session.call_tool("list_tables", {"database": "inventory"}))
        assert tables["tables"] == [{"name": "items", "type": "table"}]
        described = _json(
            await session.call_tool("describe_table", {"database": "inventory", "table": "items"})
        )
        assert described["columns"][0] == {
            "name": "id",
            "type": "INTEGER",
            "nullable": True,
            "primary_key": True,
        }
        rows = _json(
            await session.call_tool(
                "query_database",
                {"database": "inventory", "sql": "SELECT name FROM items ORDER BY id"},
            )
        )
        assert rows["rows"] == [["heater"], ["lamp"]]

        # History and statistics come from the recorder database.
        start = (NOW - timedelta(hours=24)).isoformat()
        history = _json(
            await session.call_tool(
                "ha_get_history",
                {
                    "entity_id": TEMPERATURE,
                    "start": start,
                    "end": NOW.isoformat(),
                    "max_points": 50,
                },
            )
        )
        assert len(history["points"]) == 50
        assert history["points"][-1]["last_changed"] <= NOW.isoformat()
        stats = _json(
            await session.call_tool(
                "ha_get_statistics",
                {
                    "statistic_ids": [ENERGY, TEMPERATURE, "sensor.nothing"],
                    "start": start,
                    "end": NOW.isoformat(),
                    "period": "day",
                },
            )
        )
        energy = stats["statistics"][ENERGY]
        assert len(energy) == 2  # 24 hours from noon to noon span two UTC days
        assert sum(row.get("change", 0) for row in energy) == pytest.approx(0.5 * 12)
        assert stats["unknown_ids"] == ["sensor.nothing"]
        hourly = _json(
            await session.call_tool(
                "ha_get_statistics",
                {"statistic_ids": [TEMPERATURE], "start": start, "end": NOW.isoformat()},
            )
        )
        assert len(hourly["statistics"][TEMPERATURE]) == 24

        # Live state needs Home Assistant's API, which this node was not given: the
        # tools that would need it are not offered, and calling one is a protocol error.
        assert "ha_get_state" not in tools
        with pytest.raises(McpError, match="Unknown tool"):
            await session.call_tool("ha_get_state", {"entity_id": TEMPERATURE})

        # A failure inside a tool is a result, not an exception, through the SDK too.
        refused = await session.call_tool(
            "query_database", {"database": "inventory", "sql": "DELETE FROM items"}
        )
        assert refused.isError


async def test_sdk_client_with_a_wrong_token_fails(mcp: NodeClient) -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the SDK wraps it in a group
        async with (
            streamablehttp_client(
                _url(mcp), headers={"Authorization": "Bearer nope-0123456789abcdef"}
            ) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await asyncio.wait_for(session.initialize(), 10)
    assert "401" in repr(raised.value) or "Unauthorized" in repr(raised.value)


async def test_queries_work_while_another_process_writes_in_wal_mode(
    mcp: NodeClient, house: House
) -> None:
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("mcp_wal_writer.py")),
        str(house.recorder),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdout is not None
    assert writer.stdin is not None
    assert (await asyncio.wait_for(writer.stdout.readline(), 30)).strip() == b"ready"
    counts = []
    for _ in range(20):
        is_error, result = await call(
            mcp, "query_database", database="home-assistant_v2", sql="SELECT count(*) FROM states"
        )
        assert not is_error, result
        counts.append(result["rows"][0][0])
    writer.stdin.close()
    written = int((await asyncio.wait_for(writer.stdout.readline(), 30)).strip())
    await writer.wait()
    assert writer.returncode == 0
    # Every read saw a committed state, and the writer was never blocked for good.
    assert counts == sorted(counts)
    assert counts[-1] > 600
    assert written > 0
