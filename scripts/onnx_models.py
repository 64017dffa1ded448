"""Lay out the default ONNX model repository from the models inside PyPI wheels.

rapidocr 3.10.0 ships PP-OCRv6's text detector and recogniser and the text-direction
classifier; silero-vad 6.2.3 ships its voice-activity model. No model hub is needed:
scripts/setup installs both packages (silero-vad without its torch dependency) and runs
this. Each model gets a folder with version 1 (a link to the packaged file) and a
config.json; the direction classifier also gets its int8 check set, rendered here from
text with Pillow and cut exactly as the node cuts text lines::

    python scripts/onnx_models.py models/onnx
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
import random
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "addon"))

# The models and their configs are the node's (the add-on image lays out the same).
from heatcompute_node.engines.onnx.defaults import CONFIGS, SOURCES

__all__ = ["CONFIGS", "SOURCES", "build_repository", "direction_check_set", "package_file"]

CHECK_WORDS = (
    "Gas meter 04217.3 m3",
    "heat pump",
    "Parcel for Anna Weber",
    "kitchen window",
    "Invoice 2026-11",
    "water 000381",
    "living room",
    "Return to sender",
)


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"{relative} not found in the installed package {package}")


def build_repository(target: Path, *, names: tuple[str, ...] = tuple(SOURCES)) -> Path:
    """Make (or refresh) the repository under ``target``; returns it."""
    for name in names:
        package, relative = SOURCES[name]
        folder = target / name
        version = folder / "1"
        version.mkdir(parents=True, exist_ok=True)
        link = version / "model.onnx"
        source = package_file(package, relative)
        if link.is_symlink() or link.exists():
            if link.resolve() == source.resolve():
                pass
            else:
                link.unlink()
                link.symlink_to(source)
        else:
            link.symlink_to(source)
        config = folder / "config.json"
        config.write_text(json.dumps(CONFIGS[name], indent=2) + "\n", encoding="utf-8")
        if name == "text-direction" and not (folder / "check.npz").exists():
            np.savez_compressed(folder / "check.npz", x=direction_check_set())
    return target


def render_line(text: str, *, size: int = 32, upside_down: bool = False) -> np.ndarray[Any, Any]:
    """A text line as a BGR crop, dark on light, as a camera would see a label."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    size_px = (int(right - left) + 16, int(bottom - top) + 12)
    image = Image.new("RGB", size_px, (235, 232, 225))
    ImageDraw.Draw(image).text((8 - left, 6 - top), text, font=font, fill=(20, 20, 30))
    if upside_down:
        image = image.rotate(180)
    bgr: np.ndarray[Any, Any] = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    return bgr


def direction_check_set(samples: int = 48) -> np.ndarray[Any, Any]:
    """Text lines, half of them upside down, normalised as the node feeds the classifier."""
    from rapidocr.ch_ppocr_cls.main import TextClassifier

    resize: Any = TextClassifier.resize_norm_img  # reads only the shape from `self`
    shim = SimpleNamespace(cls_image_shape=[3, 48, 192])
    rng = random.Random(20261130)  # noqa: S311 - a fixed, reproducible check set
    rows: list[np.ndarray[Any, Any]] = []
    for index in range(samples):
        text = CHECK_WORDS[index % len(CHECK_WORDS)]
        crop = render_line(text, size=rng.choice((24, 32, 40)), upside_down=index % 2 == 1)
        rows.append(resize(shim, crop))
    check: np.ndarray[Any, Any] = np.stack(rows).astype(np.float32)
    return check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="the repository folder, e.g. models/onnx")
    args = parser.parse_args()
    print(build_repository(args.target))


if __name__ == "__main__":
    main()
