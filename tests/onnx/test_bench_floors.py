"""The bench's floors serve what they claim: (f), the least dynamic batcher on aiohttp
(bench/batching_floor.py), answers every concurrent request its own row of the real
classifier's output; a floor that mixed rows up or skipped the model would make the
bench's bound meaningless."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
import numpy as np

from bench.batching_floor import Model, load_session, make_app
from bench.onnx_load import binary_request

from .conftest import direction_model

SHAPE = (1, 3, 48, 192)


def answer_tensor(body: bytes, header_length: int) -> np.ndarray[Any, Any]:
    head = json.loads(body[:header_length])
    [output] = head["outputs"]
    data = np.frombuffer(body[header_length:], dtype=np.float32)
    return data.reshape(output["shape"])


async def test_batching_floor_answers_each_request_its_own_row() -> None:
    session = load_session(str(direction_model()), 1)
    model = Model(
        session=session,
        input_name=session.get_inputs()[0].name,
        output_name=session.get_outputs()[0].name,
        instances=1,
        max_batch=4,
        loop=asyncio.get_running_loop(),
    )
    model.start()
    rng = np.random.default_rng(7)
    samples = [rng.uniform(-1, 1, size=SHAPE).astype(np.float32) for _ in range(9)]
    expected = [session.run(None, {"x": sample})[0] for sample in samples]
    server = TestServer(make_app({"text-direction": model}), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as client:

            async def ask(sample: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
                body, headers = binary_request(sample)
                url = f"http://127.0.0.1:{server.port}/v2/models/text-direction/infer"
                async with client.post(url, data=body, headers=headers) as response:
                    assert response.status == 200
                    length = int(response.headers["Inference-Header-Content-Length"])
                    return answer_tensor(await response.read(), length)

            answers = await asyncio.gather(*(ask(sample) for sample in samples))
    finally:
        await server.close()
    for got, want in zip(answers, expected, strict=True):
        assert got.shape == want.shape == (1, 2)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The nine answers are not all one row repeated.
    assert len({tuple(np.round(answer[0], 5)) for answer in answers}) > 1
