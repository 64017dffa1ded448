"""File tools: read-only access to the folders the owner lists, and nothing else.

Every path is resolved to its real path (symlinks followed, ``..`` collapsed) and must
then lie inside an allowed folder, compared component-wise: ``/srv/allowed_evil`` is not
inside ``/srv/allowed``. The file is opened without following a last symlink and the
opened descriptor's own path is checked again, so a link swapped in between the check
and the open can't lead out either. NUL bytes are refused before anything touches the
file system.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
import contextlib
from datetime import UTC, datetime
import fnmatch
import mimetypes
import os
from pathlib import Path
import stat
import time
from typing import Any

from .tools import Arguments, Limits, Tool, ToolError, integer, schema, string

_SNIFF_BYTES = 8192


class AllowedFolders:
    """The owner's folders, as real paths, and the containment check."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.roots: tuple[str, ...] = tuple(os.path.realpath(f) for f in folders)

    def contains(self, real: str) -> bool:
        return any(
            real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots
        )

    def resolve(self, path: str) -> str:
        """The real path of `path` if it lies inside an allowed folder; else a ToolError."""
        if "\x00" in path:
            raise ToolError("the path holds a NUL byte; refused")
        if not self.roots:
            raise ToolError("no folders are shared with this bridge (setting mcp_folders)")
        if not path.strip():
            raise ToolError("the path is empty")
        # Relative paths are taken from the first folder; '..' is resolved before the check.
        joined = path if os.path.isabs(path) else os.path.join(self.roots[0], path)
        real = os.path.realpath(joined)
        if not self.contains(real):
            raise ToolError(
                f"{path} is outside the shared folders ({', '.join(self.roots)}); "
                "links that lead out of them are refused too"
            )
        return real


def open_inside(folders: AllowedFolders, real: str) -> int:
    """A read-only descriptor of `real`, never through a last link, checked to lie inside."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError as err:
        raise ToolError(f"{real} does not exist") from err
    except OSError as err:
        raise ToolError(f"cannot open {real}: {err.strerror}") from err
    opened = os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else real
    if not folders.contains(opened):
        os.close(fd)
        raise ToolError(f"{real} changed into a link out of the shared folders; refused")
    return fd


def _info(real: str, st: os.stat_result) -> dict[str, Any]:
    kind = "folder" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    info: dict[str, Any] = {
        "path": real,
        "type": kind,
        "size": st.st_size,
        "modified": datetime.fromtimestamp(st.st_mtime, UTC).isoformat(timespec="seconds"),
    }
    if kind == "file":
        info["mime_type"] = mimetypes.guess_type(real)[0] or "application/octet-stream"
    return info


class FileTools:
    def __init__(
        self,
        folders: Sequence[Path],
        limits: Limits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folders = AllowedFolders(folders)
        self.limits = limits
        self._clock = clock

    def tools(self) -> list[Tool]:
        return [
            Tool(
                name="list_allowed_folders",
                title="List shared folders",
                description=(
                    "The folders this bridge may read. Paths in other file tools must lie "
                    "inside them."
                ),
                scope="files",
                input_schema=schema(),
                run=self._allowed,
            ),
            Tool(
                name="list_folder",
                title="List a folder",
                description=(
                    "Files and folders directly inside a shared folder (name, type, size, "
                    "modified)."
                ),
                scope="files",
                input_schema=schema(("path",), path=string("absolute path of a folder")),
                run=self._thread(self.list_folder),
            ),
            Tool(
                name="search_files",
                title="Find files by name",
                description=(
                    "Files under a shared folder whose path matches a glob such as '*.md' "
                    "or 'notes/*.txt'."
                ),
                scope="files",
                input_schema=schema(
                    ("pattern",),
                    pattern=string("glob pattern matched against paths relative to the folder"),
                    path=string("folder to search (default: every shared folder)"),
                ),
                run=self._thread(self.search),
            ),
            Tool(
                name="read_text_file",
                title="Read a text file",
                description=(
                    "The text of a UTF-8 file inside a shared folder; head or tail read only "
                    "the first or last lines. Binary files are refused."
                ),
                scope="files",
                input_schema=schema(
                    ("path",),
                    path=string("absolute path of the file"),
                    head=integer("read only the first N lines", minimum=1),
                    tail=integer("read only the last N lines", minimum=1),
                ),
                run=self._thread(self.read_text),
            ),
            Tool(
                name="file_info",
                title="File information",
                description="Size, type, modification time and MIME type of a file or folder.",
                scope="files",
                input_schema=schema(("path",), path=string("absolute path")),
                run=self._thread(self.info),
            ),
        ]

    @staticmethod
    def _thread(function: Any) -> Any:
        async def run(arguments: Arguments) -> Any:
            return await asyncio.to_thread(function, arguments)

        return run

    async def _allowed(self, _arguments: Arguments) -> Any:
        return {"folders": list(self.folders.roots)}

    def info(self, arguments: Arguments) -> dict[str, Any]:
        real = self.folders.resolve(arguments["path"])
        try:
            return _info(real, os.stat(real))
        except FileNotFoundError as err:
            raise ToolError(f"{arguments['path']} does not exist") from err

    def list_folder(self, arguments: Arguments) -> dict[str, Any]:
        real = self.folders.resolve(arguments["path"])
        if not os.path.isdir(real):
            raise ToolError(f"{arguments['path']} is not a folder")
        entries: list[dict[str, Any]] = []
        with os.scandir(real) as scan:
            for entry in sorted(scan, key=lambda e: e.name):
                if len(entries) >= self.limits.max_list_entries:
                    return {"path": real, "entries": entries, "truncated": True}
                st = entry.stat(follow_symlinks=False)
                item = _info(entry.path, st)
                item["name"] = entry.name
                if entry.is_symlink():
                    target = os.path.realpath(entry.path)
                    inside = self.folders.contains(target)
                    item["type"] = "link" if inside else "link (outside, not readable)"
                entries.append(item)
        return {"path": real, "entries": entries, "truncated": False}

    def search(self, arguments: Arguments) -> dict[str, Any]:
        pattern: str = arguments["pattern"]
        if "\x00" in pattern:
            raise ToolError("the pattern holds a NUL byte; refused")
        roots = (
            [self.folders.resolve(arguments["path"])]
            if "path" in arguments
            else list(self.folders.roots)
        )
        matches: list[str] = []
        # The server stops waiting at the call's timeout, but a thread can't be stopped
        # from outside: the walk (unbounded on a folder of a million files, or a slow
        # network share) stops itself at the same moment.
        deadline = self._clock() + self.limits.call_timeout_s
        for root in roots:
            # os.walk never follows links to folders, so a search stays inside.
            for folder, dirs, files in os.walk(root):
                if self._clock() > deadline:
                    raise ToolError(
                        f"the search ran longer than {self.limits.call_timeout_s:g} s and was "
                        "stopped; give a path to search a smaller folder"
                    )
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(folder, name)
                    relative = os.path.relpath(full, root)
                    if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(name, pattern):
                        if not self.folders.contains(os.path.realpath(full)):
                            continue
                        matches.append(full)
                        if len(matches) >= self.limits.max_list_entries:
                            return {"matches": matches, "truncated": True}
        return {"matches": matches, "truncated": False}

    def read_text(self, arguments: Arguments) -> dict[str, Any]:
        real = self.folders.resolve(arguments["path"])
        head: int | None = arguments.get("head")
        tail: int | None = arguments.get("tail")
        if head is not None and tail is not None:
            raise ToolError("give head or tail, not both")
        cap = self.limits.max_file_bytes
        fd = open_inside(self.folders, real)
        with contextlib.closing(os.fdopen(fd, "rb")) as file:
            st = os.fstat(file.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ToolError(f"{arguments['path']} is not a regular file")
            if st.st_size > cap and head is None and tail is None:
                raise ToolError(
                    f"{arguments['path']} is {st.st_size} bytes, more than the {cap}-byte cap; "
                    "read part of it with head or tail"
                )
            seeked = tail is not None and st.st_size > cap
            if seeked:
                file.seek(st.st_size - cap)
            data = file.read(cap + 1)
        truncated = len(data) > cap
        data = data[:cap]
        if seeked:
            data = data[data.find(b"\n") + 1 :]  # the first line was cut: drop it
        if b"\x00" in data[:_SNIFF_BYTES]:
            raise ToolError(f"{arguments['path']} is a binary file; only text files are read")
        text = data.decode("utf-8", errors="replace")
        if text.count("\ufffd") > max(8, len(text) // 100):
            raise ToolError(f"{arguments['path']} is not UTF-8 text; only text files are read")
        if head is not None:
            text = "".join(text.splitlines(keepends=True)[:head])
        elif tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:])
        return {
            "path": real,
            "size": st.st_size,
            "text": text,
            "truncated": truncated and head is None and tail is None,
        }
