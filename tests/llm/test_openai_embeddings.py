"""/v1/embeddings with a real sentence-embedding model (all-MiniLM-L6-v2) beside SmolLM2.

The real `openai` client against a real node on 127.0.0.1 that serves both models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import numpy.typing as npt
import openai
import pytest

from scripts.convert_minilm import package_model_dir

from .conftest import SMALL_ENGINE, SMOLLM2, TOKEN, LiveNode, start_node
from .minilm_reference import WordPiece

MINILM = "all-MiniLM-L6-v2"
CHAT_MODEL = SMOLLM2.stem


@pytest.fixture
async def node(
    socket_enabled: None, tmp_path: Path, smollm2: Path, minilm: Path
) -> AsyncIterator[LiveNode]:
    node = await start_node(tmp_path, (smollm2, minilm), SMALL_ENGINE)
    yield node
    await node.client.close()
    await node.server.close()


async def embed(node: LiveNode, texts: list[str]) -> npt.NDArray[np.float64]:
    result = await node.client.embeddings.create(model=MINILM, input=texts)
    assert [d.index for d in result.data] == list(range(len(texts)))
    return np.array([d.embedding for d in result.data])


async def test_models_lists_the_chat_and_the_embedding_model(node: LiveNode) -> None:
    models = {m.id: m for m in (await node.client.models.list()).data}
    assert set(models) == {CHAT_MODEL, MINILM}
    assert models[MINILM].kind == "embedding"  # type: ignore[attr-defined]
    assert models[CHAT_MODEL].kind == "chat"  # type: ignore[attr-defined]
    # BERT's position table ends at 512: the node says so rather than its context size.
    assert models[MINILM].context_length == 512  # type: ignore[attr-defined]


async def test_similar_sentences_are_closer_than_unrelated_ones(node: LiveNode) -> None:
    vectors = await embed(
        node,
        [
            "The cat sleeps on the sofa.",
            "A cat is napping on the couch.",
            "Quarterly corporate tax filings are due in April.",
            "How do I file my taxes before the deadline?",
        ],
    )
    assert vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    similarity = vectors @ vectors.T
    cats, taxes = similarity[0, 1], similarity[2, 3]
    unrelated = max(similarity[0, 2], similarity[0, 3], similarity[1, 2], similarity[1, 3])
    assert cats > 0.6
    assert taxes > 0.4
    assert unrelated < 0.2


async def test_prompt_tokens_are_the_model_tokenizers_count(node: LiveNode) -> None:
    texts = ["Heat the living room to 21 °C.", "Wärmepumpe, café, naïve!", "ok"]
    result = await node.client.embeddings.create(model=MINILM, input=texts)
    # BERT's own WordPiece tokenizer (from the package's vocab.txt), [CLS] and [SEP] included.
    wordpiece = WordPiece(package_model_dir() / "vocab.txt")
    expected = sum(len(wordpiece.encode(t)) for t in texts)
    assert result.usage.prompt_tokens == expected
    assert result.usage.total_tokens == expected


async def test_a_batch_embeds_each_input_as_if_alone(node: LiveNode) -> None:
    # 40 inputs: more than the 32 sequences the engine packs into one batch.
    texts = [f"Room {i} wants {18 + i % 5} degrees." for i in range(40)]
    batch = await embed(node, texts)
    alone = np.concatenate([await embed(node, [texts[i]]) for i in (0, 17, 39)])
    assert batch.shape == (40, 384)
    # Equal up to float rounding (matmuls of another shape): no input sees another.
    assert (batch[[0, 17, 39]] * alone).sum(axis=1) == pytest.approx([1.0] * 3, abs=1e-5)
    assert len({v.tobytes() for v in batch}) == 40


async def test_an_input_beyond_512_tokens_is_a_400_in_openai_shape(node: LiveNode) -> None:
    too_long = "heat " * 600
    with pytest.raises(openai.BadRequestError) as err:
        await node.client.embeddings.create(model=MINILM, input=["short", too_long])
    assert err.value.status_code == 400
    assert err.value.code == "context_length_exceeded"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{node.base_url}/v1/embeddings",
            json={"model": MINILM, "input": too_long},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        assert response.status == 400
        body = await response.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "input"
    assert body["error"]["code"] == "context_length_exceeded"
    assert "602 tokens" in body["error"]["message"]
    assert "512" in body["error"]["message"]
    # The same figures as fields, and which input it was.
    error = err.value.body
    assert isinstance(error, dict)
    assert (error["prompt_tokens"], error["context_length"], error["input_index"]) == (602, 512, 1)


async def test_chat_and_embeddings_run_together_on_one_node(node: LiveNode) -> None:
    chat, vectors = await asyncio.gather(
        node.client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            temperature=0,
            max_tokens=16,
        ),
        embed(node, ["The capital of France is Paris.", "Paris is France's capital."]),
    )
    assert chat.choices[0].message.content
    assert vectors @ vectors[0] == pytest.approx([1.0, 0.9], abs=0.1)
    states = {m["id"]: m["state"] for m in node.manager.status()}
    assert states == {CHAT_MODEL: "loaded", MINILM: "loaded"}
    # Without a model name, embeddings go to the embedding model, chat to the chat model.
    default = await node.client.embeddings.create(model="", input="hello")
    assert default.model == MINILM
