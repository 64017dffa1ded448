"""The options flow's download of a recommended model, with progress (as core's ollama
pulls a model from its flow).

The node does the downloading (resumable, SHA-256 checked, never half-visible); Home
Assistant asks for it, follows its progress and saves the options once the model is
there. Closing the dialog does not stop the node: the model appears when it is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from homeassistant.config_entries import ConfigFlowResult, OptionsFlow

from .chat_client import list_models
from .client import (
    HeatcomputeConnectionError,
    HeatcomputeError,
    HeatcomputeResponseError,
    ModelDownload,
)
from .const import CONF_ASSISTANT, CONF_MODEL, LOGGER
from .coordinator import HeatcomputeConfigEntry
from .model_catalog import RecommendedModel, recommended_model

# How often the flow asks the node how far it got; a model takes minutes.
POLL_INTERVAL_S: Final = 1.0

# The node's reasons a download failed -> this flow's abort reasons (translated).
_FAILURES: Final = {
    "checksum_mismatch": "checksum_mismatch",
    "invalid_model": "invalid_model",
    "insufficient_storage": "insufficient_storage",
}


class ModelDownloadSteps(OptionsFlow):
    """Steps the options flow takes when the chosen model is not on the node yet.

    The progress step shows the share done in its text. Each change of a percent point
    ends one watch task; the flow manager then runs the step again, which shows the new
    figure and starts the next watch (Home Assistant 2025.4 has no progress bar for
    flows; where `async_update_progress` exists, the bar follows too).
    """

    _pending_options: dict[str, Any] | None = None
    _wanted: RecommendedModel | None = None
    _watch: asyncio.Task[None] | None = None
    _latest: ModelDownload | None = None
    _failure: str | None = None

    async def async_model_to_fetch(self, options: dict[str, Any]) -> RecommendedModel | None:
        """The recommended model these options choose, if the node does not have it."""
        wanted = recommended_model(options.get(CONF_ASSISTANT, {}).get(CONF_MODEL))
        if wanted is None:
            return None
        runtime = getattr(self._entry, "runtime_data", None)
        on_node: set[str] = set()  # unknown: the download step reports the node away
        if runtime is not None:
            with contextlib.suppress(HeatcomputeError):
                on_node = {model.id for model in await list_models(runtime.client)}
        return None if wanted.model_id in on_node else wanted

    @property
    def _entry(self) -> HeatcomputeConfigEntry:
        return self.config_entry

    async def async_fetch_then_save(
        self, wanted: RecommendedModel, options: dict[str, Any]
    ) -> ConfigFlowResult:
        self._wanted, self._pending_options = wanted, options
        return await self.async_step_download_model()

    async def async_step_download_model(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._wanted is not None
        if self._watch is not None and self._watch.done():
            self._watch = None
            if self._failure is not None:
                return self.async_show_progress_done(next_step_id="model_failed")
            if self._latest is not None and self._latest.state == "done":
                return self.async_show_progress_done(next_step_id="model_ready")
        if self._watch is None:
            self._watch = self.hass.async_create_task(
                self._async_watch(self._wanted), f"heatcompute: download {self._wanted.name}"
            )
        fraction = (self._latest.fraction if self._latest is not None else None) or 0.0
        return self.async_show_progress(
            step_id="download_model",
            progress_action="download_model",
            progress_task=self._watch,
            description_placeholders={
                "model": self._wanted.name,
                "size": f"{self._wanted.size_gb:.1f}",
                "licence": self._wanted.licence,
                "percent": f"{100 * fraction:.0f}",
            },
        )

    async def async_step_model_ready(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._pending_options is not None
        return self.async_create_entry(data=self._pending_options)

    async def async_step_model_failed(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._wanted is not None
        return self.async_abort(
            reason=self._failure or "download_failed",
            description_placeholders={"model": self._wanted.name},
        )

    async def _async_watch(self, wanted: RecommendedModel) -> None:
        """Start the download (first time) and follow it until it is finished or a
        percent point further; the outcome lands in `_latest` / `_failure`."""
        runtime = getattr(self._entry, "runtime_data", None)
        if runtime is None:  # the entry is not loaded: no node to ask
            self._failure = "cannot_connect"
            return
        client = runtime.client
        try:
            latest = self._latest or await client.download_model(
                wanted.url, wanted.file_name, sha256=wanted.sha256, size_bytes=wanted.size_bytes
            )
            shown = _percent(latest)
            while not latest.finished and _percent(latest) == shown:
                await asyncio.sleep(POLL_INTERVAL_S)
                latest = await client.model_download(wanted.file_name)
                self._show_bar(latest.fraction)
            self._latest = latest
        except HeatcomputeConnectionError:
            self._failure = "cannot_connect"
        except HeatcomputeResponseError as err:
            LOGGER.warning("the node refused to download %s: %s", wanted.name, err)
            self._failure = _FAILURES.get(err.code or "", "download_failed")
        except HeatcomputeError:
            LOGGER.exception("unexpected answer while downloading %s", wanted.name)
            self._failure = "download_failed"
        else:
            if latest.state == "failed":
                LOGGER.warning("downloading %s failed: %s", wanted.name, latest.error)
                self._failure = _FAILURES.get(latest.error_code or "", "download_failed")

    def _show_bar(self, fraction: float | None) -> None:
        """The dialog's progress bar, on releases that have one (not 2025.4)."""
        update = getattr(self, "async_update_progress", None)
        if update is not None and fraction is not None:
            update(fraction)


def _percent(download: ModelDownload) -> int:
    return int(100 * (download.fraction or 0.0))
