"""POST /api/read-text on a real node with the default OCR models (rapidocr's PP-OCRv6
detector and recogniser, the direction classifier), images rendered by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from .conftest import OnnxNode
from .images import METER, WORDS, meter_and_label_png


async def read(
    node: OnnxNode, *, content_type: str | None = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    headers = {**node.headers, **({"Content-Type": content_type} if content_type else {})}
    async with node.session.post(
        f"{node.base}/api/read-text", headers=headers, **kwargs
    ) as response:
        return response.status, await response.json()


async def test_reads_a_meter_and_a_line_of_words_exactly(
    make_node: Any, ocr_repository: Path
) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    status, body = await read(node, data=meter_and_label_png(), content_type="image/png")
    assert status == 200, body
    assert [line["text"] for line in body["lines"]] == [METER, WORDS]
    assert body["text"] == f"{METER}\n{WORDS}"
    meter = body["lines"][0]
    assert meter["confidence"] > 0.9
    # The meter's box lies where it was drawn (x 40.., y 40..), in the image's pixels.
    xs = [x for x, _ in meter["box"]]
    ys = [y for _, y in meter["box"]]
    assert 20 <= min(xs) <= 60
    assert 20 <= min(ys) <= 60
    assert max(ys) <= 130
    assert (body["width"], body["height"]) == (640, 240)
    # Every stage went through the batchers.
    figures = (await node.status())["onnx"]["models"]
    for model in ("text-detection", "text-direction", "text-recognition"):
        assert figures[model][0]["inferences"] >= 1, model


async def test_an_upside_down_label_is_turned_and_read(
    make_node: Any, ocr_repository: Path
) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    status, body = await read(node, data=meter_and_label_png(upside_down=True))
    assert status == 200, body
    assert sorted(line["text"] for line in body["lines"]) == sorted([METER, WORDS])


async def test_reads_an_image_from_a_url_on_the_lan_and_refuses_others(
    make_node: Any, ocr_repository: Path
) -> None:
    node: OnnxNode = await make_node(ocr_repository)

    async def snapshot(request: web.Request) -> web.Response:
        return web.Response(body=meter_and_label_png(), content_type="image/png")

    camera = web.Application()
    camera.router.add_get("/snapshot.png", snapshot)
    server = TestServer(camera, host="127.0.0.1")
    await server.start_server()
    try:
        status, body = await read(
            node, json={"url": f"http://127.0.0.1:{server.port}/snapshot.png"}
        )
        assert status == 200, body
        assert body["text"] == f"{METER}\n{WORDS}"
        status, body = await read(node, json={"url": f"http://127.0.0.1:{server.port}/missing"})
        assert status == 502
    finally:
        await server.close()
    status, body = await read(node, json={"url": "http://8.8.8.8/snapshot.jpg"})
    assert status == 400
    assert body["error"]["code"] == "not_local"
    status, body = await read(node, json={"url": "file:///etc/passwd"})
    assert status == 400


async def test_urls_that_name_nothing_are_the_callers_mistake(
    make_node: Any, ocr_repository: Path
) -> None:
    """A port out of range or a broken IPv6 literal made urlsplit raise (500), and a host
    that does not exist answered 502 as if a camera had failed: all are 400 now."""
    node: OnnxNode = await make_node(ocr_repository)
    for url in ("http://camera.local:99999/snapshot.jpg", "http://[::1/snapshot.jpg"):
        status, body = await read(node, json={"url": url})
        assert (status, body["error"]["code"], body["error"]["param"]) == (
            400,
            "invalid_value",
            "url",
        ), body
    status, body = await read(node, json={"url": "http://no-such-camera.invalid/snapshot.jpg"})
    assert (status, body["error"]["code"]) == (400, "unknown_host"), body
    status, body = await read(node, data=meter_and_label_png())
    assert status == 200, body


async def test_bad_images_are_refused_and_the_node_keeps_reading(
    make_node: Any, ocr_repository: Path
) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    status, body = await read(node, data=b"\x89PNG not really")
    assert status == 400
    assert body["error"]["code"] == "invalid_image"
    status, body = await read(node, data=b"")
    assert status == 400
    status, body = await read(node, data=meter_and_label_png())
    assert status == 200
    assert body["lines"][0]["text"] == METER


async def test_without_the_ocr_models_reading_is_503(make_node: Any, tmp_path: Path) -> None:
    node: OnnxNode = await make_node(tmp_path / "empty")
    status, body = await read(node, data=meter_and_label_png())
    assert status == 503
    assert "text-detection" in body["error"]["message"]


async def test_with_serving_switched_off_reading_is_refused(
    make_node: Any, ocr_repository: Path
) -> None:
    node: OnnxNode = await make_node(ocr_repository)
    async with node.session.patch(
        f"{node.base}/api/config", json={"serve_requests": False}, headers=node.headers
    ) as response:
        assert response.status == 200
    status, body = await read(node, data=meter_and_label_png())
    assert status == 503
    assert body["error"]["code"] == "not_serving"
    async with node.session.post(
        f"{node.base}/v2/models/text-direction/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 3, 48, 8],
                    "datatype": "FP32",
                    "data": [0.0] * (3 * 48 * 8),
                }
            ]
        },
        headers=node.headers,
    ) as response:
        assert response.status == 503
        assert "error" in await response.json()
