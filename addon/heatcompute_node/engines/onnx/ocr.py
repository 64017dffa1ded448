"""Reading text from an image: detection -> direction -> recognition, every model run
through the node's batchers.

Pre- and post-processing are rapidocr's own (the package the default models come from):
image bounds and padding, the detector's resize/normalise and its DB box extraction,
box sorting and perspective crops, the direction classifier's and the recogniser's
resize-and-pad, and CTC decoding with the character list stored in the recogniser's
metadata. Only the inference step is the node's, so that requests from many images (and
from /v2) merge into batches. Two crops go into one recogniser batch only if they have
the same width, so widths are rounded up to steps of ``REC_WIDTH_STEP`` pixels.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import io
import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from .batcher import InferRequest
from .engine import OnnxEngine

DETECTOR = "text-detection"
DIRECTION = "text-direction"
RECOGNISER = "text-recognition"
OCR_MODELS = (DETECTOR, DIRECTION, RECOGNISER)

# rapidocr 3.10.0's defaults (its config.yaml) for these models.
MIN_SIDE, MAX_SIDE = 30, 2000
PAD_MIN_HEIGHT, PAD_WIDTH_HEIGHT_RATIO = 30, 8
DET_LIMIT_SIDE, DET_LIMIT_TYPE = 736, "min"
DET_MEAN = DET_STD = (0.5, 0.5, 0.5)
DB_PARAMS: dict[str, Any] = {
    "thresh": 0.3,
    "box_thresh": 0.5,
    "max_candidates": 1000,
    "unclip_ratio": 1.6,
    "use_dilation": True,
    "score_mode": "fast",
}
CLS_SHAPE = (3, 48, 192)
CLS_LABELS = ["0", "180"]
CLS_THRESHOLD = 0.9
REC_SHAPE = (3, 48, 320)
REC_WIDTH_STEP = 160
TEXT_SCORE = 0.5
MAX_IMAGE_PIXELS = 40_000_000


class ImageError(ValueError):
    """The bytes are not an image the node can read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextLine:
    text: str
    confidence: float
    box: tuple[tuple[int, int], ...]
    """Four corners in the original image's pixels, clockwise from top left."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadResult:
    lines: tuple[TextLine, ...]
    width: int
    height: int

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "lines": [
                {
                    "text": line.text,
                    "confidence": line.confidence,
                    "box": [list(p) for p in line.box],
                }
                for line in self.lines
            ],
            "width": self.width,
            "height": self.height,
        }


def decode_image(data: bytes) -> np.ndarray[Any, Any]:
    """Image bytes (PNG, JPEG, ...) -> a BGR uint8 array, as the models were trained on."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ImageError(f"the image has more than {MAX_IMAGE_PIXELS} pixels")
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise ImageError(f"not an image the node can read: {err}") from err
    return np.ascontiguousarray(rgb[:, :, ::-1])


class TextReader:
    """The three OCR models as one pipeline on an engine."""

    def __init__(self, engine: OnnxEngine) -> None:
        self.engine = engine
        self._decoder: Any = None
        self._decoder_model: object | None = None

    def missing_models(self) -> list[str]:
        served = set(self.engine.names())
        return [name for name in OCR_MODELS if name not in served]

    async def read(self, image: np.ndarray[Any, Any], *, background: bool = False) -> ReadResult:
        height, width = image.shape[:2]
        prepared, record, det_input = await asyncio.to_thread(_detector_input, image)
        det_out = await self._infer(DETECTOR, {"x": det_input}, background)
        crops, boxes = await asyncio.to_thread(_crops, prepared, record, det_out, (height, width))
        if not crops:
            return ReadResult(lines=(), width=width, height=height)
        crops = await self._turn_upright(crops, background)
        texts = await self._recognise(crops, background)
        lines = tuple(
            TextLine(
                text=text,
                confidence=round(float(score), 4),
                box=tuple((int(x), int(y)) for x, y in box),
            )
            for (text, score), box in zip(texts, boxes, strict=True)
            if text and score >= TEXT_SCORE
        )
        return ReadResult(lines=lines, width=width, height=height)

    async def _turn_upright(
        self, crops: list[np.ndarray[Any, Any]], background: bool
    ) -> list[np.ndarray[Any, Any]]:
        import cv2
        from rapidocr.ch_ppocr_cls.main import TextClassifier
        from rapidocr.ch_ppocr_cls.utils import ClsPostProcess

        # rapidocr's method reads only its shape from `self`: called with just that.
        resize: Any = TextClassifier.resize_norm_img
        shim = SimpleNamespace(cls_image_shape=list(CLS_SHAPE))
        inputs = [resize(shim, crop)[np.newaxis] for crop in crops]
        outputs = await asyncio.gather(
            *(self._infer(DIRECTION, {"x": x.astype(np.float32)}, background) for x in inputs)
        )
        post = ClsPostProcess(CLS_LABELS)
        upright = []
        for crop, out in zip(crops, outputs, strict=True):
            [(label, score)] = post(out)
            turned = "180" in label and score > CLS_THRESHOLD
            upright.append(cv2.rotate(crop, cv2.ROTATE_180) if turned else crop)
        return upright

    async def _recognise(
        self, crops: list[np.ndarray[Any, Any]], background: bool
    ) -> list[tuple[str, float]]:
        from rapidocr.ch_ppocr_rec.main import TextRecognizer

        resize: Any = TextRecognizer.resize_norm_img
        shim = SimpleNamespace(rec_image_shape=list(REC_SHAPE))
        _, rec_h, rec_w = REC_SHAPE
        inputs = []
        for crop in crops:
            h, w = crop.shape[:2]
            # Rounded up to a width step, so crops of similar width batch together.
            width = max(rec_w, math.ceil(rec_h * w / h / REC_WIDTH_STEP) * REC_WIDTH_STEP)
            x = resize(shim, crop, width / rec_h)
            inputs.append(x[np.newaxis].astype(np.float32))
        outputs = await asyncio.gather(
            *(self._infer(RECOGNISER, {"x": x}, background) for x in inputs)
        )
        decode = self._ctc_decoder()
        results: list[tuple[str, float]] = []
        for out in outputs:
            [(text, score)], _ = decode(out)
            results.append((text, score))
        return results

    def _ctc_decoder(self) -> Any:
        from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

        model = self.engine.batcher(RECOGNISER).model
        if self._decoder is None or self._decoder_model is not model:
            characters = model.metadata.get("character")
            if not characters:
                raise ImageError("the recogniser has no character list in its metadata")
            self._decoder = CTCLabelDecode(character=characters.splitlines())
            self._decoder_model = model
        return self._decoder

    async def _infer(
        self, model: str, inputs: dict[str, np.ndarray[Any, Any]], background: bool
    ) -> np.ndarray[Any, Any]:
        batcher = self.engine.batcher(model)
        [name] = [spec.name for spec in batcher.model.inputs]
        outputs = await batcher.infer(
            InferRequest(inputs={name: next(iter(inputs.values()))}, background=background)
        )
        return outputs[batcher.model.outputs[0].name]


def _detector_input(
    image: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], dict[str, Any], np.ndarray[Any, Any]]:
    from rapidocr.ch_ppocr_det.utils import DetPreProcess
    from rapidocr.utils.process_img import apply_vertical_padding, resize_image_within_bounds

    resized, ratio_h, ratio_w = resize_image_within_bounds(image, MIN_SIDE, MAX_SIDE)
    record: dict[str, Any] = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
    padded, record = apply_vertical_padding(resized, record, PAD_WIDTH_HEIGHT_RATIO, PAD_MIN_HEIGHT)
    det_input = DetPreProcess(DET_LIMIT_SIDE, DET_LIMIT_TYPE, list(DET_MEAN), list(DET_STD))(padded)
    if det_input is None:
        raise ImageError("the image is too small to read")
    return padded, record, det_input


def _crops(
    image: np.ndarray[Any, Any],
    record: dict[str, Any],
    det_out: np.ndarray[Any, Any],
    original: tuple[int, int],
) -> tuple[list[np.ndarray[Any, Any]], list[np.ndarray[Any, Any]]]:
    from rapidocr.ch_ppocr_det.main import TextDetector
    from rapidocr.ch_ppocr_det.utils import DBPostProcess
    from rapidocr.utils.process_img import get_rotate_crop_image, map_boxes_to_original

    boxes, _scores = DBPostProcess(**DB_PARAMS)(det_out, image.shape[:2])
    if len(boxes) == 0:
        return [], []
    boxes = TextDetector.sorted_boxes(np.asarray(boxes))
    crops = [get_rotate_crop_image(image, box.astype(np.float32).copy()) for box in boxes]
    mapped = map_boxes_to_original(boxes.astype(np.float32), record, *original)
    return crops, list(mapped)
