"""Download a model file: resumable, checked, and never half-visible.

Bytes go to ``<name>.part``; a restarted download asks for the rest with a Range
request (a server that ignores it sends the whole file, which starts over). The SHA-256
covers the whole file, and only a verified file is renamed into place, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
import hashlib
import logging
import os
from pathlib import Path
import time
from typing import Literal

import aiohttp

_LOGGER = logging.getLogger(__name__)
_CHUNK = 1 << 20


type DownloadErrorCode = Literal[
    "checksum_mismatch", "http_error", "connection_error", "invalid_model"
]


class DownloadError(RuntimeError):
    """The download failed or the file did not match its checksum."""

    def __init__(self, message: str, code: DownloadErrorCode) -> None:
        super().__init__(message)
        self.code: DownloadErrorCode = code


@dataclass(slots=True, kw_only=True)
class DownloadProgress:
    """What /api/status shows while a model downloads."""

    name: str
    url: str
    bytes_done: int = 0
    bytes_total: int | None = None
    state: str = "downloading"
    """downloading, verifying, done or failed."""
    error: str | None = None
    error_code: DownloadErrorCode | None = None
    """Why it failed, for clients to translate: checksum_mismatch, http_error,
    connection_error, invalid_model."""
    sha256: str | None = None
    """The checksum the file must match (None: not checked)."""
    started: float = 0.0

    def as_dict(self) -> dict[str, object]:
        fraction = round(self.bytes_done / self.bytes_total, 4) if self.bytes_total else None
        return {
            "name": self.name,
            "url": self.url,
            "state": self.state,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "fraction": fraction,
            "error": self.error,
            "error_code": self.error_code,
            "sha256": self.sha256,
        }


async def download(
    session: aiohttp.ClientSession,
    url: str,
    target: Path,
    *,
    sha256: str | None = None,
    progress: DownloadProgress | None = None,
    mark_done: bool = True,
) -> Path:
    """Fetch `url` into `target`; resumes a `.part` left by an earlier attempt.

    With `mark_done` False the progress stays at "verifying": the caller has more to
    check (the model manager loads the file's metadata) before it is done.
    """
    progress = progress or DownloadProgress(name=target.name, url=url)
    progress.sha256 = sha256.lower() if sha256 is not None else None
    progress.started = time.monotonic()
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        await _fetch(session, url, part, progress)
        progress.state = "verifying"
        if sha256 is not None:
            digest = await _sha256(part)
            if digest != sha256.lower():
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"sha256 mismatch for {url}: got {digest}, want {sha256}", "checksum_mismatch"
                )
        os.replace(part, target)
    except (aiohttp.ClientError, OSError, TimeoutError) as err:
        progress.state, progress.error = "failed", str(err) or type(err).__name__
        progress.error_code = "connection_error"
        raise DownloadError(
            f"download of {url} failed: {progress.error}", "connection_error"
        ) from err
    except DownloadError as err:
        progress.state, progress.error, progress.error_code = "failed", str(err), err.code
        raise
    if mark_done:
        progress.state = "done"
    return target


async def _fetch(
    session: aiohttp.ClientSession, url: str, part: Path, progress: DownloadProgress
) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with session.get(url, headers=headers) as response:
        if response.status == 416:  # nothing left to fetch: the part is complete
            progress.bytes_done = progress.bytes_total = have
            return
        if response.status not in (200, 206):
            raise DownloadError(f"{url} answered HTTP {response.status}", "http_error")
        if response.status == 200:
            have = 0  # the server ignored the range: start over
        length = response.content_length
        progress.bytes_total = have + length if length is not None else None
        progress.bytes_done = have
        with part.open("ab" if have else "wb") as file:
            async for chunk in response.content.iter_chunked(_CHUNK):
                file.write(chunk)
                progress.bytes_done += len(chunk)
    _LOGGER.info("downloaded %s (%d bytes)", url, progress.bytes_done)


async def _sha256(path: Path) -> str:
    import asyncio

    def digest() -> str:
        hasher = hashlib.sha256()
        with path.open("rb") as file:
            while block := file.read(_CHUNK):
                hasher.update(block)
        return hasher.hexdigest()

    return await asyncio.to_thread(digest)
