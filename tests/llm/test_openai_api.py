"""The OpenAI-compatible API with the real `openai` client and the real SmolLM2."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import json
import math
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema  # type: ignore[import-untyped]  # no stubs in the venv
import openai
from prometheus_client.parser import text_string_to_metric_families
import pytest

from heatcompute_node.engines.llm.models import EngineSettings

from .conftest import TOKEN, LiveNode, start_node

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "SmolLM2-135M-Instruct.Q8_0"
LIGHT_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "set_light",
        "description": "Switch the light of a room on or off",
        "parameters": {
            "type": "object",
            "properties": {"room": {"type": "string"}, "on": {"type": "boolean"}},
            "required": ["room", "on"],
        },
    },
}


async def until(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0) -> None:
    """Wait for a condition the engine reaches asynchronously (checked every 20 ms)."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)


async def test_models_lists_the_chat_model(smol_node: LiveNode) -> None:
    models = await smol_node.client.models.list()
    assert [m.id for m in models.data] == [MODEL]


async def test_chat_answers_and_counts_usage(smol_node: LiveNode) -> None:
    messages: Any = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    reply = await smol_node.client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=30
    )
    choice = reply.choices[0]
    assert "Paris" in (choice.message.content or "")
    assert choice.finish_reason == "stop"
    chat = await smol_node.manager.chat(MODEL)
    prompt = chat.template.render(messages)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(chat.tokenizer.tokenize(prompt, add_special=False))
    assert reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_streaming_gives_the_same_text_and_usage(smol_node: LiveNode) -> None:
    messages: Any = [{"role": "user", "content": "Name three colours."}]
    whole = await smol_node.client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=24
    )
    stream = await smol_node.client.chat.completions.create(
        model=MODEL,
        messages=messages,
        temperature=0,
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, reasons, usage = [], [], None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            reasons.append(choice.finish_reason)
    assert "".join(pieces) == whole.choices[0].message.content
    assert reasons[-1] == whole.choices[0].finish_reason
    assert usage is not None
    assert whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_forced_tool_call_is_parsed_into_tool_calls(smol_node: LiveNode) -> None:
    reply = await smol_node.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Turn on the light in the kitchen."}],
        tools=[LIGHT_TOOL],
        tool_choice={"type": "function", "function": {"name": "set_light"}},
        temperature=0,
        max_tokens=60,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call: Any = choice.message.tool_calls[0]
    assert call.function.name == "set_light"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["room"], str)
    assert isinstance(arguments["on"], bool)


async def test_streamed_tool_call(smol_node: LiveNode) -> None:
    stream = await smol_node.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Switch off the bedroom light."}],
        tools=[LIGHT_TOOL],
        tool_choice="required",
        temperature=0,
        max_tokens=60,
        stream=True,
    )
    calls: list[Any] = []
    reasons: list[str | None] = []
    async for chunk in stream:
        for choice in chunk.choices:
            calls += choice.delta.tool_calls or []
            reasons.append(choice.finish_reason)
    assert [c.function.name for c in calls if c.function] == ["set_light"]
    assert reasons[-1] == "tool_calls"


async def test_words_stream_at_once_even_with_tools(smol_node: LiveNode) -> None:
    """With tools offered and the model answering in words, the words arrive piece by
    piece (not whole at the end), and they add up to the same answer as without stream.
    (Words that come within 20 ms of each other may share a piece, delivery.py; held
    back to the end they would all be one.)"""
    request: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a short poem about snow."}],
        "tools": [LIGHT_TOOL],
        "temperature": 0,
        "max_tokens": 24,
    }
    whole = await smol_node.client.chat.completions.create(**request)
    assert whole.choices[0].finish_reason == "length"  # words, no call
    stream = await smol_node.client.chat.completions.create(**request, stream=True)
    pieces = [
        choice.delta.content
        async for chunk in stream
        for choice in chunk.choices
        if choice.delta.content
    ]
    assert len(pieces) >= 2
    assert "".join(pieces) == whole.choices[0].message.content


async def test_json_schema_output_validates(smol_node: LiveNode) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer"},
            "capital": {"type": "boolean"},
        },
        "required": ["city", "population", "capital"],
        "additionalProperties": False,
    }
    reply = await smol_node.client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
        temperature=0,
        max_tokens=80,
    )
    value = json.loads(reply.choices[0].message.content or "")
    assert set(value) == {"city", "population", "capital"}
    assert isinstance(value["city"], str)
    assert isinstance(value["population"], int)
    assert isinstance(value["capital"], bool)


async def test_json_object_output_parses(smol_node: LiveNode) -> None:
    reply = await smol_node.client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": 'Answer in JSON: {"animal": ..., "legs": ...} for a cat.'},
        ],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=120,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content or ""), dict)


async def test_text_completion(smol_node: LiveNode) -> None:
    reply = await smol_node.client.completions.create(
        model=MODEL,
        prompt="The three primary colours are",
        max_tokens=8,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 8


async def test_embeddings_put_similar_sentences_closer(smol_node: LiveNode) -> None:
    texts = [
        "The cat sleeps on the sofa.",
        "A cat is napping on the couch.",
        "Quarterly corporate tax filings are due in April.",
    ]
    result = await smol_node.client.embeddings.create(model=MODEL, input=texts)
    vectors = [d.embedding for d in result.data]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
    assert cos(vectors[0], vectors[1]) > cos(vectors[1], vectors[2])
    assert result.usage.prompt_tokens > 0


async def test_eight_simultaneous_streams_get_their_token_counts(smol_node: LiveNode) -> None:
    async def stream(n: int) -> tuple[int, str | None]:
        chunks = await smol_node.client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": f"Count to {n}."}],
            max_tokens=n,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        tokens, reason = 0, None
        async for chunk in chunks:
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                reason = choice.finish_reason or reason
        return tokens, reason

    counts = [8, 10, 12, 14, 16, 18, 20, 22]
    results = await asyncio.gather(*(stream(n) for n in counts))
    assert results == [(n, "length") for n in counts]


async def test_unknown_model_is_model_not_found(smol_node: LiveNode) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        await smol_node.client.chat.completions.create(
            model="gpt-5", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.code == "model_not_found"
    assert err.value.body["param"] == "model"  # type: ignore[index]


async def test_prompt_beyond_the_context_is_context_length_exceeded(smol_node: LiveNode) -> None:
    messages: Any = [{"role": "user", "content": "heat " * 2000}]
    with pytest.raises(openai.BadRequestError) as err:
        await smol_node.client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=50
        )
    assert err.value.code == "context_length_exceeded"
    assert err.value.param == "messages"
    # The figures are fields: a client reads them rather than the sentence.
    chat = await smol_node.manager.chat(MODEL)
    prompt = chat.tokenizer.tokenize(chat.template.render(messages), add_special=False)
    error: Any = err.value.body
    assert (error["prompt_tokens"], error["context_length"], error["max_tokens"]) == (
        len(prompt),
        1024,
        50,
    )
    with pytest.raises(openai.BadRequestError) as err:
        await smol_node.client.completions.create(model=MODEL, prompt="heat " * 2000)
    error = err.value.body
    assert (error["param"], error["context_length"], error["max_tokens"]) == ("prompt", 1024, None)
    assert error["prompt_tokens"] > 1024


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stop": [1, 2]}, "stop"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
    ],
)
async def test_invalid_parameters_are_400(
    smol_node: LiveNode, extra: dict[str, object], param: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{smol_node.base_url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], **extra},
            headers=AUTH,
        ) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param


async def test_null_optional_fields_are_left_out_as_documented(smol_node: LiveNode) -> None:
    """Clients send null for what they leave out (OpenAI's API reads it so). Found by a
    random fuzzing seed: the node took ``"max_tokens": null`` but its document said
    integer; and ``"n": null`` was refused."""
    nulls = dict.fromkeys(
        (
            "model", "max_tokens", "n", "stream", "stream_options", "temperature", "top_p",
            "top_k", "min_p", "repeat_penalty", "frequency_penalty", "presence_penalty",
            "seed", "stop", "logit_bias", "ignore_eos", "priority", "response_format",
            "tools", "tool_choice",
        )
    )  # fmt: skip
    body = {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 4, **nulls}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{smol_node.base_url}/v1/chat/completions", json=body, headers=AUTH
        ) as response:
            answer = await response.json()
            assert response.status == 200, answer
        async with session.get(f"{smol_node.base_url}/openapi.json", headers=AUTH) as response:
            spec = await response.json()
    assert answer["usage"]["completion_tokens"] <= 4
    operation = spec["paths"]["/v1/chat/completions"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    described = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
    assert described.is_valid(body), list(described.iter_errors(body))[:1]


async def test_missing_messages_with_the_openai_client(smol_node: LiveNode) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        await smol_node.client.chat.completions.create(model=MODEL, messages=[])
    assert err.value.body["param"] == "messages"  # type: ignore[index]


async def test_full_queue_is_429_with_retry_after(
    socket_enabled: None, tmp_path: Path, smollm2: Path
) -> None:
    node = await start_node(
        tmp_path, (smollm2,), EngineSettings(n_ctx=512, n_slots=2, n_threads=2, max_queue=1)
    )
    try:
        scheduler = await node.scheduler()
        scheduler.set_knobs(max_background=0)  # background work waits: the queue fills
        waiting = asyncio.create_task(
            node.client.completions.create(
                model=MODEL, prompt="hi", max_tokens=2, extra_body={"priority": "background"}
            )
        )
        await until(lambda: scheduler.stats().queue_depth == 1)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{node.base_url}/v1/completions",
                json={"prompt": "hello", "max_tokens": 2},
                headers=AUTH,
            ) as response,
        ):
            body = await response.json()
        assert response.status == 429
        assert int(response.headers["Retry-After"]) >= 1
        assert body["error"]["type"] == "rate_limit_error"
        with pytest.raises(openai.RateLimitError):
            await node.client.completions.create(model=MODEL, prompt="hello", max_tokens=2)
        scheduler.set_knobs(max_background=2)
        assert (await waiting).choices[0].text is not None
    finally:
        await node.client.close()
        await node.server.close()


async def test_a_disconnected_stream_is_cancelled_and_frees_its_cells(
    socket_enabled: None, tmp_path: Path, smollm2: Path
) -> None:
    node = await start_node(
        tmp_path, (smollm2,), EngineSettings(n_ctx=512, n_slots=4, n_threads=2, prefill_chunk=64)
    )
    try:
        scheduler = await node.scheduler()
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{node.base_url}/v1/completions",
                json={
                    "prompt": "warm " * 250,
                    "max_tokens": 200,
                    "stream": True,
                    "ignore_eos": True,
                },
                headers=AUTH,
            )
            await response.content.readuntil(b"\n\n")  # the first token arrived
            assert scheduler.stats().requests_active == 1
            response.close()  # the client goes away mid-stream
        await until(lambda: scheduler.stats().requests_active == 0)
        assert scheduler.stats().kv_cells_used == 0
        assert scheduler.stats().requests_total == 1
        # A prompt that needs nearly the whole context still fits.
        reply = await node.client.completions.create(
            model=MODEL, prompt="cold " * 480, max_tokens=4, extra_body={"ignore_eos": True}
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 4
    finally:
        await node.client.close()
        await node.server.close()


async def test_engine_fault_is_500_and_the_engine_recovers(
    smol_node: LiveNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = await smol_node.scheduler()
    context = scheduler._runtime.context

    def broken(batch: object) -> int:
        raise RuntimeError("simulated native failure")

    monkeypatch.setattr(context, "decode", broken)
    with pytest.raises(openai.InternalServerError) as err:
        await smol_node.client.completions.create(model=MODEL, prompt="hi", max_tokens=4)
    assert err.value.code == "engine_error"
    reply = await smol_node.client.completions.create(
        model=MODEL, prompt="hi", max_tokens=4, extra_body={"ignore_eos": True}
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4
    assert scheduler.stats().faults == 1


async def test_status_reports_llm_figures(smol_node: LiveNode) -> None:
    await smol_node.client.completions.create(model=MODEL, prompt="hi", max_tokens=3)
    await smol_node.next_samples()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{smol_node.base_url}/api/status", headers=AUTH) as response,
    ):
        status = await response.json()
    figures = status["llm"][MODEL]
    assert figures["requests_total"] == 1
    assert figures["ttft_p95_s"] is not None
    assert figures["knobs"]["duty_cycle"] == 1.0
    assert status["work"]["ttft_p95_s"] is not None
    assert {"id": MODEL, "kind": "chat", "state": "loaded"}.items() <= status["models"][0].items()
    assert figures["tokens_per_request"] == 3.0
    # The static hardware draws 30 W: energy per request = energy per token x 3 tokens.
    per_1k = status["energy"]["wh_per_1k_tokens"]
    assert per_1k > 0
    assert figures["wh_per_request"] == pytest.approx(per_1k * 3 / 1000, abs=1e-4)


async def test_metrics_carry_each_models_figures(smol_node: LiveNode) -> None:
    """/metrics has what the status has per model: latency quantiles, tokens and energy
    per request, counters; parsed by prometheus_client's own parser."""
    await smol_node.client.completions.create(model=MODEL, prompt="hi", max_tokens=3)
    await smol_node.next_samples()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{smol_node.base_url}/metrics", headers=AUTH) as response,
    ):
        text = await response.text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    model = (("model", MODEL),)
    assert samples[("heatcompute_llm_requests_total", model)] == 1.0
    assert samples[("heatcompute_llm_tokens_total", model)] == 3.0
    assert samples[("heatcompute_llm_tokens_per_request", model)] == 3.0
    assert samples[("heatcompute_llm_energy_per_request_wh", model)] > 0
    # The finished prompt went to RAM; the KV cache holds nothing idle.
    assert samples[("heatcompute_llm_prompt_cache_entries", model)] == 1.0
    assert samples[("heatcompute_llm_prompt_cache_bytes", model)] > 0
    assert samples[("heatcompute_llm_kv_cells_used", model)] == 0.0
    for what in ("ttft", "latency"):
        p50 = samples[(f"heatcompute_llm_{what}_seconds", (*model, ("quantile", "0.5")))]
        p95 = samples[(f"heatcompute_llm_{what}_seconds", (*model, ("quantile", "0.95")))]
        assert 0 < p50 <= p95
