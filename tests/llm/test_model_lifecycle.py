"""A model's life in the contract: its kind and state in /v1/models and /api/status, 503
`model_loading` with Retry-After while it loads, `model_failed` when it cannot load, and
"no such model" told apart from "no such route".

The real `openai` client against a real node on 127.0.0.1. Only the load's slowness is
staged: a gate holds the (real) engine's construction until the test opens it, so the
node is caught mid-load every time instead of by luck.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
import shutil
import threading
from typing import Any

import aiohttp
import httpx
import openai
import pytest

from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.engines.llm import models
from heatcompute_node.engines.llm.models import EngineSettings
from heatcompute_node.engines.llm.scheduler import Scheduler

from .conftest import TOKEN, LiveNode, start_node

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Requests wait for a load however slow the shared machine is today, except where a
# test holds the load at its gate (GATED): there the wait is short.
ENGINE = EngineSettings(n_ctx=512, n_slots=2, n_threads=1, load_wait_s=60)
GATED = replace(ENGINE, load_wait_s=0.2)
VOCAB_ONLY = Path(__file__).parent.parent / "fixtures" / "llm" / "ggml-vocab-phi-3.gguf"


@pytest.fixture
def load_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Chat engines are built only once the returned event is set."""
    gate = threading.Event()

    def gated(*args: Any, **kwargs: Any) -> Scheduler:
        assert gate.wait(timeout=60), "the test never opened the load gate"
        return Scheduler(*args, **kwargs)

    monkeypatch.setattr(models, "Scheduler", gated)
    yield gate
    gate.set()  # a failing test must not leave a load thread waiting


@pytest.fixture
async def tiny_node(
    socket_enabled: None, tmp_path: Path, tiny_model: Path
) -> AsyncIterator[LiveNode]:
    node = await start_node(tmp_path, (tiny_model,), GATED)
    yield node
    await node.client.close()
    await node.server.close()


async def model_states(node: LiveNode) -> dict[str, tuple[str, str]]:
    """Model id -> (kind, state), from /v1/models and checked against /api/status."""
    listed = {
        m.id: (m.kind, m.state)  # type: ignore[attr-defined]
        for m in (await node.client.models.list()).data
    }
    status = node.app[NODE_KEY].status()
    assert {m["id"]: (m["kind"], m["state"]) for m in status["models"]} == listed
    return listed


async def test_a_loading_model_is_503_with_retry_after(
    tiny_node: LiveNode, load_gate: threading.Event
) -> None:
    assert await model_states(tiny_node) == {"tiny": ("chat", "available")}

    with pytest.raises(openai.InternalServerError) as err:
        await tiny_node.client.completions.create(
            model="tiny", prompt="hi", max_tokens=2, timeout=30
        )
    assert err.value.status_code == 503
    assert err.value.code == "model_loading"
    assert err.value.type == "service_unavailable_error"
    assert int(err.value.response.headers["Retry-After"]) >= 1
    assert err.value.body["retry_after_s"] >= 1  # type: ignore[index]
    assert await model_states(tiny_node) == {"tiny": ("chat", "loading")}

    load_gate.set()
    entry = tiny_node.manager.find("tiny", "chat")
    assert entry.loading is not None  # the load went on without the request
    await entry.loading
    assert await model_states(tiny_node) == {"tiny": ("chat", "loaded")}
    reply = await tiny_node.client.completions.create(
        model="tiny", prompt="hi", max_tokens=2, extra_body={"ignore_eos": True}
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2


async def test_the_openai_client_comes_back_after_retry_after(
    tiny_node: LiveNode, load_gate: threading.Event
) -> None:
    """The client's own retry, paced by the node's Retry-After, gets the answer."""
    statuses: list[int] = []

    async def on_response(response: httpx.Response) -> None:
        statuses.append(response.status_code)
        if response.status_code == 503:
            # The next attempt waits for the load as long as it takes.
            manager = tiny_node.manager
            manager.settings = replace(manager.settings, load_wait_s=60)
            load_gate.set()

    async with httpx.AsyncClient(event_hooks={"response": [on_response]}) as http:
        client = openai.AsyncOpenAI(
            base_url=f"{tiny_node.base_url}/v1", api_key=TOKEN, max_retries=1, http_client=http
        )
        reply = await client.completions.create(
            model="tiny", prompt="hi", max_tokens=2, extra_body={"ignore_eos": True}
        )
    assert statuses == [503, 200]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 2


async def test_a_model_that_cannot_load_is_failed_and_503(
    socket_enabled: None, tmp_path: Path
) -> None:
    """A GGUF with a vocabulary and no weights registers (its tokenizer loads) but the
    engine cannot load it: a real llama.cpp failure."""
    broken = tmp_path / "broken.gguf"
    shutil.copy(VOCAB_ONLY, broken)
    node = await start_node(tmp_path, (broken,), ENGINE)
    try:
        for _attempt in range(2):  # failed stays failed, and each request tries again
            with pytest.raises(openai.InternalServerError) as err:
                await node.client.chat.completions.create(
                    model="broken", messages=[{"role": "user", "content": "hi"}]
                )
            assert err.value.status_code == 503
            assert err.value.code == "model_failed"
            assert await model_states(node) == {"broken": ("chat", "failed")}
        [model] = node.app[NODE_KEY].status()["models"]
        assert model["error"]
    finally:
        await node.client.close()
        await node.server.close()


async def test_kinds_and_states_of_a_chat_and_an_embedding_model(
    socket_enabled: None, tmp_path: Path, tiny_model: Path, minilm: Path
) -> None:
    node = await start_node(tmp_path, (minilm, tiny_model), ENGINE)
    try:
        assert await model_states(node) == {
            "all-MiniLM-L6-v2": ("embedding", "available"),
            "tiny": ("chat", "available"),
        }
        await node.client.completions.create(model="tiny", prompt="hi", max_tokens=1)
        assert await model_states(node) == {
            "all-MiniLM-L6-v2": ("embedding", "available"),
            "tiny": ("chat", "loaded"),
        }
    finally:
        await node.client.close()
        await node.server.close()


async def test_no_such_model_and_no_such_route_are_told_apart(tiny_node: LiveNode) -> None:
    model = await tiny_node.client.models.retrieve("tiny")
    assert (model.id, model.kind, model.state) == ("tiny", "chat", "available")  # type: ignore[attr-defined]

    with pytest.raises(openai.NotFoundError) as err:
        await tiny_node.client.models.retrieve("gpt-5")
    assert err.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as err:
        await tiny_node.client.chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "model_not_found"

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{tiny_node.base_url}/v1/responses", json={}, headers=AUTH) as response,
    ):
        body = await response.json()
    assert response.status == 404
    assert body["error"]["code"] == "route_not_found"
    assert body["error"]["type"] == "not_found_error"
