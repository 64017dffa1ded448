"""Copies of the recorded sysfs trees under tests/fixtures/sysfs, ready to change.

Tests run as root in CI containers, where ``chmod 000`` denies nothing; :func:`deny`
therefore also makes the sources' one read function raise the ``EACCES`` a normal user
would get, so the unreadable case is tested the same way everywhere.
"""

from __future__ import annotations

import errno
from pathlib import Path
import shutil

import pytest

from heatcompute_node.hardware import common

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sysfs"
MACHINES = ("intel-desktop", "amd-desktop", "locked-laptop")


def machine(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of a recorded machine's /sys, with its UNREADABLE files denied."""
    root = tmp_path / name
    shutil.copytree(FIXTURES / name, root)
    marker = root / "UNREADABLE"
    if marker.exists():
        lines = marker.read_text(encoding="utf-8").splitlines()
        deny([root / line for line in lines if line and not line.startswith("#")], monkeypatch)
    return root


def deny(paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make these files unreadable, as they are for a non-root user."""
    denied = {path.resolve() for path in paths}
    for path in denied:
        path.chmod(0)
    original = common.read_text

    def read_text(path: Path) -> str:
        if path.resolve() in denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(common, "read_text", read_text)


def write(path: Path, value: int) -> None:
    """Change a counter or sensor value, as the kernel would between two reads."""
    path.write_text(f"{value}\n", encoding="ascii")
