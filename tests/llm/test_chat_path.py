"""One chat path: the API and jobs reach the model through the same engine call, which
renders, tokenizes and compiles off the event loop (a real node, the real SmolLM2).

The template, the tokenizer and the grammar are watched (wrapped, not replaced): every
call is recorded with the thread it ran on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import threading
from typing import Any

import aiohttp
import llama_cpp
import pytest

from heatcompute_node.engines.llm.chat import ChatTemplate
from heatcompute_node.engines.llm.tokenizer import Tokenizer

from .conftest import TOKEN, LiveNode
from .test_openai_api import LIGHT_TOOL, MODEL

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES: Any = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Name a warm colour."},
]


class Calls:
    """(what, thread) of every watched call, and the prompt tokens each tokenize made."""

    def __init__(self) -> None:
        self.threads: list[tuple[str, int]] = []
        self.prompts: list[list[int]] = []

    def on_loop(self, loop_thread: int) -> list[str]:
        return [what for what, thread in self.threads if thread == loop_thread]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()

    def watch(owner: Any, name: str, keep: Callable[[Any], None] | None = None) -> None:
        original = getattr(owner, name)

        def watched(*args: Any, **kwargs: Any) -> Any:
            calls.threads.append((name, threading.get_ident()))
            result = original(*args, **kwargs)
            if keep is not None:
                keep(result)
            return result

        monkeypatch.setattr(owner, name, watched)

    watch(ChatTemplate, "render")
    watch(Tokenizer, "tokenize", calls.prompts.append)
    watch(llama_cpp, "llama_sampler_init_grammar")
    return calls


async def test_api_and_jobs_render_tokenize_and_compile_off_the_loop(
    smol_node: LiveNode, calls: Calls
) -> None:
    loop_thread = threading.get_ident()
    reply = await smol_node.client.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0, max_tokens=8, seed=1
    )
    forced = await smol_node.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Turn on the kitchen light."}],
        tools=[LIGHT_TOOL],
        tool_choice="required",
        # Greedy and with room: a sampled argument string can run past a short limit,
        # and a call cut off before its end is no call.
        temperature=0,
        seed=1,
        max_tokens=120,
    )
    assert forced.choices[0].message.tool_calls
    api_prompt = calls.prompts[0]

    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            f"{smol_node.base_url}/api/jobs",
            json={
                "kind": "chat",
                "items": [{"messages": MESSAGES}],
                "max_tokens": 8,
                "temperature": 0,
                "seed": 1,
                "deadline_in_s": 1,
            },
        ) as response:
            job = await response.json()
            assert response.status == 200, job
        async with asyncio.timeout(60):
            while job["state"] != "completed":
                await asyncio.sleep(0.1)
                async with session.get(f"{smol_node.base_url}/api/jobs/{job['id']}") as response:
                    job = await response.json()

    whats = {what for what, _ in calls.threads}
    assert {"render", "tokenize", "llama_sampler_init_grammar"} <= whats
    assert calls.on_loop(loop_thread) == []
    # The same messages, the same prompt, the same greedy answer, whoever asks.
    assert calls.prompts[-1] == api_prompt
    assert reply.usage is not None
    assert job["usage"]["prompt_tokens"] == reply.usage.prompt_tokens
    assert job["results"][0]["text"] == reply.choices[0].message.content
