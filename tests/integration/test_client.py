"""The typed client: tolerant parsing, the SSE reader, and one error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
import pytest

from custom_components.heatcompute import client as client_module
from custom_components.heatcompute.client import (
    HeatcomputeAuthenticationError,
    HeatcomputeClient,
    HeatcomputeConnectionError,
    HeatcomputeError,
    HeatcomputeModelNotFoundError,
    HeatcomputeNotSupportedError,
    HeatcomputeResponseError,
    NodeStatus,
)

from .conftest import RunningNode, free_port

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def test_status_parsing_is_tolerant() -> None:
    """Missing, null and odd fields read as None; nothing crashes."""
    status = NodeStatus.from_dict(
        {
            "node_id": "abc",
            "heat": {"mode": "heat", "target_w": 50},
            "power_w": "n/a",
            "energy_kwh": float("nan"),
            "intensity": True,
            "work": {"queue_depth": 3.0},
            "energy": {"heat_reuse": 0.8, "wh_per_1k_tokens": 1.5},
            "config": {"filler": "yes", "max_power_w": 100},
            "models": [{"id": "m1"}, "junk", {"kind": "llm"}],
        }
    )
    assert status.name == "heatcompute"
    assert status.heat.wanted is True
    assert status.heat.max_power_w is None
    assert status.power_w is None
    assert status.energy_kwh is None
    assert status.intensity is None
    assert status.queue_depth == 3
    assert status.jobs_pending is None
    assert status.heat_reuse == 0.8
    assert status.energy_per_1k_tokens_wh == 1.5
    assert status.config is not None
    assert status.config.filler is None
    assert status.config.max_power_w == 100.0
    assert status.models == ("m1",)
    assert status.version is None


def test_heat_reuse_is_read_from_the_energy_figures() -> None:
    """The one place the node puts it; a node without heat accounting leaves it out."""
    grouped = NodeStatus.from_dict({"node_id": "abc", "energy": {"heat_reuse": 0.5}})
    assert grouped.heat_reuse == 0.5
    assert NodeStatus.from_dict({"node_id": "abc"}).heat_reuse is None


def test_a_model_still_downloading_is_not_served() -> None:
    """The node lists a download beside its models; the router must not send requests to it."""
    status = NodeStatus.from_dict(
        {
            "node_id": "abc",
            "models": [
                {"id": "smollm", "kind": "chat", "state": "loaded"},
                {"id": "qwen", "kind": "download", "state": "downloading"},
            ],
        }
    )
    assert status.models == ("smollm",)
    assert dict(status.model_states) == {"smollm": "loaded"}


def test_status_without_node_id_is_an_error() -> None:
    with pytest.raises(HeatcomputeError):
        NodeStatus.from_dict({"name": "x"})


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake_node(
    socket_enabled: None,
) -> AsyncIterator[Callable[[str, str, Handler], Awaitable[int]]]:
    """A server answering one route as a test says: for what a real node never does."""
    runners: list[web.AppRunner] = []

    async def start(method: str, path: str, handler: Handler) -> int:
        app = web.Application()
        app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return port

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_real_node_round_trip(node: RunningNode, session: aiohttp.ClientSession) -> None:
    client = HeatcomputeClient(node.host, node.port, node.token, session=session)
    status = await client.status()
    assert status.node_id == node.node.node_id
    heat = await client.set_heat("heat", 42.04)
    assert (heat.mode, heat.target_w, heat.wanted) == ("heat", 42.0, True)
    config = await client.config()
    assert config.serve_requests is True
    assert (await client.update_config(filler=True)).filler is True

    with pytest.raises(HeatcomputeResponseError) as err:
        await client.set_heat("heat", 10_000)
    assert err.value.status == 400
    assert err.value.code == "out_of_range"
    # This test node serves no model: a well-formed job is refused with the reason.
    with pytest.raises(HeatcomputeResponseError, match="no embedding model") as err:
        await client.submit_job({"kind": "embeddings", "items": ["a warm room"]})
    assert 400 <= err.value.status < 500
    with pytest.raises(HeatcomputeResponseError) as err:
        await client.submit_job({"kind": "embed"})
    assert err.value.status == 400


async def test_no_such_model_is_not_no_such_route(
    node: RunningNode, session: aiohttp.ClientSession
) -> None:
    """A node without the model (another node may have it) is not an older node."""
    client = HeatcomputeClient(node.host, node.port, node.token, session=session)
    with pytest.raises(HeatcomputeModelNotFoundError) as no_model:
        await client.get_json("/v1/models/qwen2.5-0.5b")
    assert no_model.value.code == "model_not_found"
    with pytest.raises(HeatcomputeNotSupportedError) as no_route:
        await client.get_json("/api/no-such-route")
    assert no_route.value.code == "route_not_found"
    assert not isinstance(no_route.value, HeatcomputeModelNotFoundError)


async def test_real_node_event_stream(node: RunningNode, session: aiohttp.ClientSession) -> None:
    client = HeatcomputeClient(node.host, node.port, node.token, session=session)
    stream = client.events()
    first = await anext(stream)
    assert first.node_id == node.node.node_id
    await client.set_heat("heat", 60.0)
    async with asyncio.timeout(2):
        async for status in stream:
            if status.heat.target_w == 60.0:
                break
    await stream.aclose()


async def test_wrong_token(node: RunningNode, session: aiohttp.ClientSession) -> None:
    client = HeatcomputeClient(node.host, node.port, "wrong", session=session)
    with pytest.raises(HeatcomputeAuthenticationError, match="invalid bearer token"):
        await client.status()
    with pytest.raises(HeatcomputeAuthenticationError):
        await anext(client.events())


async def test_nobody_listening(session: aiohttp.ClientSession) -> None:
    client = HeatcomputeClient("127.0.0.1", free_port(), "t", session=session)
    with pytest.raises(HeatcomputeConnectionError):
        await client.status()


async def test_timeout(
    fake_node: Callable[[str, str, Handler], Awaitable[int]],
    session: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})  # pragma: no cover - the client gave up

    monkeypatch.setattr(client_module, "REQUEST_TIMEOUT", aiohttp.ClientTimeout(total=0.05))
    port = await fake_node("GET", "/api/status", slow)
    client = HeatcomputeClient("127.0.0.1", port, "t", session=session)
    with pytest.raises(HeatcomputeConnectionError, match="in time"):
        await client.status()


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (web.Response(status=500, text="boom"), HeatcomputeConnectionError),
        (web.Response(status=409, text="not json"), HeatcomputeResponseError),
        (web.Response(text="not json"), HeatcomputeError),
        (web.json_response([1, 2]), HeatcomputeError),
    ],
)
async def test_odd_answers(
    fake_node: Callable[[str, str, Handler], Awaitable[int]],
    session: aiohttp.ClientSession,
    response: web.Response,
    error: type[Exception],
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return response

    port = await fake_node("GET", "/api/status", answer)
    client = HeatcomputeClient("127.0.0.1", port, "t", session=session)
    with pytest.raises(error):
        await client.status()


async def test_sse_parsing(
    fake_node: Callable[[str, str, Handler], Awaitable[int]],
    session: aiohttp.ClientSession,
) -> None:
    """Comments, other events, multi-line data and CRLF line ends, as SSE allows."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b": keep-alive\n\n")
        await response.write(b"event: job\ndata: {}\n\n")
        await response.write(b'event: status\r\ndata: {"node_id":\r\ndata: "n1"}\r\n\r\n')
        await response.write(b"\n")  # a blank line with nothing pending dispatches nothing
        await response.write(b'id: 7\ndata: {"node_id": "n2"}\n\n')  # unnamed: "message"
        await response.write(b'event: status\ndata: {"node_id": "n3"}\n\n')
        return response

    port = await fake_node("GET", "/api/events", stream)
    client = HeatcomputeClient("127.0.0.1", port, "t", session=session)
    assert [status.node_id async for status in client.events()] == ["n1", "n3"]
