"""The heatcompute.read_text action, end to end: Home Assistant reads a meter through a
real node on 127.0.0.1 with the default OCR models.

Real: Home Assistant with the integration set up, its camera component (a demo-free
camera entity that serves a rendered snapshot), the node with rapidocr's models on
onnxruntime. The image is rendered by the test (Pillow), not taken by a camera.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from homeassistant.components.camera import Camera
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.setup import async_setup_component
import pytest

from custom_components.heatcompute.const import DOMAIN
from scripts.onnx_models import build_repository
from tests.onnx.images import METER, WORDS, meter_and_label_png

from .conftest import RunningNode, make_entry, setup_entry


class SnapshotCamera(Camera):
    """A camera whose every snapshot is the rendered meter (stands in for a real one)."""

    _attr_name = "Gas meter"
    _attr_unique_id = "gas-meter"

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        return meter_and_label_png()


@pytest.fixture
async def ocr_node(socket_enabled: None, tmp_path: Path) -> AsyncIterator[RunningNode]:
    running = RunningNode(tmp_path / "node", onnx_repository=build_repository(tmp_path / "onnx"))
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


class BrokenCamera(Camera):
    """A camera that has no picture to give (unplugged)."""

    _attr_name = "Doorbell"
    _attr_unique_id = "doorbell"

    async def async_camera_image(
        self, width: int | None = None, height: int | None = None
    ) -> bytes | None:
        return None


async def add_camera(hass: HomeAssistant) -> str:
    assert await async_setup_component(hass, "camera", {})
    await hass.async_block_till_done()
    component = hass.data["camera"]  # the camera component's EntityComponent
    await component.async_add_entities([SnapshotCamera(), BrokenCamera()])
    await hass.async_block_till_done()
    return "camera.gas_meter"


async def test_read_text_from_a_camera_and_a_file(
    hass: HomeAssistant, ocr_node: RunningNode, tmp_path: Path
) -> None:
    entry = make_entry(ocr_node)
    await setup_entry(hass, entry)
    camera = await add_camera(hass)

    reply: Any = await hass.services.async_call(
        DOMAIN,
        "read_text",
        {"config_entry_id": entry.entry_id, "camera_entity_id": camera},
        blocking=True,
        return_response=True,
    )
    assert reply is not None
    assert reply["text"] == f"{METER}\n{WORDS}"
    # What an automation does with it: the meter as a number.
    assert float(reply["lines"][0]["text"]) == 4217.3

    image = tmp_path / "meter.png"
    image.write_bytes(meter_and_label_png())
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    reply = await hass.services.async_call(
        DOMAIN,
        "read_text",
        {"config_entry_id": entry.entry_id, "image_path": str(image)},
        blocking=True,
        return_response=True,
    )
    assert reply is not None
    assert [line["text"] for line in reply["lines"]] == [METER, WORDS]

    with pytest.raises(ServiceValidationError) as refused:
        await hass.services.async_call(
            DOMAIN,
            "read_text",
            {"config_entry_id": entry.entry_id, "image_path": "/etc/passwd"},
            blocking=True,
            return_response=True,
        )
    assert refused.value.translation_key == "path_not_allowed"

    with pytest.raises(ServiceValidationError) as nothing:
        await hass.services.async_call(
            DOMAIN,
            "read_text",
            {"config_entry_id": entry.entry_id},
            blocking=True,
            return_response=True,
        )
    assert nothing.value.translation_key == "no_image"

    with pytest.raises(HomeAssistantError) as no_picture:
        await hass.services.async_call(
            DOMAIN,
            "read_text",
            {"config_entry_id": entry.entry_id, "camera_entity_id": "camera.doorbell"},
            blocking=True,
            return_response=True,
        )
    assert no_picture.value.translation_key == "camera_failed"

    with pytest.raises(ServiceValidationError) as missing:
        await hass.services.async_call(
            DOMAIN,
            "read_text",
            {"config_entry_id": entry.entry_id, "image_path": str(tmp_path / "gone.png")},
            blocking=True,
            return_response=True,
        )
    assert missing.value.translation_key == "image_unreadable"
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
