"""A household's documents for bench/heat_season.py: the archive, and what arrives daily.

What the index would find in a household's allowed folders when it is switched on, and
what lands there through the week (the scanner's letters and receipts, phone photos of
labels, notes). Sizes come from this generator, seeded per week; what each document
costs to index comes from the node's figures measured on the dev machine (2 cores,
all-MiniLM-L6-v2 and rapidocr's models), taken as the 200 W node's full power:

- text is cut into passages of ~600 characters (index/chunk.py), each embedded (notes
  come out at ~3 passages, like bench/index_throughput.py's generated household notes);
- a PDF page is parsed, then its passages embedded; a scanned page has no text layer
  and is read with the OCR models first, like a photo;
- a photo goes through text detection and recognition (about one recognised line per
  40 ms, docs/benchmarks.md), then its passages are embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
import random
from typing import Literal

from heatcompute_node.hardware.twin import DAY_S, HOUR_S

type DocumentKind = Literal["note", "letter", "scan", "manual", "photo"]

CHUNK_CHARS = 600
EMBED_S_PER_CHUNK = 0.08
"""Full-power seconds to read, cut, embed and store one passage, batched: bench/
index_throughput.py measured 1.7 passages/s with about a seventh of the 2 cores (load
13-14), about 12/s for the whole machine (docs/benchmarks.md)."""
PDF_S_PER_PAGE = 0.03
OCR_S_PER_LINE = 0.04
OCR_DETECT_S = 0.4
"""Text detection of one page or photo (PP-OCRv6 det, before any line is read)."""


@dataclass(frozen=True, slots=True)
class Document:
    arrives_at: float
    """When it is in an allowed folder (0 for the archive found at the start)."""
    kind: DocumentKind
    chunks: int
    cost_s: float
    """Full-power seconds to read, cut and embed it."""


def _text_doc(
    at: float, kind: DocumentKind, chars: int, embed_s: float, pages: int = 0
) -> Document:
    chunks = max(1, math.ceil(chars / CHUNK_CHARS))
    return Document(at, kind, chunks, pages * PDF_S_PER_PAGE + chunks * embed_s)


def _ocr_doc(
    at: float, kind: DocumentKind, pages: int, lines_per_page: int, embed_s: float
) -> Document:
    chars = pages * lines_per_page * 50
    chunks = max(1, math.ceil(chars / CHUNK_CHARS))
    ocr = pages * (OCR_DETECT_S + lines_per_page * OCR_S_PER_LINE)
    return Document(at, kind, chunks, ocr + chunks * embed_s)


def _one(rng: random.Random, at: float, kind: DocumentKind, embed_s: float) -> Document:
    if kind == "note":  # Markdown and text notes: 0.3-8 KB
        return _text_doc(at, kind, int(rng.lognormvariate(math.log(1500), 0.9)), embed_s)
    if kind == "letter":  # a PDF with text, 1-4 pages of ~2,500 characters
        pages = rng.randint(1, 4)
        return _text_doc(at, kind, pages * 2500, embed_s, pages)
    if kind == "scan":  # a scanned letter or receipt: 1-3 pages of image, 15-45 lines each
        return _ocr_doc(at, kind, rng.randint(1, 3), rng.randint(15, 45), embed_s)
    if kind == "manual":  # a device's manual: 20-200 pages of text
        pages = rng.randint(20, 200)
        return _text_doc(at, kind, pages * 2000, embed_s, pages)
    # a phone photo of a label, a meter, a whiteboard: 3-30 lines
    return _ocr_doc(at, kind, 1, rng.randint(3, 30), embed_s)


ARCHIVE: dict[DocumentKind, int] = {
    "note": 400,
    "letter": 900,
    "scan": 700,
    "manual": 80,
    "photo": 600,
}
"""What a household keeps: ten years of letters and receipts, the manuals of its devices."""
DAILY: dict[DocumentKind, float] = {"note": 2.0, "letter": 1.5, "scan": 3.0, "photo": 2.0}
"""What arrives on an ordinary day (Poisson means)."""


def household(
    seed: int, days: int, *, archive: bool = True, embed_s: float = EMBED_S_PER_CHUNK
) -> list[Document]:
    """The archive at t=0 (if asked for) and the documents arriving over ``days``;
    ``embed_s``: full-power seconds per passage."""
    rng = random.Random(seed * 7919 + 17)
    documents: list[Document] = []
    if archive:
        for kind, count in ARCHIVE.items():
            documents += [_one(rng, 0.0, kind, embed_s) for _ in range(count)]
    for day in range(days):
        for kind, mean in DAILY.items():
            for _ in range(_poisson(rng, mean)):
                # Scanned and saved in the daytime, mostly in the evening.
                hour = min(23.9, max(7.0, rng.gauss(18.0, 3.0)))
                documents.append(_one(rng, day * DAY_S + hour * HOUR_S, kind, embed_s))
    documents.sort(key=lambda d: d.arrives_at)
    return documents


def _poisson(rng: random.Random, mean: float) -> int:
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count
