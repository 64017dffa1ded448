"""The job runner on the ONNX engine: ``read_text`` jobs read a folder of images.

Each image goes through detection, direction and recognition as background work: the
batchers serve people's requests first and hold background batches to the governor's
intensity (the engine's gate), so an OCR job heats the room like an LLM job does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ..engines.onnx.engine import OnnxEngine
from ..engines.onnx.errors import InferenceError, InvalidInputError
from ..engines.onnx.ocr import ImageError, TextReader, decode_image
from .job_runner import ItemFailed, ItemOutput, RunnerBusy
from .jobs import Job, JobKind


class OnnxJobRunner:
    def __init__(self, reader: TextReader) -> None:
        self.reader = reader

    @property
    def onnx(self) -> OnnxEngine:
        return self.reader.engine

    def unavailable(self, kind: JobKind, model: str | None) -> str | None:
        missing = self.reader.missing_models()
        if missing:
            return f"the OCR models are not loaded: {', '.join(missing)}"
        return None

    async def run_item(self, job: Job, item: dict[str, Any]) -> ItemOutput:
        try:
            data = await asyncio.to_thread(Path(item["path"]).read_bytes)
            image = await asyncio.to_thread(decode_image, data)
            result = await self.reader.read(image, background=True)
        except (ImageError, InvalidInputError, OSError) as err:
            raise ItemFailed(str(err)) from err
        except InferenceError as err:  # queue full, model reloading: try again later
            raise RunnerBusy(str(err)) from err
        return ItemOutput(result={"file": item.get("file"), **result.as_json()})

    async def run_filler(self) -> ItemOutput:
        raise RunnerBusy("filler work runs on the LLM engine")

    def engine(self) -> OnnxEngine:
        return self.onnx

    def tokens_total(self) -> int:
        return 0

    def external_requests(self, own: int) -> int:
        # People's ONNX requests are served at once; none waits for heat.
        return 0

    def engine_threads(self) -> int:
        return self.onnx.threads
