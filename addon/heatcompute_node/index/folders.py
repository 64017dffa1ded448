"""Walking the shared folders: which files exist, their size and modification time.

Only stat calls, no file is opened. The folders and the containment check are the MCP
file tools' (`mcp.files.AllowedFolders`), so the index can never see more than they do:
``os.walk`` does not descend into linked folders, a linked file is skipped (its target,
when inside, is seen under its own path), and every path's real path must lie inside a
shared folder. Hidden files and folders (``.git``, ``.cache``) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import os
from pathlib import Path
import stat

from ..mcp.files import AllowedFolders
from .extract import kind_of


@dataclass(frozen=True, slots=True)
class FileSeen:
    path: str
    size: int
    mtime_ns: int


class SharedFolders:
    def __init__(self, folders: Sequence[Path]) -> None:
        self.allowed = AllowedFolders(folders)

    @property
    def roots(self) -> tuple[str, ...]:
        return self.allowed.roots

    def walk(self) -> Iterator[FileSeen]:
        """Every indexable file inside the folders, once each, in path order."""
        seen: set[str] = set()
        for root in self.roots:
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith(".") or kind_of(name) is None:
                        continue
                    path = os.path.join(folder, name)
                    try:
                        st = os.lstat(path)
                    except OSError:
                        continue  # removed while walking
                    if not stat.S_ISREG(st.st_mode) or path in seen:
                        continue  # links (and sockets, fifos) are never followed
                    if not self.allowed.contains(os.path.realpath(path)):
                        continue  # a folder above was swapped for a link meanwhile
                    seen.add(path)
                    yield FileSeen(path, st.st_size, st.st_mtime_ns)
