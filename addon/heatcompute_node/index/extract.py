"""The text of one file: plain text and Markdown as they are, PDFs page by page (pypdf),
images through the node's own text reading (the ONNX OCR models, as background work).

A file that can't be read raises `UnreadableFileError` (it is listed, never fatal, and
tried again once it changes); `ReaderNotReadyError` means "not now" (the OCR models are
not loaded yet, or their queue is full) and leaves the file pending.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
import io
import os
from typing import Literal

from ..engines.onnx.errors import InferenceError, InvalidInputError
from ..engines.onnx.ocr import ImageError, TextReader, decode_image
from ..mcp.files import AllowedFolders, open_inside
from ..mcp.tools import ToolError

type FileKind = Literal["text", "pdf", "image"]

TEXT_SUFFIXES = frozenset(
    {".txt", ".md", ".markdown", ".rst", ".org", ".csv", ".log", ".json", ".yaml", ".yml", ".ini"}
)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MAX_FILE_BYTES = 64 * 1024 * 1024
"""Larger files are listed as unreadable: a household document is rarely this big, and
one file is read whole into memory."""


class UnreadableFileError(Exception):
    """This file's text can't be had (broken, encrypted, binary, too large)."""


class ReaderNotReadyError(Exception):
    """Not now: the OCR models are not loaded or busy. The file stays pending."""


@dataclass(frozen=True, slots=True)
class Section:
    """A run of text with its place: a whole text file, a PDF page, an image."""

    text: str
    page: int | None = None


def kind_of(name: str) -> FileKind | None:
    suffix = os.path.splitext(name)[1].lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix == ".pdf":
        return "pdf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return None


def read_inside(folders: AllowedFolders, path: str) -> bytes:
    """The file's bytes, opened without following a last link and checked to lie inside
    the shared folders (the MCP file tools' own open). Blocking: call it in a thread."""
    try:
        fd = open_inside(folders, path)
    except ToolError as err:
        raise UnreadableFileError(str(err)) from err
    with contextlib.closing(os.fdopen(fd, "rb")) as file:
        size = os.fstat(file.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise UnreadableFileError(f"{size} bytes; files over {MAX_FILE_BYTES} are skipped")
        return file.read(MAX_FILE_BYTES + 1)


def text_sections(data: bytes) -> list[Section]:
    if b"\x00" in data[:8192]:
        raise UnreadableFileError("a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")  # older Windows notes
    return [Section(text)]


def pdf_sections(data: bytes) -> list[Section]:
    """Each page's text layer. Scanned PDFs without one give no text (listed as such)."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError("the PDF is encrypted")
        sections = [
            Section(page.extract_text() or "", page=number)
            for number, page in enumerate(reader.pages, start=1)
        ]
    except UnreadableFileError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as err:
        # pypdf raises more than its own errors on broken files.
        raise UnreadableFileError(f"not a readable PDF: {err}") from err
    if not any(section.text.strip() for section in sections):
        raise UnreadableFileError("the PDF has no text layer (a scan without text)")
    return sections


async def image_sections(
    data: bytes, reader: TextReader | None, *, background: bool
) -> list[Section]:
    """The image's text. As background work the OCR batches wait for the governor's gate
    (heat wanted, or a deadline); a person's "index now" reads at once."""
    if reader is None or reader.missing_models():
        raise ReaderNotReadyError("the text reading (OCR) models are not loaded")
    try:
        image = await asyncio.to_thread(decode_image, data)
        result = await reader.read(image, background=background)
    except (ImageError, InvalidInputError) as err:
        raise UnreadableFileError(str(err)) from err
    except InferenceError as err:  # queue full, a model reloading
        raise ReaderNotReadyError(str(err)) from err
    return [Section(result.text)]


async def sections_of(
    kind: FileKind, data: bytes, reader: TextReader | None, *, background: bool = True
) -> list[Section]:
    if kind == "text":
        return text_sections(data)
    if kind == "pdf":
        return await asyncio.to_thread(pdf_sections, data)
    return await image_sections(data, reader, background=background)
