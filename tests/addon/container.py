"""The add-on's container, driven through the docker CLI as the Supervisor runs it.

Host network (no bridge traffic on this machine), the host name ``supervisor`` added
to the container's /etc/hosts as the Supervisor does for every add-on, the add-on's
/data a directory of the test, and SUPERVISOR_TOKEN in the environment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
from pathlib import Path
import secrets
import time
from typing import Any


class DockerError(RuntimeError):
    """A docker command failed."""


async def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    text = out.decode(errors="replace")
    if check and process.returncode != 0:
        raise DockerError(f"docker {' '.join(args)} failed ({process.returncode}): {text}")
    return text


@dataclass
class AddonContainer:
    image: str
    data_dir: Path
    port: int
    supervisor_port: int
    supervisor_token: str
    env: dict[str, str] = field(default_factory=dict)
    name: str = field(default_factory=lambda: f"heatcompute-addon-test-{secrets.token_hex(4)}")

    def write_options(self, options: dict[str, Any]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "options.json").write_text(json.dumps(options), encoding="utf-8")

    async def run(self) -> None:
        env = {
            "SUPERVISOR_TOKEN": self.supervisor_token,
            # The real Supervisor answers on port 80 of `supervisor`; the stand-in has a
            # port of its own on this shared machine.
            "HEATCOMPUTE_SUPERVISOR_URL": f"http://supervisor:{self.supervisor_port}",
            "HEATCOMPUTE_PORT": str(self.port),
            # No multicast advertisement onto the CI machine's network.
            "HEATCOMPUTE_ZEROCONF": "false",
            **self.env,
        }
        await docker(
            "run", "-d", "--name", self.name, "--network", "host",
            "--add-host", "supervisor:127.0.0.1",
            "-v", f"{self.data_dir}:/data",
            *[arg for key, value in env.items() for arg in ("-e", f"{key}={value}")],
            self.image,
        )  # fmt: skip

    async def stop(self, timeout_s: int = 10) -> float:
        """`docker stop` (SIGTERM, SIGKILL after timeout_s); returns the seconds taken."""
        started = time.monotonic()
        await docker("stop", "-t", str(timeout_s), self.name, timeout=timeout_s + 30)
        return time.monotonic() - started

    async def restart(self) -> None:
        await docker("restart", "-t", "10", self.name, timeout=60)

    async def wait_exit(self, timeout_s: float = 60) -> int:
        return int((await docker("wait", self.name, timeout=timeout_s)).strip())

    async def state(self) -> dict[str, Any]:
        out = await docker("inspect", "--format", "{{json .State}}", self.name)
        state: dict[str, Any] = json.loads(out)
        return state

    async def logs(self) -> str:
        return await docker("logs", self.name, check=False)

    async def remove(self) -> None:
        await docker("rm", "-f", self.name, check=False)
