"""Drives the real Triton HTTP client (tritonclient[http] 2.73.0) against a node.

Runs in its own venv (scripts/tritonclient_venv), not the test's: the tests start it as
a subprocess with a JSON list of steps on stdin and read one JSON result per step from
stdout. Only the standard library, numpy and tritonclient are imported here.

Steps: {"op": "server"} (live, ready, metadata), {"op": "model", "model"} (metadata,
config, ready), {"op": "infer", "model", "seed", "shape", "dtype", "binary", "priority",
"timeout", "version"}, {"op": "send", "model", "count", "tag", ...} (requests started at
once, each from its own client and thread), {"op": "collect"} (their outcomes in the
order they were answered), {"op": "stats", "model"},
{"op": "index"}, {"op": "load", "model", "config"}, {"op": "unload", "model"},
{"op": "no_token"} (a call without the bearer token), {"op": "wait_taken", "model",
"queued", "running"} (until the node reports that many requests of the model queued and
batches computing).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def data(step: dict[str, Any]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(step.get("seed", 0))
    dtype = np.dtype(step.get("dtype", "float32"))
    values: np.ndarray[Any, Any] = rng.uniform(-1, 1, size=step["shape"]).astype(dtype)
    return values


def error(err: InferenceServerException) -> dict[str, Any]:
    return {"ok": False, "status": err.status(), "message": err.message()}


def infer_args(step: dict[str, Any]) -> tuple[list[Any], list[Any] | None, dict[str, Any]]:
    array = data(step)
    datatype = step.get("datatype", "FP32")
    item = httpclient.InferInput(step.get("input", "x"), list(array.shape), datatype)
    item.set_data_from_numpy(array, binary_data=step.get("binary", False))
    outputs = None
    if "output" in step:
        outputs = [
            httpclient.InferRequestedOutput(step["output"], binary_data=step.get("binary", False))
        ]
    kwargs: dict[str, Any] = {}
    if step.get("priority"):
        kwargs["priority"] = step["priority"]
    if step.get("timeout") is not None:
        kwargs["timeout"] = step["timeout"]
    if step.get("version"):
        kwargs["model_version"] = str(step["version"])
    return [item], outputs, kwargs


def result_json(result: Any, name: str) -> dict[str, Any]:
    response = result.get_response()
    out = result.as_numpy(name or response["outputs"][0]["name"])
    return {
        "ok": True,
        "model_version": response.get("model_version"),
        "shape": list(out.shape),
        "values": out.reshape(-1).tolist(),
    }


def run(  # noqa: PLR0912 - one branch per step kind
    client: Any, token_headers: dict[str, str], base: str, step: dict[str, Any]
) -> Any:
    # A copy per call: tritonclient writes Inference-Header-Content-Length into the dict
    # it is given, which would then go stale on the next request.
    headers = dict(token_headers)
    op = step["op"]
    if op == "server":
        return {
            "live": client.is_server_live(headers=headers),
            "ready": client.is_server_ready(headers=headers),
            "metadata": client.get_server_metadata(headers=headers),
        }
    if op == "model":
        try:
            return {
                "ok": True,
                "metadata": client.get_model_metadata(step["model"], headers=headers),
                "config": client.get_model_config(step["model"], headers=headers),
                "ready": client.is_model_ready(step["model"], headers=headers),
            }
        except InferenceServerException as err:
            return error(err)
    if op == "infer":
        inputs, outputs, kwargs = infer_args(step)
        try:
            result = client.infer(step["model"], inputs, outputs=outputs, headers=headers, **kwargs)
        except InferenceServerException as err:
            return error(err)
        return result_json(result, step.get("output_name", step.get("output", "")))
    if op == "send":
        SENT.send(base.removeprefix("http://"), headers, step)
        return {"ok": True}
    if op == "collect":
        return SENT.collect()
    if op == "stats":
        return client.get_inference_statistics(step["model"], headers=headers)
    if op == "index":
        return client.get_model_repository_index(headers=headers)
    if op == "load":
        try:
            config = json.dumps(step["config"]) if "config" in step else None
            client.load_model(step["model"], headers=headers, config=config)
        except InferenceServerException as err:
            return error(err)
        return {"ok": True}
    if op == "unload":
        try:
            client.unload_model(step["model"], headers=headers)
        except InferenceServerException as err:
            return error(err)
        return {"ok": True}
    if op == "no_token":
        try:
            client.get_server_metadata()
        except InferenceServerException as err:
            return error(err)
        return {"ok": True}
    if op == "wait_taken":
        return wait_taken(base, headers, step)
    raise ValueError(f"unknown op {op}")


class Sent:
    """Requests started by "send" steps, each from its own client on its own thread."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.done: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def send(self, url: str, headers: dict[str, str], step: dict[str, Any]) -> None:
        for index in range(step.get("count", 1)):
            args = {**step, "seed": step.get("seed", 0) + index}
            thread = threading.Thread(target=self._one, args=(url, headers, args, index))
            thread.start()
            self.threads.append(thread)

    def _one(self, url: str, headers: dict[str, str], step: dict[str, Any], index: int) -> None:
        client = httpclient.InferenceServerClient(url, network_timeout=120)
        inputs, _, kwargs = infer_args(step)
        try:
            result = client.infer(step["model"], inputs, headers=dict(headers), **kwargs)
            outcome = {"ok": True, "version": result.get_response()["model_version"]}
        except InferenceServerException as err:
            outcome = error(err)
        finally:
            client.close()
        with self.lock:
            self.done.append({"tag": step.get("tag", ""), "index": index, **outcome})

    def collect(self) -> list[dict[str, Any]]:
        """Every sent request's outcome, in the order they were answered."""
        for thread in self.threads:
            thread.join()
        done, self.threads, self.done = self.done, [], []
        return done


def wait_taken(base: str, headers: dict[str, str], step: dict[str, Any]) -> dict[str, Any]:
    """Poll the node's status until `queued` requests of the model wait (an event the
    node reports, not a guess of time)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{base}/api/status", headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            status = json.load(response)
        versions = status.get("onnx", {}).get("models", {}).get(step["model"], [])
        queued = sum(v["pending"] for v in versions)
        running = sum(v["running"] for v in versions)
        if queued == step.get("queued", 0) and running == step.get("running", running):
            return {"ok": True}
        time.sleep(0.005)
    return {"ok": False}


SENT = Sent()


def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    steps = json.load(sys.stdin)
    client = httpclient.InferenceServerClient(url, network_timeout=120)
    headers = {"Authorization": f"Bearer {token}"}
    results = [run(client, headers, f"http://{url}", step) for step in steps]
    client.close()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
