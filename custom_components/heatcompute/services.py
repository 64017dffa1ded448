"""Actions: hand the node a job; run at some watts for a while, then back to the thermostat;
read the text in an image; search the documents the node has indexed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv
import voluptuous as vol

from .client import HeatcomputeUnavailableError
from .const import (
    ATTR_CAMERA,
    ATTR_CONFIG_ENTRY_ID,
    ATTR_DURATION,
    ATTR_IMAGE_PATH,
    ATTR_JOB,
    ATTR_LIMIT,
    ATTR_POWER,
    ATTR_QUERY,
    DOMAIN,
    SERVICE_READ_TEXT,
    SERVICE_SEARCH_DOCUMENTS,
    SERVICE_SET_HEAT_TARGET,
    SERVICE_SUBMIT_JOB,
)
from .coordinator import HeatcomputeConfigEntry, translated_action_errors
from .fleet import async_get_fleet
from .job_placement import async_place_job

SUBMIT_JOB_SCHEMA = vol.Schema(
    {
        # Without a node, the job goes where heat is wanted most (job_placement.py).
        vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_JOB): vol.Schema({}, extra=vol.ALLOW_EXTRA),
    }
)
SET_HEAT_TARGET_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_POWER): vol.All(vol.Coerce(float), vol.Range(min=0)),
        vol.Required(ATTR_DURATION): vol.All(
            cv.time_period, vol.Range(min=timedelta(seconds=1), max=timedelta(days=1))
        ),
    }
)


READ_TEXT_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Exclusive(ATTR_CAMERA, "image"): cv.entity_domain("camera"),
        vol.Exclusive(ATTR_IMAGE_PATH, "image"): cv.string,
    }
)


# The node's own bound: a person asks for a few passages, an automation for a page of them.
MAX_PASSAGES = 50
SEARCH_DOCUMENTS_SCHEMA = vol.Schema(
    {
        vol.Required(ATTR_CONFIG_ENTRY_ID): cv.string,
        vol.Required(ATTR_QUERY): vol.All(cv.string, vol.Strip, vol.Length(min=1, max=2000)),
        vol.Optional(ATTR_LIMIT, default=5): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=MAX_PASSAGES)
        ),
    }
)


def _loaded_entry(hass: HomeAssistant, call: ServiceCall) -> HeatcomputeConfigEntry:
    entry_id: str = call.data[ATTR_CONFIG_ENTRY_ID]
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    loaded: HeatcomputeConfigEntry = entry
    return loaded


class _Actions:
    """The handlers, bound to hass; methods so the shared error translation applies."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass

    @translated_action_errors
    async def submit_job(self, call: ServiceCall) -> ServiceResponse:
        """The node's reply, and which node took the job (its config entry)."""
        job = call.data[ATTR_JOB]
        if ATTR_CONFIG_ENTRY_ID not in call.data:
            entry_id, reply = await async_place_job(async_get_fleet(self.hass), job)
        else:
            entry = _loaded_entry(self.hass, call)
            entry_id, reply = entry.entry_id, await entry.runtime_data.client.submit_job(job)
        return {**reply, ATTR_CONFIG_ENTRY_ID: entry_id}

    @translated_action_errors
    async def read_text(self, call: ServiceCall) -> ServiceResponse:
        """The text in a camera's snapshot or an image file, read on the node."""
        entry = _loaded_entry(self.hass, call)
        image, content_type = await self._image(call)
        reply: dict[str, Any] = await entry.runtime_data.client.read_text(image, content_type)
        return reply

    async def _image(self, call: ServiceCall) -> tuple[bytes, str]:
        if ATTR_CAMERA in call.data:
            from homeassistant.components.camera import async_get_image

            entity_id: str = call.data[ATTR_CAMERA]
            try:
                snapshot = await async_get_image(self.hass, entity_id)
            except HomeAssistantError as err:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="camera_failed",
                    translation_placeholders={"entity_id": entity_id, "error": str(err)},
                ) from err
            return snapshot.content, snapshot.content_type
        if ATTR_IMAGE_PATH in call.data:
            path: str = call.data[ATTR_IMAGE_PATH]
            # The same allowlist as every other action that reads files.
            if not self.hass.config.is_allowed_path(path):
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="path_not_allowed",
                    translation_placeholders={"path": path},
                )
            try:
                data = await self.hass.async_add_executor_job(Path(path).read_bytes)
            except OSError as err:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="image_unreadable",
                    translation_placeholders={"path": path, "error": str(err)},
                ) from err
            return data, "application/octet-stream"
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_image")

    @translated_action_errors
    async def search_documents(self, call: ServiceCall) -> ServiceResponse:
        """Passages of the node's indexed documents closest in meaning to the query."""
        entry = _loaded_entry(self.hass, call)
        query: str = call.data[ATTR_QUERY]
        try:
            passages = await entry.runtime_data.client.search_documents(
                query, call.data[ATTR_LIMIT]
            )
        except HeatcomputeUnavailableError as err:
            # The node is there but can't search: say why in the user's words.
            if err.code == "index_disabled":
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="index_disabled",
                    translation_placeholders={"title": entry.title},
                ) from err
            if err.code == "model_not_available":
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="index_no_model",
                    translation_placeholders={"title": entry.title},
                ) from err
            raise
        return {"query": query, "passages": [passage.as_dict() for passage in passages]}

    @translated_action_errors
    async def set_heat_target(self, call: ServiceCall) -> None:
        entry = _loaded_entry(self.hass, call)
        thermostat = entry.runtime_data.thermostat
        power_w: float = call.data[ATTR_POWER]
        if power_w > thermostat.max_power_w:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="power_out_of_range",
                translation_placeholders={"max_power": f"{thermostat.max_power_w:g}"},
            )
        await thermostat.async_set_override(power_w, call.data[ATTR_DURATION])


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    actions = _Actions(hass)
    hass.services.async_register(
        DOMAIN,
        SERVICE_SUBMIT_JOB,
        actions.submit_job,
        schema=SUBMIT_JOB_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_SET_HEAT_TARGET, actions.set_heat_target, schema=SET_HEAT_TARGET_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEARCH_DOCUMENTS,
        actions.search_documents,
        schema=SEARCH_DOCUMENTS_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_READ_TEXT,
        actions.read_text,
        schema=READ_TEXT_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
