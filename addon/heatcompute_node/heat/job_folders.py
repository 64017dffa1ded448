"""Folder jobs read text files, but only inside the directories the owner allowed.

A path given over HTTP is untrusted: it is resolved (symlinks and ``..`` included) and
must land inside one of the configured job folders, and so must every file found in it
(a symlink in an allowed folder pointing at /etc is not followed out). Files are checked
again when they are read, since the folder may change between submission and run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .jobs import MAX_ITEMS, JobError

MAX_FILE_BYTES = 1_000_000
MAX_IMAGE_BYTES = 16_000_000


def resolve_folder(requested: str, allowed: Sequence[Path]) -> Path:
    """The real directory ``requested`` names, if it is inside an allowed folder.

    A relative path is taken relative to the first allowed folder.
    """
    if not allowed:
        raise JobError(
            "folder jobs are disabled: no job folders are configured (--job-folder)",
            param="folder",
            code="folder_not_allowed",
        )
    roots = [root.resolve() for root in allowed]
    candidate = Path(requested)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = candidate.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise JobError(
            f"folder {requested!r} is outside the allowed job folders",
            param="folder",
            code="folder_not_allowed",
        )
    if not resolved.is_dir():
        raise JobError(
            f"folder {requested!r} does not exist", param="folder", code="folder_not_found"
        )
    return resolved


def list_text_files(folder: Path, pattern: str) -> list[str]:
    """Relative paths of the matching files under ``folder`` (recursive), sorted."""
    files: list[str] = []
    for path in sorted(folder.rglob(pattern)):
        if not path.is_file() or not path.resolve().is_relative_to(folder):
            continue
        files.append(path.relative_to(folder).as_posix())
        if len(files) > MAX_ITEMS:
            raise JobError(
                f"the folder holds more than {MAX_ITEMS} matching files",
                param="folder",
                code="too_many_items",
            )
    if not files:
        raise JobError(
            f"no files match {pattern!r} in the folder", param="folder", code="empty_folder"
        )
    return files


def image_file(folder: Path, relative: str) -> Path:
    """The path of one image of a read_text job, checked like a text file."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder):
        raise ValueError(f"{relative} now points outside the job folder")
    size = path.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise ValueError(f"{relative} is {size} bytes; images over {MAX_IMAGE_BYTES} are skipped")
    return path


def read_text_file(folder: Path, relative: str) -> str:
    """Read one file of a folder job; raises ValueError with a reason if it can't be used."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder):
        raise ValueError(f"{relative} now points outside the job folder")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{relative} is {size} bytes; files over {MAX_FILE_BYTES} are skipped")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{relative} is not UTF-8 text") from err
