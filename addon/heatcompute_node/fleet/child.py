"""What the fleet's child processes (ggml's RPC server, the lead's engine) start with."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
import signal

_PR_SET_PDEATHSIG = 1
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The node's environment without its own settings (the child gets flags), with the
    node's package importable and ggml told to die at once on a lost connection (no
    debugger attached to print a backtrace first)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATCOMPUTE_")}
    python_path = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": python_path, "GGML_NO_BACKTRACE": "1", **extra}


def die_with_parent() -> None:
    """In the child before exec: end when the node ends, even by SIGKILL."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
