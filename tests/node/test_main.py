"""The bare node: `python -m heatcompute_node` in its own process, as a user runs it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import socket
import stat
import sys

import aiohttp
import pytest

ADDON = Path(__file__).resolve().parents[2] / "addon"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(port: int, process: asyncio.subprocess.Process) -> None:
    """Poll /health until it answers; bounded, and fails fast if the process died."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            if process.returncode is not None:
                raise AssertionError(f"node exited with {process.returncode}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("node did not become healthy within 10 s")


async def test_bare_node_serves_and_creates_its_token(socket_enabled: None, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ADDON)}
    env.pop("HEATCOMPUTE_TOKEN", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "heatcompute_node",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
        "--hardware",
        "twin",
        "--no-zeroconf",
        "--log-level",
        "WARNING",
        env=env,
    )
    try:
        await wait_healthy(port, process)
        token_file = tmp_path / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"http://127.0.0.1:{port}/api/status", headers=headers) as r:
                assert r.status == 200
                assert (await r.json())["hardware"] == "twin"
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0


@pytest.mark.parametrize("args", [["--port", "0"], ["--hardware", "gpu"]])
async def test_bad_flags_exit_with_a_message(args: list[str], tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "heatcompute_node",
        "--data-dir",
        str(tmp_path),
        *args,
        env={**os.environ, "PYTHONPATH": str(ADDON)},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"port" in stderr or b"hardware" in stderr
