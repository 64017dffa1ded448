"""What the real hardware sources share: soft sysfs reads and how a source says "not here".

Every sysfs read goes through :func:`read_text` (called as ``common.read_text``) so tests
running as root, where ``chmod 000`` does not deny anything, can still simulate the
``EACCES`` that a normal user gets from ``energy_uj``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

type Clock = Callable[[], float]
"""Seconds from an arbitrary origin; ``time.monotonic`` unless a test drives time."""


class SourceUnavailable(Exception):  # noqa: N818 - it is a state, not a programming error
    """Raised by a source's constructor when it cannot measure anything on this machine.

    The message says why in words a user can act on (module missing, permission denied),
    because detection logs it when it falls back to another source.
    """


def read_text(path: Path) -> str:
    """The stripped content of a sysfs attribute. Raises OSError like any file read."""
    with path.open(encoding="ascii", errors="replace") as file:
        return file.read().strip()


def read_int(path: Path) -> int:
    """A sysfs attribute holding one integer. Raises OSError or ValueError."""
    return int(read_text(path))


def try_read_text(path: Path) -> str | None:
    """Like :func:`read_text`, None when the attribute is missing or unreadable."""
    try:
        return read_text(path)
    except OSError:
        return None


def try_read_int(path: Path) -> int | None:
    """Like :func:`read_int`, None when missing, unreadable or not a number.

    Some drivers answer a read with EINVAL/ENODATA while the device sleeps (iwlwifi's
    thermal zone): that is a missing sample, not a reason to stop.
    """
    try:
        return read_int(path)
    except (OSError, ValueError):
        return None


def list_dir(path: Path) -> list[Path]:
    """The entries of a sysfs directory, sorted; none when it is missing or unreadable."""
    try:
        return sorted(path.iterdir())
    except OSError:
        return []


def describe_error(err: BaseException) -> str:
    """A short reason for logs: "permission denied", not a full traceback."""
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err) or type(err).__name__
