"""A typed client for the node's HTTP API (docs/api.md), the integration's only contract.

The integration never imports the node package: the two ship separately (HACS and the
add-on image). Everything the node says is parsed into the dataclasses below, tolerantly:
a field the node does not send yet (or no longer) reads as None, never as a crash.
Every transport and HTTP failure is mapped to this module's exceptions in one place,
`_mapped_errors`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
import contextlib
from dataclasses import dataclass, field
import json
from typing import Any, Literal

import aiohttp
from yarl import URL

from .fleet_status import FleetStatus

# Short names: the parsers below read every field through them.
from .parsing import (
    bool_or_none as _bool,
    float_or_none as _float,
    int_or_none as _int,
    mapping as _dict,
    str_or_none as _str_or_none,
)

type HeatMode = Literal["off", "heat"]

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=10)
# The node sends a keep-alive comment every 15 s: three missed ones mean the link is dead.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=45)


class HeatcomputeError(Exception):
    """Anything that went wrong talking to a node."""


class HeatcomputeConnectionError(HeatcomputeError):
    """The node cannot be reached, timed out, or answered with a server error."""


class HeatcomputeAuthenticationError(HeatcomputeError):
    """The node refused the token."""


class HeatcomputeResponseError(HeatcomputeError):
    """The node understood the request and refused it (4xx) with a reason."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details: Mapping[str, Any] = details or {}
        """The whole error object: some errors carry figures beside the sentence."""


class HeatcomputeNotSupportedError(HeatcomputeResponseError):
    """The node has no such route: an older node version."""


class HeatcomputeModelNotFoundError(HeatcomputeResponseError):
    """The node has no such model (another node may have it)."""


class HeatcomputeOverloadedError(HeatcomputeResponseError):
    """The node refused the request for now (429): too much is waiting already."""

    def __init__(self, message: str, code: str | None, retry_after_s: float | None) -> None:
        super().__init__(429, message, code)
        self.retry_after_s = retry_after_s


class HeatcomputeUnavailableError(HeatcomputeConnectionError):
    """The node is up but cannot serve yet (503): a model is still loading, for example."""

    def __init__(self, message: str, code: str | None, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s

    @property
    def model_loading(self) -> bool:
        return self.code == "model_loading" or "loading" in str(self).lower()

    @property
    def not_serving(self) -> bool:
        """The node's "Serve requests" switch is off."""
        return self.code == "not_serving"


# --- what the node tells ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatState:
    """The heat target the node runs on."""

    mode: HeatMode
    target_w: float
    max_power_w: float | None
    wanted: bool

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HeatState:
        mode: HeatMode = "heat" if data.get("mode") == "heat" else "off"
        target_w = _float(data.get("target_w")) or 0.0
        wanted = _bool(data.get("wanted"))
        return cls(
            mode=mode,
            target_w=target_w,
            max_power_w=_float(data.get("max_power_w")),
            wanted=(mode == "heat" and target_w > 0) if wanted is None else wanted,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """What the node may run (`GET/PATCH /api/config`)."""

    serve_requests: bool | None
    background_jobs: bool | None
    filler: bool | None
    max_power_w: float | None
    max_power_limit_w: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeConfig:
        return cls(
            serve_requests=_bool(data.get("serve_requests")),
            background_jobs=_bool(data.get("background_jobs")),
            filler=_bool(data.get("filler")),
            max_power_w=_float(data.get("max_power_w")),
            max_power_limit_w=_float(data.get("max_power_limit_w")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentIndexStatus:
    """The node's document index (status section ``documents``)."""

    files: int | None
    chunks: int | None
    backlog_files: int | None
    """Files new, changed or removed since they were indexed: not yet searchable as they are."""
    backlog_chunks: int | None
    """Estimated passages still to read and embed."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentIndexStatus:
        backlog = _dict(data.get("backlog"))
        pending, removed = _int(backlog.get("files_pending")), _int(backlog.get("files_removed"))
        return cls(
            files=_int(data.get("files")),
            chunks=_int(data.get("chunks")),
            backlog_files=None if pending is None else pending + (removed or 0),
            backlog_chunks=_int(backlog.get("chunks_estimate")),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Passage:
    """A passage the document search found: where it is, and its text."""

    file: str
    chunk: int
    page: int | None
    """PDF page from 1 (None for other files)."""
    line: int | None
    """First line of the passage (in its page, for PDFs), from 1."""
    text: str
    score: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Passage:
        return cls(
            file=str(data.get("file") or ""),
            chunk=_int(data.get("chunk")) or 0,
            page=_int(data.get("page")),
            line=_int(data.get("line")),
            text=str(data.get("text") or ""),
            score=_float(data.get("score")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "chunk": self.chunk,
            "page": self.page,
            "line": self.line,
            "text": self.text,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    """One snapshot of the node (`GET /api/status`, and each `status` event)."""

    node_id: str
    name: str
    version: str | None
    api_version: str | None
    hardware: str | None
    memory_bytes: int | None
    """Memory the node's models may use, where it says."""
    heat: HeatState
    power_w: float | None
    energy_kwh: float | None
    intensity: float | None
    chip_temperature_c: float | None
    room_temperature_c: float | None
    outside_temperature_c: float | None
    tokens_per_s: float | None
    latency_p95_s: float | None
    requests_active: int | None
    queue_depth: int | None
    jobs_pending: int | None
    heat_reuse: float | None
    """Share (0-1) of the energy drawn while heat was wanted."""
    energy_per_1k_tokens_wh: float | None
    config: NodeConfig | None
    models: tuple[str, ...]
    chat_models: tuple[str, ...] = ()
    """The models that chat (not embedding ones), in the node's order."""
    background: str | None = None
    """What background work runs for: idle, heat, deadline, filler or requests."""
    documents: DocumentIndexStatus | None = None
    """None on a node without a document index."""
    model_states: Mapping[str, str] = field(default_factory=dict)
    """Model id -> the node's word for it ("loaded", "loading", ...), where it says."""
    fleet: FleetStatus | None = None
    """Its part in a split model; None from a node without the fleet API."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeStatus:
        node_id = data.get("node_id")
        if not isinstance(node_id, str) or not node_id:
            raise HeatcomputeError("the node's status has no node_id")
        temperatures = _dict(data.get("temperatures"))
        work = _dict(data.get("work"))
        energy = _dict(data.get("energy"))
        config = data.get("config")
        models = data.get("models")
        documents = data.get("documents")
        return cls(
            node_id=node_id,
            name=str(data.get("name") or "heatcompute"),
            version=_str_or_none(data.get("version")),
            api_version=_str_or_none(data.get("api_version")),
            hardware=_str_or_none(data.get("hardware")),
            memory_bytes=_int(data.get("memory_bytes")),
            heat=HeatState.from_dict(_dict(data.get("heat"))),
            power_w=_float(data.get("power_w")),
            energy_kwh=_float(data.get("energy_kwh")),
            intensity=_float(data.get("intensity")),
            chip_temperature_c=_float(temperatures.get("chip_c")),
            room_temperature_c=_float(temperatures.get("room_c")),
            outside_temperature_c=_float(temperatures.get("outside_c")),
            tokens_per_s=_float(work.get("tokens_per_s")),
            latency_p95_s=_float(work.get("latency_p95_s")),
            requests_active=_int(work.get("requests_active")),
            queue_depth=_int(work.get("queue_depth")),
            jobs_pending=_int(work.get("jobs_pending")),
            # Grouped with the energy figures it is computed from; a node without heat
            # accounting leaves it out and the sensor shows unknown.
            heat_reuse=_float(energy.get("heat_reuse")),
            energy_per_1k_tokens_wh=_float(energy.get("wh_per_1k_tokens")),
            config=NodeConfig.from_dict(config) if isinstance(config, Mapping) else None,
            models=tuple(str(model["id"]) for model in _served_models(models)),
            # As ModelInfo.chats: a node that does not say the kind is believed.
            chat_models=tuple(
                str(model["id"])
                for model in _served_models(models)
                if model.get("kind") in (None, "chat")
            ),
            background=_str_or_none(work.get("background")),
            documents=(
                DocumentIndexStatus.from_dict(documents) if isinstance(documents, Mapping) else None
            ),
            model_states={
                str(model["id"]): str(model["state"])
                for model in _served_models(models)
                if "state" in model
            },
            fleet=FleetStatus.from_dict(fleet)
            if isinstance(fleet := data.get("fleet"), Mapping)
            else None,
        )


def _served_models(models: Any) -> list[Mapping[str, Any]]:
    """The status rows of models the node has, without those still downloading.

    A download in progress is listed beside the models (kind "download") so people see
    it, but the node cannot serve it yet: the router must not send requests for it there.
    """
    return [
        model
        for model in (models if isinstance(models, list) else [])
        if isinstance(model, Mapping) and "id" in model and model.get("kind") != "download"
    ]


type DownloadState = Literal["downloading", "verifying", "done", "failed"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDownload:
    """A model download on the node (`/api/models/download`, `/api/models/downloads/…`)."""

    name: str
    state: DownloadState
    bytes_done: int | None
    bytes_total: int | None
    fraction: float | None
    error: str | None
    error_code: str | None
    """checksum_mismatch, http_error, connection_error, invalid_model, or None."""

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelDownload:
        state = data.get("state")
        known: tuple[DownloadState, ...] = ("downloading", "verifying", "done", "failed")
        return cls(
            name=str(data.get("name") or ""),
            state=next((s for s in known if s == state), "failed"),
            bytes_done=_int(data.get("bytes_done")),
            bytes_total=_int(data.get("bytes_total")),
            fraction=_float(data.get("fraction")),
            error=_str_or_none(data.get("error")),
            error_code=_str_or_none(data.get("error_code")),
        )


# --- the client -------------------------------------------------------------------------


class HeatcomputeClient:
    """The node's control plane over Home Assistant's shared aiohttp session."""

    def __init__(self, host: str, port: int, token: str, *, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._token = token
        # yarl brackets IPv6 literals for us.
        self.base_url = URL.build(scheme="http", host=host, port=port)

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}

    async def status(self) -> NodeStatus:
        return NodeStatus.from_dict(await self._request("GET", "/api/status"))

    async def set_heat(self, mode: HeatMode, target_w: float | None = None) -> HeatState:
        body: dict[str, Any] = {"mode": mode}
        if target_w is not None:
            body["target_w"] = round(target_w, 1)
        return HeatState.from_dict(await self._request("PUT", "/api/heat", body))

    async def config(self) -> NodeConfig:
        return NodeConfig.from_dict(await self._request("GET", "/api/config"))

    async def update_config(self, **changes: bool | float) -> NodeConfig:
        return NodeConfig.from_dict(await self._request("PATCH", "/api/config", changes))

    async def submit_job(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Hand a deferrable job to the node's queue as is; answers the node's reply."""
        return await self._request("POST", "/api/jobs", dict(job))

    async def read_text(self, image: bytes, content_type: str) -> dict[str, Any]:
        """The text in an image (the node's /api/read-text): lines, boxes, confidence."""
        with _mapped_errors():
            async with self._session.post(
                self.base_url / "api/read-text",
                headers={**self._headers, "Content-Type": content_type},
                data=image,
                timeout=REQUEST_TIMEOUT,
            ) as response:
                await _raise_for_status(response)
                data = await response.json(content_type=None)
        if not isinstance(data, dict):
            raise HeatcomputeError("POST /api/read-text: expected a JSON object")
        return data

    async def search_documents(self, query: str, limit: int) -> list[Passage]:
        """The passages of the node's document index closest in meaning to ``query``."""
        body = {"query": query, "limit": limit}
        reply = await self._request("POST", "/api/index/search", body)
        passages = reply.get("passages")
        return [
            Passage.from_dict(passage)
            for passage in (passages if isinstance(passages, list) else [])
            if isinstance(passage, Mapping)
        ]

    async def events(self) -> AsyncGenerator[NodeStatus]:
        """Every status the node pushes, from the one sent on connect until the link drops.

        Ends when the node closes the stream; raises like any other call when the
        connection fails.
        """
        with _mapped_errors():
            async with self._session.get(
                self.base_url / "api/events",
                headers={**self._headers, "Accept": "text/event-stream"},
                timeout=STREAM_TIMEOUT,
            ) as response:
                await _raise_for_status(response)
                async for name, data in _sse_events(response.content):
                    if name == "status":
                        yield NodeStatus.from_dict(data)

    async def download_model(
        self, url: str, name: str, *, sha256: str | None = None, size_bytes: int | None = None
    ) -> ModelDownload:
        """Ask the node to fetch a GGUF (it resumes and checks it); answers its progress."""
        body: dict[str, Any] = {"url": url, "name": name}
        if sha256 is not None:
            body["sha256"] = sha256
        if size_bytes is not None:
            body["size_bytes"] = size_bytes
        return ModelDownload.from_dict(await self._request("POST", "/api/models/download", body))

    async def model_download(self, name: str) -> ModelDownload:
        """The progress of the node's latest download of `name`."""
        path = f"/api/models/downloads/{name}"
        return ModelDownload.from_dict(await self._request("GET", path))

    async def get_json(self, path: str) -> dict[str, Any]:
        """GET any route of the node's API (the OpenAI side: `/v1/models`)."""
        return await self._request("GET", path)

    async def post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a JSON object to any route of the node's API (the MCP bridge: `/mcp`)."""
        return await self._request("POST", path, body)

    async def delete(self, path: str) -> None:
        """DELETE a route of the node's API (a fleet peer to forget); no answer body."""
        with _mapped_errors():
            async with self._session.delete(
                self.base_url.with_path(path), headers=self._headers, timeout=REQUEST_TIMEOUT
            ) as response:
                await _raise_for_status(response)

    @contextlib.asynccontextmanager
    async def post_stream(
        self, path: str, body: Mapping[str, Any], timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """POST and hand over the body of a streamed answer (status already checked).

        Failures while the caller reads the stream are mapped like any other.
        """
        with _mapped_errors():
            async with self._session.post(
                self.base_url.with_path(path),
                headers={**self._headers, "Accept": "text/event-stream"},
                json=dict(body),
                timeout=timeout,
            ) as response:
                await _raise_for_status(response)
                yield response.content

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        with _mapped_errors():
            async with self._session.request(
                method,
                self.base_url.with_path(path),
                headers=self._headers,
                json=body,
                timeout=REQUEST_TIMEOUT,
            ) as response:
                await _raise_for_status(response)
                data = await response.json(content_type=None)
        if not isinstance(data, dict):
            raise HeatcomputeError(f"{method} {path}: expected a JSON object")
        return data


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """The one place where transport failures become this module's exceptions."""
    try:
        yield
    except HeatcomputeError:
        raise
    except TimeoutError as err:
        raise HeatcomputeConnectionError("the node did not answer in time") from err
    except (aiohttp.ClientError, OSError) as err:
        raise HeatcomputeConnectionError(f"cannot talk to the node: {err}") from err
    except (ValueError, UnicodeDecodeError) as err:
        raise HeatcomputeError(f"the node sent something that is not JSON: {err}") from err


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    message, code, error = response.reason or "error", None, {}
    with contextlib.suppress(ValueError, aiohttp.ClientError):
        error = dict(_dict(_dict(await response.json(content_type=None)).get("error")))
        message = str(error.get("message") or message)
        code = _str_or_none(error.get("code"))
    if response.status == 401:
        raise HeatcomputeAuthenticationError(message)
    if response.status == 404:
        if code == "model_not_found":
            raise HeatcomputeModelNotFoundError(response.status, message, code, error)
        raise HeatcomputeNotSupportedError(response.status, message, code, error)
    if response.status == 429:
        raise HeatcomputeOverloadedError(message, code, _retry_after(response))
    if response.status == 503:
        raise HeatcomputeUnavailableError(message, code, _retry_after(response))
    if response.status == 507:  # insufficient storage: a refusal with a reason, not a fault
        raise HeatcomputeResponseError(response.status, message, code)
    if response.status >= 500:
        raise HeatcomputeConnectionError(f"the node failed: {message}")
    raise HeatcomputeResponseError(response.status, message, code, error)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    return _float(_number_or_none(response.headers.get("Retry-After")))


def _number_or_none(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None  # an HTTP date: rare, and a hint at best


async def _sse_events(stream: aiohttp.StreamReader) -> AsyncIterator[tuple[str, Any]]:
    """Parse a text/event-stream into (event name, decoded JSON data)."""
    name, data_lines = "message", list[str]()
    async for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data_lines:
                yield name, json.loads("\n".join(data_lines))
            name, data_lines = "message", []
        elif line.startswith(":"):
            continue  # a keep-alive comment
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data_lines.append(value)
