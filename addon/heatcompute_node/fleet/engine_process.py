"""The lead's split model runs in an engine process of its own: a heatcompute node.

ggml's RPC client ends its process when a connection to a worker breaks (it aborts,
there is no error path), so the model whose layers live on workers is never loaded
into the lead's own process. The engine process is the node's own code (the same LLM
engine, continuous batching and all) on 127.0.0.1 with a random port and token, and
the lead forwards the model's /v1 requests to it (proxy.py). A lost worker costs the
engine process, never the lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
import secrets
import signal
import sys

import aiohttp

from ..engines.llm.offload import Offload
from .child import child_env, die_with_parent
from .rpc_server import free_loopback_port, process_cpu_s

_LOGGER = logging.getLogger(__name__)
START_TIMEOUT_S = 120.0


class EngineStartError(RuntimeError):
    """The engine process did not come up (or could not load the model)."""


class EngineProcess:
    def __init__(
        self,
        *,
        model_path: Path,
        model_id: str,
        data_dir: Path,
        threads: int,
        context: int,
        slots: int,
        offload: Offload | None,
    ) -> None:
        self.model_path, self.model_id = model_path, model_id
        self.data_dir = data_dir
        self.offload = offload
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self._args = (threads, context, slots)
        self._process: asyncio.subprocess.Process | None = None
        self._cpu_seen = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def cpu_s(self) -> float:
        """CPU seconds of the engine process so far (the last seen, once it has ended)."""
        if self._process is not None and self._process.returncode is None:
            self._cpu_seen = max(self._cpu_seen, process_cpu_s(self._process.pid))
        return self._cpu_seen

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start it and load the model (one token generated): ready to serve on return."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        options = self.data_dir / "options.json"
        options.write_text("{}", encoding="utf-8")  # never the add-on's /data/options.json
        self.port = free_loopback_port()
        threads, context, slots = self._args
        argv = [
            sys.executable, "-m", "heatcompute_node",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--options", str(options),
            "--hardware", "twin", "--no-zeroconf", "--model", str(self.model_path),
            "--llm-threads", str(threads), "--llm-context", str(context),
            "--llm-slots", str(slots), "--llm-idle-unload", "31536000",
            "--log-level", "WARNING",
        ]  # fmt: skip
        if self.offload is not None:
            argv += ["--fleet-offload", self.offload.text()]
        env = child_env({"HEATCOMPUTE_TOKEN": self.token})
        self._process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                await self._wait_healthy(session)
                await self._warm_up(session)
        except (TimeoutError, aiohttp.ClientError, EngineStartError) as err:
            await self.stop()
            raise EngineStartError(f"the engine process for {self.model_id}: {err}") from err

    async def _wait_healthy(self, session: aiohttp.ClientSession) -> None:
        while True:
            if not self.running:
                raise EngineStartError(f"exited with {self._returncode()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{self.base_url}/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)

    async def _warm_up(self, session: aiohttp.ClientSession) -> None:
        body = {"model": self.model_id, "prompt": "Hi", "max_tokens": 1, "temperature": 0}
        url = f"{self.base_url}/v1/completions"
        while True:
            try:
                async with session.post(url, json=body, headers=self.headers) as response:
                    if response.status == 200:
                        return
                    text = await response.text()
                    if response.status != 503 or "model_loading" not in text:
                        raise EngineStartError(f"{response.status} {text[:300]}")
            except aiohttp.ClientError as err:
                raise EngineStartError(f"exited with {self._returncode()} ({err})") from err
            await asyncio.sleep(0.2)

    async def tokens_total(self, session: aiohttp.ClientSession) -> int | None:
        """Tokens the split model generated so far (the engine's own counter)."""
        try:
            async with session.get(f"{self.base_url}/api/status", headers=self.headers) as r:
                status = json.loads(await r.text())
        except (aiohttp.ClientError, ValueError):
            return None
        figures = status.get("llm", {}).get(self.model_id)
        return int(figures["tokens_total"]) if isinstance(figures, dict) else None

    def kill(self) -> None:
        """At once (a worker is lost: its requests must fail now, not at a timeout)."""
        if self.running:
            assert self._process is not None
            self._process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()

    async def wait(self) -> int:
        process = self._process
        return await process.wait() if process is not None else 0

    def _returncode(self) -> int | None:
        return self._process.returncode if self._process is not None else None
