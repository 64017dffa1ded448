"""ggml's RPC server, in a child process bound to 127.0.0.1 (the worker's compute).

ggml's server has no authentication and no encryption: it is never bound to anything
but loopback, and only the tunnel (tunnel_server.py) reaches it. A child process
because ggml's server loop never returns and a malformed message may abort it: the
node stops, restarts and outlives it. The child dies with the node (PDEATHSIG).

``python -m heatcompute_node.fleet.rpc_server 127.0.0.1:PORT THREADS`` runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
import socket
import sys

from .child import child_env, die_with_parent

_LOGGER = logging.getLogger(__name__)
_START_TIMEOUT_S = 30.0


def free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RpcServerProcess:
    """Starts, watches and stops the child; its CPU time is the work done for leads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.endpoint: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._cpu_done_s = 0.0
        """CPU time of children that have ended."""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def cpu_s(self) -> float:
        pid = self.pid
        return self._cpu_done_s + (process_cpu_s(pid) if pid is not None and self.running else 0.0)

    async def start(self) -> str:
        """Start (or restart) the child; returns its ``127.0.0.1:port`` once it listens."""
        await self.stop()
        port = free_loopback_port()
        endpoint = f"127.0.0.1:{port}"
        env = child_env({})
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            endpoint,
            str(self.threads),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not await _listens(port):
                if self._process.returncode is not None:
                    raise RuntimeError(f"ggml's RPC server exited ({self._process.returncode})")
                await asyncio.sleep(0.05)
        self.endpoint = endpoint
        _LOGGER.info("ggml RPC server on %s (pid %d)", endpoint, self._process.pid)
        return endpoint

    async def stop(self) -> None:
        process, self._process = self._process, None
        self.endpoint = None
        if process is None or process.returncode is not None:
            return
        self._cpu_done_s += process_cpu_s(process.pid)
        process.kill()
        await process.wait()

    async def wait(self) -> int:
        """Until the child ends (for the worker's watch): its exit status."""
        process = self._process
        if process is None:
            return 0
        return await process.wait()


async def _listens(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def main(argv: list[str]) -> int:
    endpoint, threads = argv[0], int(argv[1])
    if not endpoint.startswith("127.0.0.1:"):
        # Refuse loudly: the raw RPC port must never face the network.
        print("the RPC server binds 127.0.0.1 only", file=sys.stderr)
        return 2
    from ..engines.llm.offload import serve_rpc

    serve_rpc(endpoint, threads)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
