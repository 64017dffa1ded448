"""The least a dynamic batcher on aiohttp can do for the /v2 infer route: (f) in the bench.

A bare aiohttp application (no middlewares, no access log, no auth, no checks, no
statistics, no priorities or timeouts) that reads a KServe v2 binary request (its JSON
header, the tensor with ``np.frombuffer``), queues it, and computes the queue in batches
of at most ``--max-batch`` requests on ``--instances`` long-lived threads that share one
onnxruntime session of one thread per instance (the node's session options: no
spinning), then answers each request its row of the output in binary. Everything a
serving node does beyond this is the node's own cost; what this reaches is the most
that Python, aiohttp and onnxruntime's Python binding allow on these cores, however
well a node is written on them.

    python -m bench.batching_floor --port 18650 --instances 2 --max-batch 8 \\
        --model text-direction=/path/model.onnx [--model name=path ...]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import json
import queue
import threading
from typing import Any

from aiohttp import web
import numpy as np
import numpy.typing as npt

type Array = npt.NDArray[Any]
type Waiting = tuple[Array, asyncio.Future[Array]]


@dataclass(slots=True)
class Model:
    """One model's queue, its free instances and the threads computing its batches."""

    session: Any
    input_name: str
    output_name: str
    instances: int
    max_batch: int
    loop: asyncio.AbstractEventLoop
    waiting: list[Waiting] = field(default_factory=list)
    batches: queue.SimpleQueue[list[Waiting]] = field(default_factory=queue.SimpleQueue)
    free: int = 0

    def start(self) -> None:
        self.free = self.instances
        for number in range(self.instances):
            threading.Thread(target=self._compute, name=f"floor-{number}", daemon=True).start()

    def take(self, sample: Array) -> asyncio.Future[Array]:
        future: asyncio.Future[Array] = self.loop.create_future()
        self.waiting.append((sample, future))
        self._launch()
        return future

    def _launch(self) -> None:
        while self.free and self.waiting:
            batch = self.waiting[: self.max_batch]
            del self.waiting[: self.max_batch]
            self.free -= 1
            self.batches.put(batch)

    def _compute(self) -> None:
        while True:
            batch = self.batches.get()
            samples = [sample for sample, _ in batch]
            joined = np.concatenate(samples) if len(samples) > 1 else samples[0]
            [result] = self.session.run([self.output_name], {self.input_name: joined})
            self.loop.call_soon_threadsafe(self._finished, batch, result)

    def _finished(self, batch: list[Waiting], result: Array) -> None:
        self.free += 1
        self._launch()  # the next batch first, as the node does
        for row, (_, future) in enumerate(batch):
            future.set_result(result[row : row + 1])


def make_app(models: dict[str, Model]) -> web.Application:
    async def infer(request: web.Request) -> web.Response:
        body = await request.read()
        header_length = int(request.headers["Inference-Header-Content-Length"])
        head = json.loads(body[:header_length])
        model = models[request.match_info["model"]]
        shape = head["inputs"][0]["shape"]
        sample = np.frombuffer(memoryview(body)[header_length:], dtype=np.float32)
        result = await model.take(sample.reshape(shape))
        data = result.tobytes()
        answer = {
            "model_name": request.match_info["model"],
            "outputs": [
                {
                    "name": model.output_name,
                    "datatype": "FP32",
                    "shape": list(result.shape),
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
        }
        answer_head = json.dumps(answer).encode()
        return web.Response(
            body=answer_head + data,
            content_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": str(len(answer_head))},
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v2/models/{model}/infer", infer)
    return app


def load_session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


async def serve(
    port: int, make_models: Callable[[asyncio.AbstractEventLoop], dict[str, Model]]
) -> None:
    models = make_models(asyncio.get_running_loop())
    for model in models.values():
        model.start()
    runner = web.AppRunner(make_app(models), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--model", action="append", required=True, help="name=path.onnx")
    args = parser.parse_args()
    sessions = {
        name: load_session(path, 1)
        for name, _, path in (spec.partition("=") for spec in args.model)
    }

    def make_models(loop: asyncio.AbstractEventLoop) -> dict[str, Model]:
        return {
            name: Model(
                session=session,
                input_name=session.get_inputs()[0].name,
                output_name=session.get_outputs()[0].name,
                instances=args.instances,
                max_batch=args.max_batch,
                loop=loop,
            )
            for name, session in sessions.items()
        }

    asyncio.run(serve(args.port, make_models))


if __name__ == "__main__":
    main()
