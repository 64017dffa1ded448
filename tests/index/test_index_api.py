"""The index through its clients: the real `mcp` SDK (search_documents), and the HTTP
routes' answers to bad requests (the node's error shape; the node stays up)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs in the venv
from mcp import ClientSession, McpError
from mcp.client.streamable_http import streamablehttp_client
import pytest

from heatcompute_node.api.index import SEARCH_REQUEST

from .conftest import TOKEN, Household, MakeNode
from .documents import BOILER, BOILER_QUERY, write_household


async def test_assistants_search_documents_through_the_mcp_sdk(
    indexed_household: Household,
) -> None:
    node, files = indexed_household.node, indexed_household.files

    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        streamablehttp_client(f"{node.base}/mcp", headers=auth) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        tool = tools["search_documents"]
        assert tool.annotations is not None
        assert tool.annotations.readOnlyHint
        assert tool.inputSchema["required"] == ["query"]
        assert set(tool.inputSchema["properties"]) == {"query", "limit"}
        assert all("type" in prop for prop in tool.inputSchema["properties"].values())

        result = await session.call_tool("search_documents", {"query": BOILER_QUERY, "limit": 2})
        assert not result.isError
        found: dict[str, Any] = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert len(found["passages"]) == 2
        best = found["passages"][0]
        assert (best["file"], best["line"], best["page"]) == (str(files["notes"]), 7, None)
        assert BOILER in best["text"]
        assert found["files_not_yet_indexed"] == 0

        refused = await session.call_tool("search_documents", {"query": "x", "limit": 99})
        assert refused.isError
        assert "limit" in refused.content[0].text  # type: ignore[union-attr]


async def test_bad_requests_get_the_nodes_error_shape(make_node: MakeNode, tmp_path: Path) -> None:
    share = tmp_path / "share"
    write_household(share)
    node = await make_node(share)

    described = Draft202012Validator(SEARCH_REQUEST)
    for body, param in (
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "\r"}, "query"),  # found by a random fuzzing seed: schema-valid then
        ({"query": 5}, "query"),
        ({"query": "boiler", "limit": 0}, "limit"),
        ({"query": "boiler", "limit": 51}, "limit"),
        ({"query": "boiler", "limit": True}, "limit"),
        ({"query": "boiler", "top_k": 3}, "top_k"),
        ({"query": "x" * 2001}, "query"),
    ):
        status, answer = await node.post("/api/index/search", body)
        assert status == 400, body
        assert answer["error"]["param"] == param, answer
        assert answer["error"]["type"] == "invalid_request_error"
        assert not described.is_valid(body), body  # the document refuses it too
    assert described.is_valid({"query": " boiler\r", "limit": 3})
    for body in ({"max_chunks": 0}, {"max_chunks": "many"}, {"chunks": 3}):
        status, answer = await node.post("/api/index/run", body)
        assert status == 400, body
        assert answer["error"]["code"] in ("invalid_value", "unknown_field")

    async with node.session.post(
        f"{node.base}/api/index/search", data=b"{not json", headers=node.headers
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_json"
    async with node.session.get(f"{node.base}/api/index") as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "missing_token"

    # Still up and searching after all that.
    await node.run()
    assert (await node.search(BOILER_QUERY))[0]["line"] == 7


async def test_with_no_folder_shared_the_index_is_off(make_node: MakeNode, tmp_path: Path) -> None:
    share = tmp_path / "share"
    write_household(share)
    node = await make_node(share, index_enabled=False)
    status, index = await node.get("/api/index")
    assert status == 200
    assert (index["enabled"], index["files"], index["errors"]) == (False, 0, [])
    status, answer = await node.post("/api/index/search", {"query": BOILER_QUERY})
    assert status == 503
    assert answer["error"]["code"] == "index_disabled"
    status, document = await node.get("/openapi.json")
    assert {"/api/index", "/api/index/search", "/api/index/run"} <= set(document["paths"])
    status, node_status = await node.get("/api/status")
    assert "documents" not in node_status


async def test_search_documents_needs_the_files_scope(make_node: MakeNode, tmp_path: Path) -> None:
    share = tmp_path / "share"
    write_household(share)
    history_only = "history-only-token-0123456789"
    node = await make_node(
        share,
        mcp_tokens=(
            f"readers:files:{'r' * 24}",
            f"history:homeassistant:{history_only}",
        ),
    )
    await node.run()
    for token, allowed in ((history_only, False), ("r" * 24, True)):
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            streamablehttp_client(f"{node.base}/mcp", headers=auth) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert ("search_documents" in names) is allowed, names
            if allowed:
                result = await session.call_tool("search_documents", {"query": BOILER_QUERY})
                assert not result.isError
            else:
                with pytest.raises(McpError, match="'files' scope"):
                    await session.call_tool("search_documents", {"query": BOILER_QUERY})
