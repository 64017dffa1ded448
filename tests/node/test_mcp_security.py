"""The bridge's locks, each tried with the attack it is there for.

Files: every way out of a shared folder. Databases: every way to write, attach, load
code or run forever, with the database file byte-identical afterwards. HTTP: tokens,
scopes, Origin and Host. Each refusal must be a clear tool error (or the HTTP status the
spec names), and the node must answer the next request as if nothing happened.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import ClientSession
import pytest

from heatcompute_node.app import create_app
from heatcompute_node.mcp.files import FileTools
from heatcompute_node.mcp.tools import Limits, ToolError

from .conftest import TOKEN, MakeClient, NodeClient, StaticHardware
from .mcp_home import (
    DB_TOKEN,
    FILES_TOKEN,
    House,
    build_house,
    call,
    file_digest,
    post,
    rpc,
)

PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


@pytest.fixture
def house(tmp_path: Path) -> House:
    return build_house(tmp_path)


@pytest.fixture
async def mcp(socket_enabled: None, house: House, make_client: MakeClient) -> NodeClient:
    # A short limit, so the never-ending query test ends soon.
    settings = house.settings(mcp_call_timeout_s=1.0)
    return await make_client(create_app(settings, hardware=StaticHardware()))


# --- files -------------------------------------------------------------------------------


async def test_reading_inside_works(mcp: NodeClient, house: House) -> None:
    is_error, result = await call(mcp, "read_text_file", path=str(house.notes), head=2)
    assert not is_error
    assert result["text"] == "# Heating\nline 1\n"
    is_error, result = await call(mcp, "read_text_file", path="notes/heating.md", tail=1)
    assert not is_error
    assert result["text"] == "line 100\n"
    # A link that stays inside is followed.
    is_error, result = await call(mcp, "read_text_file", path=str(house.share / "link_in.md"))
    assert not is_error
    assert result["text"].startswith("# Heating")


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "notes/../../secret.txt",
        "{share}/../secret.txt",
        "{secret}",
        "/etc/passwd",
        "{sibling}/stolen.txt",  # /x/share_evil is not inside /x/share
        "{share}_evil/stolen.txt",
        "{share}/link_out.txt",  # a symlink pointing out
        "{share}/link_dir_out/secret.txt",  # a folder symlink pointing out
    ],
)
async def test_paths_out_of_the_folder_are_refused(
    mcp: NodeClient, house: House, path: str
) -> None:
    path = path.format(share=house.share, secret=house.secret, sibling=house.sibling)
    for tool in ("read_text_file", "file_info", "list_folder"):
        is_error, text = await call(mcp, tool, path=path)
        assert is_error, (tool, path, text)
        assert "outside the shared folders" in text
        assert "top secret" not in text
        assert "sibling secret" not in text


async def test_nul_bytes_are_refused(mcp: NodeClient, house: House) -> None:
    is_error, text = await call(mcp, "read_text_file", path=f"{house.notes}\x00.png")
    assert is_error
    assert "NUL byte" in text
    is_error, text = await call(mcp, "search_files", pattern="*\x00*")
    assert is_error
    assert "NUL byte" in text


async def test_a_huge_file_is_refused_whole_but_readable_in_part(
    mcp: NodeClient, house: House
) -> None:
    is_error, text = await call(mcp, "read_text_file", path=str(house.share / "huge.log"))
    assert is_error
    assert "5242901 bytes, more than the 1048576-byte cap" in text
    is_error, result = await call(mcp, "read_text_file", path=str(house.share / "huge.log"), head=1)
    assert not is_error
    assert result["text"] == "first line\n"
    is_error, result = await call(mcp, "read_text_file", path=str(house.share / "huge.log"), tail=1)
    assert not is_error
    assert result["text"] == "last line\n"


async def test_binary_files_are_refused(mcp: NodeClient, house: House) -> None:
    is_error, text = await call(mcp, "read_text_file", path=str(house.share / "photo.jpg"))
    assert is_error
    assert "binary" in text


async def test_listing_and_search_stay_inside(mcp: NodeClient, house: House) -> None:
    is_error, result = await call(mcp, "list_folder", path=str(house.share))
    assert not is_error
    kinds = {entry["name"]: entry["type"] for entry in result["entries"]}
    assert kinds["link_out.txt"] == "link (outside, not readable)"
    assert kinds["link_in.md"] == "link"
    is_error, result = await call(mcp, "search_files", pattern="*.txt")
    assert not is_error
    # link_out.txt matches the pattern but leads out: not listed; nothing of the sibling.
    assert result["matches"] == []
    is_error, result = await call(mcp, "search_files", pattern="*.md")
    assert sorted(Path(m).name for m in result["matches"]) == ["heating.md", "link_in.md"]


# --- databases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("INSERT INTO items (name, room) VALUES ('x', 'y')", "read-only"),
        ("UPDATE items SET room = 'attic'", "read-only"),
        ("DELETE FROM items", "read-only"),
        ("DROP TABLE items", "read-only"),
        ("CREATE TABLE t (x)", "read-only"),
        ("ATTACH DATABASE '/tmp/evil.db' AS evil", "read-only"),
        ("PRAGMA writable_schema = ON", "read-only"),
        ("PRAGMA query_only = OFF", "read-only"),
        ("SELECT 1; DELETE FROM items", "one statement"),
        ("SELECT load_extension('/tmp/evil.so')", "load_extension"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
            "SELECT count(*) FROM c",
            "longer than 1 s",
        ),
        ("VACUUM INTO '/tmp/copy.db'", "read-only"),
    ],
)
async def test_writes_and_escapes_are_refused(
    mcp: NodeClient, house: House, sql: str, reason: str
) -> None:
    before = file_digest(house.inventory)
    is_error, text = await call(
        mcp, "query_database", token=DB_TOKEN, database="inventory", sql=sql
    )
    assert is_error, text
    assert reason in text
    assert file_digest(house.inventory) == before
    # The node answers the next query as if nothing happened.
    is_error, result = await call(
        mcp,
        "query_database",
        token=DB_TOKEN,
        database="inventory",
        sql="SELECT count(*) FROM items",
    )
    assert not is_error
    assert result["rows"] == [[2]]
    assert not Path("/tmp/evil.db").exists() or before  # ATTACH made no file


async def test_reads_work_with_a_row_cap(mcp: NodeClient, house: House) -> None:
    is_error, result = await call(
        mcp,
        "query_database",
        database="home-assistant_v2",
        sql="SELECT state_id FROM states",
        max_rows=10,
    )
    assert not is_error
    assert result["row_count"] == 10
    assert result["truncated"] is True


async def test_describe_table_checks_the_name(mcp: NodeClient, house: House) -> None:
    before = file_digest(house.inventory)
    is_error, result = await call(mcp, "describe_table", database="inventory", table="items")
    assert not is_error
    assert [c["name"] for c in result["columns"]] == ["id", "name", "room"]
    for evil in ("items; DROP TABLE items", "items)--", "sqlite_master", "x' OR '1'='1"):
        is_error, text = await call(mcp, "describe_table", database="inventory", table=evil)
        assert is_error
        assert "no table or view named" in text
    assert file_digest(house.inventory) == before
    is_error, text = await call(mcp, "list_tables", database="../secret")
    assert is_error
    assert "no database named" in text


# --- HTTP: tokens, scopes, Origin, Host ----------------------------------------------------


async def test_missing_or_wrong_token_is_401(mcp: NodeClient) -> None:
    for token in (None, "wrong-token-0123456789"):
        response = await post(mcp, PING, token=token)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"]["code"] == -32600
    response = await mcp.get("/mcp/sse")
    assert response.status == 401


async def test_scopes_decide_what_a_token_reaches(mcp: NodeClient, house: House) -> None:
    listed = (await rpc(mcp, "tools/list", token=DB_TOKEN))["result"]["tools"]
    assert {t["name"] for t in listed} == {
        "list_databases",
        "list_tables",
        "describe_table",
        "query_database",
    }
    body = await rpc(
        mcp,
        "tools/call",
        {"name": "read_text_file", "arguments": {"path": str(house.notes)}},
        token=DB_TOKEN,
    )
    assert body["error"]["code"] == -32602
    assert "needs the 'files' scope" in body["error"]["message"]
    assert "line 1" not in str(body)
    is_error, _ = await call(mcp, "read_text_file", token=FILES_TOKEN, path=str(house.notes))
    assert not is_error
    body = await rpc(
        mcp,
        "tools/call",
        {"name": "query_database", "arguments": {"database": "inventory", "sql": "SELECT 1"}},
        token=FILES_TOKEN,
    )
    assert body["error"]["code"] == -32602


async def test_owner_creates_and_revokes_tokens(mcp: NodeClient, house: House) -> None:
    owner = {"Authorization": f"Bearer {TOKEN}"}
    created = await mcp.post(
        "/api/mcp/tokens", json={"name": "claude", "scopes": ["files"]}, headers=owner
    )
    assert created.status == 201
    token = (await created.json())["token"]
    assert token not in (house.root / "data" / "mcp_tokens.json").read_text()  # only its hash
    is_error, _ = await call(mcp, "list_allowed_folders", token=token)
    assert not is_error
    # An MCP token is not the node's token: the control plane stays closed to it.
    assert (
        await mcp.get("/api/mcp/tokens", headers={"Authorization": f"Bearer {token}"})
    ).status == 401
    listing = await (await mcp.get("/api/mcp/tokens", headers=owner)).json()
    assert {"name": "claude", "scopes": ["files"], "source": "api"}.items() <= listing["tokens"][
        -1
    ].items()
    assert (await mcp.delete("/api/mcp/tokens/claude", headers=owner)).status == 200
    assert (await post(mcp, PING, token=token)).status == 401
    assert (await mcp.delete("/api/mcp/tokens/webui", headers=owner)).status == 409
    assert (await mcp.delete("/api/mcp/tokens/nobody", headers=owner)).status == 404
    bad = await mcp.post("/api/mcp/tokens", json={"name": "x", "scopes": ["root"]}, headers=owner)
    assert bad.status == 400


async def test_token_scopes_of_the_wrong_type_are_400(mcp: NodeClient) -> None:
    """Found by a random fuzzing seed: ``"scopes": 4`` was a 500."""
    owner = {"Authorization": f"Bearer {TOKEN}"}
    for scopes in (4, "files", None, {"files": True}, ["files", 3]):
        response = await mcp.post(
            "/api/mcp/tokens", json={"name": "mc_xu", "scopes": scopes}, headers=owner
        )
        assert response.status == 400, scopes
        error = (await response.json())["error"]
        assert error["param"] == "scopes"
        assert "list of scope names" in error["message"]
    listing = await (await mcp.get("/api/mcp/tokens", headers=owner)).json()
    assert "mc_xu" not in {token["name"] for token in listing["tokens"]}


async def test_bad_origin_is_403(mcp: NodeClient) -> None:
    response = await post(mcp, PING, Origin="http://evil.example")
    assert response.status == 403
    body = await response.json()
    assert body["id"] is None
    assert "Origin" in body["error"]["message"]
    for origin in (
        "http://localhost:6274",
        "http://127.0.0.1:3000",
        f"http://127.0.0.1:{mcp.port}",
    ):
        assert (await post(mcp, PING, Origin=origin)).status == 200, origin


async def test_a_token_holder_may_use_any_name_of_the_node(mcp: NodeClient) -> None:
    # The integration reaches the node by whatever name the house's network gives it; a
    # rebinding page can't present the token, so the name doesn't matter once it is valid.
    assert (await post(mcp, PING, Host="heater.home.arpa:8765")).status == 200
    assert (
        await post(mcp, PING, Host="evil.example", token="wrong-token-0123456789")
    ).status == 401


async def test_trusted_network_needs_no_token(
    socket_enabled: None, house: House, make_client: MakeClient
) -> None:
    client = await make_client(
        create_app(house.settings(mcp_trusted_networks=("127.0.0.0/8",)), hardware=StaticHardware())
    )
    assert (await post(client, PING, token=None)).status == 200
    # DNS rebinding: a page on evil.example resolved to the node posts from the browser,
    # with no token, from inside the trusted network. Its Host gives it away.
    response = await post(client, PING, token=None, Host="evil.example")
    assert response.status == 421
    assert (await post(client, PING, token=None, Host=f"localhost:{client.port}")).status == 200
    # A wrong token is still wrong, even from a trusted network.
    assert (await post(client, PING, token="wrong-token-0123456789")).status == 401
    async with ClientSession() as session:
        # The node token never opened the control plane to tokenless callers.
        response = await session.get(f"http://127.0.0.1:{client.port}/api/status")
        assert response.status == 401


def test_a_search_stops_its_own_walk_at_the_call_timeout(tmp_path: Path) -> None:
    """The server stops waiting at the timeout; the walk's thread must stop too, or a
    folder of a million files keeps a thread busy after every timed-out call. The clock is
    a stand-in that moves a second per look, so where the walk ends is decided by it."""
    for name in "abcdef":
        (tmp_path / name).mkdir()
        (tmp_path / name / "note.md").write_text("x", encoding="utf-8")
    looks: list[float] = []

    def clock() -> float:
        looks.append(float(len(looks)))
        return looks[-1]

    tools = FileTools([tmp_path], Limits(call_timeout_s=2.5), clock=clock)
    with pytest.raises(ToolError, match=r"ran longer than 2\.5 s and was stopped"):
        tools.search({"pattern": "*.md"})
    # The deadline, then a look per folder: stopped at the third of seven.
    assert len(looks) == 4
    # With time to spare the same search finds all six notes.
    found = FileTools([tmp_path], Limits(call_timeout_s=10.0)).search({"pattern": "*.md"})
    assert len(found["matches"]) == 6
