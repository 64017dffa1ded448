"""The node as a Home Assistant add-on: Supervisor discovery and the add-on's /data.

Inside an add-on the Supervisor hands the container ``SUPERVISOR_TOKEN`` and a host
name ``supervisor`` that reaches its API (http://supervisor). The node then:

- announces itself under the service ``heatcompute`` (config: host, port, token) once
  its HTTP port listens, so Home Assistant's heatcompute integration starts its config
  flow (``async_step_hassio``); the Supervisor keeps one message per add-on and service
  and replaces its config when the same service is sent again, so a changed token is
  announced by sending again;
- withdraws the message when it stops (DELETE /discovery/{uuid});
- keeps everything that must outlive a restart or an update in /data (the data
  directory): token, node id, energy counter, jobs, runtime config, downloaded models.
  The image's own models are linked into /data/models (and its ONNX models into the
  ONNX repository, /data/onnx) on start, so the model list is one directory whether a
  model came with the image or through the download API.

``HEATCOMPUTE_SUPERVISOR_URL`` overrides http://supervisor (scripts/test-addon runs a
stand-in on a port of its own); nothing else differs from the real Supervisor.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
import contextlib
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import socket
from typing import Any

import aiohttp

_LOGGER = logging.getLogger(__name__)

SUPERVISOR_URL = "http://supervisor"
SERVICE = "heatcompute"
TOKEN_ENV = "SUPERVISOR_TOKEN"
URL_ENV = "HEATCOMPUTE_SUPERVISOR_URL"
BUNDLED_MODELS_ENV = "HEATCOMPUTE_BUNDLED_MODELS_DIR"
_TIMEOUT = aiohttp.ClientTimeout(total=10)


class SupervisorError(Exception):
    """The Supervisor refused a request or could not be reached."""


@dataclass(frozen=True, slots=True)
class AddonEnvironment:
    """What the Supervisor gives an add-on's container."""

    token: str
    url: str = SUPERVISOR_URL

    @classmethod
    def detect(cls, environ: Mapping[str, str] | None = None) -> AddonEnvironment | None:
        """The add-on's environment, or None when the node runs bare."""
        environ = os.environ if environ is None else environ
        # HASSIO_TOKEN: the name older Supervisors used; both carry the same token.
        token = environ.get(TOKEN_ENV) or environ.get("HASSIO_TOKEN")
        if not token:
            return None
        return cls(token=token, url=environ.get(URL_ENV, SUPERVISOR_URL).rstrip("/"))


class SupervisorClient:
    """The few Supervisor routes the node uses, in the Supervisor's own envelope."""

    def __init__(self, session: aiohttp.ClientSession, env: AddonEnvironment) -> None:
        self._session = session
        self._env = env
        self._headers = {"Authorization": f"Bearer {env.token}"}

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        url = f"{self._env.url}{path}"
        try:
            async with self._session.request(
                method, url, json=body, headers=self._headers, timeout=_TIMEOUT
            ) as response:
                payload = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise SupervisorError(f"{method} {path}: Supervisor not reachable ({err!r})") from err
        if not isinstance(payload, dict):
            raise SupervisorError(f"{method} {path}: not a Supervisor answer")
        if response.status >= 400 or payload.get("result") != "ok":
            raise SupervisorError(
                f"{method} {path} refused ({response.status}): {payload.get('message')}"
            )
        data = payload.get("data")
        return data if isinstance(data, dict) else {}

    async def info(self) -> dict[str, Any]:
        return await self._call("GET", "/info")

    async def send_discovery(self, service: str, config: Mapping[str, Any]) -> str:
        data = await self._call("POST", "/discovery", {"service": service, "config": config})
        return str(data["uuid"])

    async def remove_discovery(self, uuid: str) -> None:
        await self._call("DELETE", f"/discovery/{uuid}")


class Announcement:
    """The node's discovery message: sent when ready, sent again when it changes,
    removed on stop."""

    def __init__(self, client: SupervisorClient, service: str = SERVICE) -> None:
        self._client = client
        self.service = service
        self._sent: dict[str, Any] | None = None
        self.uuid: str | None = None

    async def send(self, config: Mapping[str, Any]) -> bool:
        """Send `config` unless it is what was sent last; True when it was sent."""
        if self.uuid is not None and self._sent == dict(config):
            return False
        self.uuid = await self._client.send_discovery(self.service, config)
        self._sent = dict(config)
        _LOGGER.info("announced %s to Home Assistant (discovery %s)", self.service, self.uuid)
        return True

    async def remove(self) -> None:
        if self.uuid is None:
            return
        uuid, self.uuid, self._sent = self.uuid, None, None
        try:
            await self._client.remove_discovery(uuid)
        except SupervisorError as err:
            # Stopping must go on: a stale message only makes Home Assistant retry.
            _LOGGER.warning("discovery %s not withdrawn: %s", uuid, err)


async def announce_with_retries(
    announcement: Announcement, config: Mapping[str, Any], retry_s: tuple[float, ...]
) -> None:
    """Announce; a Supervisor that is still starting gets a try after each delay."""
    for delay in (*retry_s, None):
        try:
            await announcement.send(config)
        except SupervisorError as err:
            if delay is None:
                _LOGGER.error("%s not announced to Home Assistant: %s", announcement.service, err)
                return
            _LOGGER.warning(
                "announcing %s to Home Assistant, retrying in %.0f s: %s",
                announcement.service,
                delay,
                err,
            )
            await asyncio.sleep(delay)
        else:
            return


@contextlib.asynccontextmanager
async def announced(
    env: AddonEnvironment | None,
    service: str,
    config: Mapping[str, Any],
    retry_s: tuple[float, ...],
) -> AsyncIterator[None]:
    """Announce `service` while the block runs (retrying in the background), withdraw
    it after; nothing at all when the node runs bare (`env` None)."""
    if env is None:
        yield
        return
    async with aiohttp.ClientSession() as session:
        announcement = Announcement(SupervisorClient(session, env), service)
        announcing = asyncio.create_task(
            announce_with_retries(announcement, config, retry_s), name=f"announce-{service}"
        )
        try:
            yield
        finally:
            announcing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcing
            await announcement.remove()


def discovery_config(*, port: int, token: str, host: str | None = None) -> dict[str, Any]:
    """What the integration's async_step_hassio reads: where the node is, its token.

    The Supervisor names each add-on's container after the add-on (e.g.
    ``local-heatcompute``), and Home Assistant reaches it by that name."""
    return {"host": host or socket.gethostname(), "port": port, "token": token}


def link_bundled_models(models_dir: Path, bundled_dir: Path | None) -> list[Path]:
    """Link the image's own models into /data/models; returns the links made.

    Links, not copies: an update that brings a new image brings new models, and the
    links are excluded from backups with the rest of /data/models. A file the user
    put there under the same name wins.
    """
    if bundled_dir is None or not bundled_dir.is_dir():
        return []
    models_dir.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for model in sorted(bundled_dir.glob("*.gguf")):
        link = models_dir / model.name
        if link.is_symlink() and not link.exists():
            link.unlink()  # left by an older image whose model is gone
        if not link.exists():
            link.symlink_to(model)
            made.append(link)
    return made


def link_bundled_onnx(repository: Path, bundled_dir: Path | None) -> list[Path]:
    """Link the image's ONNX model folders (``<bundled>/onnx/<name>``) into the node's
    ONNX repository; returns the links made. A folder of the user's wins."""
    source = bundled_dir / "onnx" if bundled_dir is not None else None
    if source is None or not source.is_dir():
        return []
    repository.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        link = repository / folder.name
        if link.is_symlink() and not link.exists():
            link.unlink()
        if not link.exists():
            link.symlink_to(folder, target_is_directory=True)
            made.append(link)
    return made


def bundled_models_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    value = environ.get(BUNDLED_MODELS_ENV)
    return Path(value) if value else None
