"""The "Serve requests" switch (`serve_requests` in /api/config) is obeyed by /v1.

The real `openai` client against a real node on 127.0.0.1 with a tiny model.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import openai
import pytest

from heatcompute_node.engines.llm.models import EngineSettings

from .conftest import TOKEN, start_node

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def set_serving(base_url: str, on: bool) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.patch(
            f"{base_url}/api/config", json={"serve_requests": on}, headers=AUTH
        ) as response,
    ):
        assert response.status == 200
        assert (await response.json())["serve_requests"] is on


async def test_requests_are_refused_while_serving_is_off(
    socket_enabled: None, tmp_path: Path, tiny_model: Path
) -> None:
    node = await start_node(
        tmp_path, (tiny_model,), EngineSettings(n_ctx=512, n_slots=2, n_threads=1, load_wait_s=60)
    )
    try:
        await set_serving(node.base_url, False)
        refusals = [
            node.client.chat.completions.create(
                model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=2
            ),
            node.client.completions.create(model="tiny", prompt="hi", max_tokens=2),
            node.client.embeddings.create(model="tiny", input="hi"),
        ]
        for refused in refusals:
            with pytest.raises(openai.InternalServerError) as err:
                await refused
            assert err.value.status_code == 503
            assert err.value.code == "not_serving"
            assert "serve_requests" in err.value.message
        assert node.manager.find("tiny", "chat").state == "available"  # nothing was loaded
        # What the node has is still told: a client can see why and choose another node.
        assert [m.id for m in (await node.client.models.list()).data] == ["tiny"]

        await set_serving(node.base_url, True)
        reply = await node.client.completions.create(
            model="tiny", prompt="hi", max_tokens=2, extra_body={"ignore_eos": True}
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 2
    finally:
        await node.client.close()
        await node.server.close()
