"""The download of a recommended model, with progress in a flow (as core's ollama pulls a
model from its flow): the options flow's, and the repair that offers a better model.

The node does the downloading (resumable, SHA-256 checked, never half-visible); Home
Assistant asks for it, follows its progress and, once the model is there, saves the
options that choose it. Closing the dialog does not stop the node: the model appears
when it is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import contextlib
from typing import Any, Final, Literal

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowHandler, FlowResult

from .chat_client import list_models
from .client import (
    HeatcomputeClient,
    HeatcomputeConnectionError,
    HeatcomputeError,
    HeatcomputeResponseError,
    ModelDownload,
)
from .const import CONF_ASSISTANT, CONF_MODEL, LOGGER
from .coordinator import HeatcomputeConfigEntry
from .model_catalog import RecommendedModel, recommended_model

# How often a flow asks the node how far it got; a model takes minutes.
POLL_INTERVAL_S: Final = 1.0

# The node's reasons a download failed -> the flows' abort reasons (translated).
_FAILURES: Final = {
    "checksum_mismatch": "checksum_mismatch",
    "invalid_model": "invalid_model",
    "insufficient_storage": "insufficient_storage",
    # The node is offline, or its DNS fails: the most likely failure at home.
    "connection_error": "host_unreachable",
}

type FetchOutcome = Literal["model_ready", "model_failed"]
"""The step a flow goes on to once the download is over."""


async def async_node_has(client: HeatcomputeClient | None, model: RecommendedModel) -> bool:
    """Whether the node has the model already (unknown, so no: the download step then
    reports a node that is away)."""
    if client is None:
        return False
    with contextlib.suppress(HeatcomputeError):
        return model.model_id in {info.id for info in await list_models(client)}
    return False


def client_of(entry: HeatcomputeConfigEntry | None) -> HeatcomputeClient | None:
    """The entry's node client; None while the entry is not loaded."""
    runtime = getattr(entry, "runtime_data", None)
    return None if runtime is None else runtime.client


class ModelFetch:
    """One recommended model the node downloads, followed for a flow's progress step.

    Each watch task ends when the download is a percent point further, or over; the flow
    manager then runs the progress step again, which shows the new figure and starts the
    next watch (Home Assistant 2025.4 has no progress bar for flows; where
    `async_update_progress` exists, `show_bar` moves it too).
    """

    def __init__(
        self,
        hass: HomeAssistant,
        client: HeatcomputeClient | None,
        wanted: RecommendedModel,
        show_bar: Callable[[float], None] | None = None,
    ) -> None:
        self.wanted = wanted
        self.failure: str | None = None
        """The abort reason (a translation key), once the download failed."""
        self._hass = hass
        self._client = client
        self._show_bar = show_bar
        self._latest: ModelDownload | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def outcome(self) -> FetchOutcome | None:
        """Where the flow goes on, once a watch ended with the download over."""
        if self._watch is None or not self._watch.done():
            return None
        if self.failure is not None:
            return "model_failed"
        if self._latest is not None and self._latest.state == "done":
            return "model_ready"
        return None

    def progress_step[ResultT: FlowResult[Any, Any]](
        self, flow: FlowHandler[Any, ResultT, Any]
    ) -> ResultT:
        """The flow's `download_model` step: the progress so far, or on to the outcome
        (the options flow and the repair's fix flow show the same step)."""
        if (outcome := self.outcome) is not None:
            return flow.async_show_progress_done(next_step_id=outcome)
        return flow.async_show_progress(
            step_id="download_model",
            progress_action="download_model",
            progress_task=self.watch(),
            description_placeholders=self.placeholders,
        )

    def watch(self) -> asyncio.Task[None]:
        """The running watch, or the next one once the last ended."""
        if self._watch is None or self._watch.done():
            self._watch = self._hass.async_create_task(
                self._async_watch(), f"heatcompute: download {self.wanted.name}"
            )
        return self._watch

    @property
    def placeholders(self) -> dict[str, str]:
        fraction = (self._latest.fraction if self._latest is not None else None) or 0.0
        return {
            "model": self.wanted.name,
            "size": f"{self.wanted.size_gb:.1f}",
            "licence": self.wanted.licence,
            "percent": f"{100 * fraction:.0f}",
        }

    async def _async_watch(self) -> None:
        """Start the download (first time) and follow it until it is finished or a
        percent point further; the outcome lands in `_latest` / `failure`."""
        wanted, client = self.wanted, self._client
        if client is None:  # the entry is not loaded: no node to ask
            self.failure = "cannot_connect"
            return
        try:
            latest = self._latest or await client.download_model(
                wanted.url, wanted.file_name, sha256=wanted.sha256, size_bytes=wanted.size_bytes
            )
            shown = _percent(latest)
            while not latest.finished and _percent(latest) == shown:
                await asyncio.sleep(POLL_INTERVAL_S)
                latest = await client.model_download(wanted.file_name)
                if self._show_bar is not None and latest.fraction is not None:
                    self._show_bar(latest.fraction)
            self._latest = latest
        except HeatcomputeConnectionError:
            self.failure = "cannot_connect"
        except HeatcomputeResponseError as err:
            LOGGER.warning("the node refused to download %s: %s", wanted.name, err)
            self.failure = _FAILURES.get(err.code or "", "download_failed")
        except HeatcomputeError:
            LOGGER.exception("unexpected answer while downloading %s", wanted.name)
            self.failure = "download_failed"
        else:
            if latest.state == "failed":
                LOGGER.warning("downloading %s failed: %s", wanted.name, latest.error)
                self.failure = _FAILURES.get(latest.error_code or "", "download_failed")


def progress_bar(flow: object) -> Callable[[float], None] | None:
    """The dialog's progress bar, on releases that have one (not 2025.4)."""
    update: Callable[[float], None] | None = getattr(flow, "async_update_progress", None)
    return update


def _percent(download: ModelDownload) -> int:
    return int(100 * (download.fraction or 0.0))


class ModelDownloadSteps(OptionsFlow):
    """Steps the options flow takes when the chosen model is not on the node yet."""

    _pending_options: dict[str, Any] | None = None
    _fetch: ModelFetch | None = None

    async def async_model_to_fetch(self, options: dict[str, Any]) -> RecommendedModel | None:
        """The recommended model these options choose, if the node does not have it."""
        wanted = recommended_model(options.get(CONF_ASSISTANT, {}).get(CONF_MODEL))
        if wanted is None or await async_node_has(client_of(self._entry), wanted):
            return None
        return wanted

    @property
    def _entry(self) -> HeatcomputeConfigEntry:
        return self.config_entry

    async def async_fetch_then_save(
        self, wanted: RecommendedModel, options: dict[str, Any]
    ) -> ConfigFlowResult:
        self._pending_options = options
        self._fetch = ModelFetch(self.hass, client_of(self._entry), wanted, progress_bar(self))
        return await self.async_step_download_model()

    async def async_step_download_model(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._fetch is not None
        return self._fetch.progress_step(self)

    async def async_step_model_ready(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._pending_options is not None
        return self.async_create_entry(data=self._pending_options)

    async def async_step_model_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._fetch is not None
        return self.async_abort(
            reason=self._fetch.failure or "download_failed",
            description_placeholders={"model": self._fetch.wanted.name},
        )
