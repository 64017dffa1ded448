"""The /mcp endpoint over raw HTTP: the handshake, every error code, the old SSE pair.

A real node app on 127.0.0.1; requests are written by hand so that each one is exactly
the malformed or unusual message a test is about.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from heatcompute_node.app import create_app

from .conftest import MakeClient, NodeClient, StaticHardware
from .mcp_home import House, build_house, call, headers, post, rpc

VERSIONS = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"]


@pytest.fixture
def house(tmp_path: Path) -> House:
    return build_house(tmp_path)


@pytest.fixture
async def mcp(socket_enabled: None, house: House, make_client: MakeClient) -> NodeClient:
    return await make_client(create_app(house.settings(), hardware=StaticHardware()))


@pytest.mark.parametrize("version", VERSIONS)
async def test_initialize_answers_every_supported_version(mcp: NodeClient, version: str) -> None:
    body = await rpc(
        mcp,
        "initialize",
        {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    )
    result = body["result"]
    assert result["protocolVersion"] == version
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "heatcompute"


async def test_initialize_with_an_unknown_version_offers_the_newest(mcp: NodeClient) -> None:
    body = await rpc(mcp, "initialize", {"protocolVersion": "2099-01-01", "capabilities": {}})
    assert body["result"]["protocolVersion"] == "2025-11-25"


async def test_stateless_no_session_header_and_ping(mcp: NodeClient) -> None:
    response = await post(
        mcp,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-11-25"},
        },
    )
    assert "Mcp-Session-Id" not in response.headers
    assert (await rpc(mcp, "ping"))["result"] == {}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_get_and_delete_are_405(mcp: NodeClient, method: str) -> None:
    response = await mcp.request(method, "/mcp", headers=headers())
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert (await response.json())["error"]["code"] == -32600


async def test_notifications_and_responses_get_202_without_body(mcp: NodeClient) -> None:
    for message in (
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
        {"jsonrpc": "2.0", "id": 5, "result": {}},
    ):
        response = await post(mcp, message)
        assert response.status == 202, message
        assert await response.read() == b""


async def test_protocol_version_header_is_checked(mcp: NodeClient) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    for good in VERSIONS:
        assert (await post(mcp, message, **{"MCP-Protocol-Version": good})).status == 200
    for bad in ("1900-01-01", "not-a-version"):
        response = await post(mcp, message, **{"MCP-Protocol-Version": bad})
        assert response.status == 400
        error = (await response.json())["error"]
        assert "MCP-Protocol-Version" in error["message"]


async def test_parse_error(mcp: NodeClient) -> None:
    response = await post(mcp, b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert response.status == 400
    body = await response.json()
    assert body["id"] is None
    assert body["error"]["code"] == -32700


@pytest.mark.parametrize(
    "message",
    [
        [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],  # batches left the spec in 2025-06-18
        {"id": 1, "method": "ping"},  # no "jsonrpc"
        {"jsonrpc": "2.0", "id": 1},  # no method
        {"jsonrpc": "2.0", "id": [1], "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1, 2]},
        # Found by a random fuzzing seed: a response with params that are no object.
        {"jsonrpc": "2.0", "id": 5, "result": [], "params": "x"},
        "just a string",
    ],
)
async def test_invalid_request(mcp: NodeClient, message: Any) -> None:
    response = await post(mcp, json.dumps(message))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == -32600


async def test_an_id_written_as_a_whole_float_is_an_integer(mcp: NodeClient) -> None:
    """JSON Schema (and so the OpenAPI document) counts 1.0 as an integer."""
    response = await post(mcp, json.dumps({"jsonrpc": "2.0", "id": 1.0, "method": "ping"}))
    assert response.status == 200
    body = await response.json()
    assert body["id"] == 1
    assert body["result"] == {}


@pytest.mark.parametrize(
    "method", ["server/discover", "resources/list", "prompts/list", "tools/delete"]
)
async def test_unknown_method(mcp: NodeClient, method: str) -> None:
    body = await rpc(mcp, method)
    assert body["error"]["code"] == -32601
    assert method in body["error"]["message"]


async def test_unknown_tool_is_invalid_params(mcp: NodeClient) -> None:
    body = await rpc(mcp, "tools/call", {"name": "rm_rf", "arguments": {}})
    assert body["error"]["code"] == -32602
    assert "Unknown tool: rm_rf" in body["error"]["message"]
    body = await rpc(mcp, "tools/call", {"arguments": {}})
    assert body["error"]["code"] == -32602


async def test_bad_arguments_are_tool_errors(mcp: NodeClient) -> None:
    is_error, text = await call(mcp, "read_text_file")
    assert is_error
    assert "missing argument(s): path" in text
    is_error, text = await call(mcp, "read_text_file", path="a", colour="red")
    assert is_error
    assert "unknown argument(s) colour" in text
    is_error, text = await call(mcp, "read_text_file", path="a", head="many")
    assert is_error
    assert "head must be a whole number" in text
    is_error, text = await call(mcp, "ha_get_statistics", statistic_ids=["sensor.x"], period="year")
    assert is_error
    assert "period must be one of" in text


async def test_content_type_accept_and_size(mcp: NodeClient) -> None:
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    response = await mcp.post(
        "/mcp", data=message, headers=headers(**{"Content-Type": "text/plain"})
    )
    assert response.status == 415
    response = await mcp.post("/mcp", data=message, headers=headers(Accept="text/html"))
    assert response.status == 406
    huge = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "a" * 2_000_000}}
    )
    response = await mcp.post("/mcp", data=huge, headers=headers())
    assert response.status == 413
    # The node is still there.
    assert (await rpc(mcp, "ping"))["result"] == {}


async def test_tools_list_is_flat_and_read_only(mcp: NodeClient) -> None:
    tools = (await rpc(mcp, "tools/list"))["result"]["tools"]
    names = {tool["name"] for tool in tools}
    assert names == {
        "list_allowed_folders",
        "list_folder",
        "search_files",
        "read_text_file",
        "file_info",
        "list_databases",
        "list_tables",
        "describe_table",
        "query_database",
        "ha_get_history",
        "ha_get_statistics",
    }  # no Home Assistant API here: its live tools are not offered
    for tool in tools:
        assert tool["annotations"]["readOnlyHint"] is True
        assert tool["annotations"]["destructiveHint"] is False
        schema = tool["inputSchema"]
        assert schema["type"] == "object"
        text = json.dumps(schema)
        for forbidden in ("anyOf", "allOf", "oneOf", "minItems", "maxItems", "$ref"):
            assert forbidden not in text, (tool["name"], forbidden)
        for prop in schema["properties"].values():
            assert prop["type"] in ("string", "integer", "boolean", "array")


async def test_structured_content_from_2025_06_18(mcp: NodeClient) -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "list_databases", "arguments": {}},
    }
    old = await (await post(mcp, message, **{"MCP-Protocol-Version": "2025-03-26"})).json()
    new = await (await post(mcp, message, **{"MCP-Protocol-Version": "2025-11-25"})).json()
    assert "structuredContent" not in old["result"]
    assert new["result"]["structuredContent"]["databases"][0]["name"] == "home-assistant_v2"


async def _sse_events(response: Any) -> Any:
    event = None
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield event, line.split(":", 1)[1].strip()


async def test_old_sse_pair(mcp: NodeClient) -> None:
    stream = await mcp.get("/mcp/sse", headers={"Authorization": headers()["Authorization"]})
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    events = _sse_events(stream)
    kind, endpoint = await anext(events)
    assert kind == "endpoint"
    assert endpoint.startswith("/mcp/messages?session_id=")
    message = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "list_databases", "arguments": {}},
    }
    response = await mcp.post(endpoint, data=json.dumps(message), headers=headers())
    assert response.status == 202
    kind, data = await asyncio.wait_for(anext(events), 10)
    assert kind == "message"
    answer = json.loads(data)
    assert answer["id"] == 9
    assert answer["result"]["isError"] is False
    # Another token can't use this stream's session id.
    response = await mcp.post(
        endpoint, data=json.dumps(message), headers=headers("files-only-token-0123456789")
    )
    assert response.status == 404
    response = await mcp.post(
        "/mcp/messages?session_id=nope", data=json.dumps(message), headers=headers()
    )
    assert response.status == 404
    stream.close()


async def test_status_and_metrics_show_the_bridge(mcp: NodeClient) -> None:
    await call(mcp, "list_databases")
    await call(mcp, "read_text_file", path="/etc/passwd")
    await post(mcp, {"jsonrpc": "2.0", "id": 1, "method": "ping"}, token="wrong-token-0123456789")
    status = await (
        await mcp.get("/api/status", headers={"Authorization": headers()["Authorization"]})
    ).json()
    part = status["mcp"]
    assert part["calls"] == 2
    assert part["tool_errors"] == 1
    assert part["refusals_by_reason"] == {"token": 1}
    assert part["latency_p95_s"] is not None
    metrics = await (
        await mcp.get("/metrics", headers={"Authorization": headers()["Authorization"]})
    ).text()
    assert 'heatcompute_mcp_calls_total{tool="list_databases"} 1.0' in metrics
    assert 'heatcompute_mcp_refusals_total{reason="token"} 1.0' in metrics
