"""The floor under any aiohttp server of the /v2 infer route on this machine.

A bare aiohttp application (no middlewares, no access log, as the node runs it) whose
infer route reads the request's whole body and answers with bytes recorded from the
node's own answer to the same request: no parsing, no batcher, no model. The CPU it
spends per request is what aiohttp and the kernel's TCP stack cost before the node does
anything, so a node on aiohttp can do no better than

    kernel CPU per sample / (kernel CPU per sample + floor CPU + client CPU)

of the kernel's ceiling when the cores are shared by all three (bench/onnx_batching.py
prints it as (e)).

    python -m bench.http_floor --port 18650 --answers answers.json

``answers.json`` maps a model name to ``[base64 body, Inference-Header-Content-Length]``.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

from aiohttp import web


def make_app(answers: dict[str, tuple[bytes, str]]) -> web.Application:
    async def infer(request: web.Request) -> web.Response:
        await request.read()
        body, header_length = answers[request.match_info["model"]]
        return web.Response(
            body=body,
            content_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": header_length},
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v2/models/{model}/infer", infer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--answers", type=Path, required=True)
    args = parser.parse_args()
    raw = json.loads(args.answers.read_text(encoding="utf-8"))
    answers = {name: (base64.b64decode(body), str(size)) for name, (body, size) in raw.items()}
    web.run_app(make_app(answers), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
