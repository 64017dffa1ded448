"""The voice assistant's options: a collapsed section of the entry's options form.

A section rather than a step of its own, so the thermostat's options keep their form
(and their tests) and an agent needs no set-up before it works: every field has a
default. Config subentries would fit an agent better, but they differ between the two
Home Assistant releases the integration supports (2025.4 and 2026.x).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
from homeassistant.helpers import llm
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TemplateSelector,
)
import voluptuous as vol

from .chat_client import list_models
from .client import HeatcomputeError
from .const import (
    CONF_ASSISTANT,
    CONF_LLM_API,
    CONF_MAX_HISTORY,
    CONF_MAX_TOKENS,
    CONF_MODEL,
    CONF_PROMPT,
    CONF_TEMPERATURE,
    CONF_TOOL_MODE,
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    LLM_API_NONE,
    TOOL_MODE_AUTO,
    TOOL_MODES,
)
from .coordinator import HeatcomputeConfigEntry
from .model_catalog import model_choices, recommended_model


async def async_assistant_schema(
    hass: HomeAssistant, entry: HeatcomputeConfigEntry
) -> dict[vol.Marker, object]:
    """The "assistant" section, with the LLM APIs and the node's models to choose from."""
    apis: list[SelectOptionDict] = [SelectOptionDict(label="No control", value=LLM_API_NONE)]
    apis.extend(SelectOptionDict(label=api.name, value=api.id) for api in llm.async_get_apis(hass))
    models: list[str] = []
    runtime = getattr(entry, "runtime_data", None)
    if runtime is not None:
        try:
            # Only chat models answer: an embedding model would be refused at every turn.
            models = [model.id for model in await list_models(runtime.client) if model.chats]
        except HeatcomputeError:
            models = []  # the node is away: the model can still be typed in
    fields = vol.Schema(
        {
            vol.Optional(CONF_PROMPT, default=llm.DEFAULT_INSTRUCTIONS_PROMPT): TemplateSelector(),
            vol.Optional(CONF_LLM_API, default=LLM_API_NONE): SelectSelector(
                SelectSelectorConfig(options=apis, mode=SelectSelectorMode.DROPDOWN)
            ),
            vol.Optional(CONF_MODEL): SelectSelector(
                # Not sorted: the node's models first, then those a save downloads.
                SelectSelectorConfig(options=model_choices(models), custom_value=True)
            ),
            vol.Optional(CONF_MAX_HISTORY, default=DEFAULT_MAX_HISTORY): vol.All(
                NumberSelector(
                    NumberSelectorConfig(min=0, max=100, step=1, mode=NumberSelectorMode.BOX)
                ),
                vol.Coerce(int),
            ),
            vol.Optional(CONF_TEMPERATURE, default=DEFAULT_TEMPERATURE): NumberSelector(
                NumberSelectorConfig(min=0, max=2, step=0.05, mode=NumberSelectorMode.SLIDER)
            ),
            vol.Optional(CONF_MAX_TOKENS, default=DEFAULT_MAX_TOKENS): vol.All(
                NumberSelector(
                    NumberSelectorConfig(min=16, max=8192, step=1, mode=NumberSelectorMode.BOX)
                ),
                vol.Coerce(int),
            ),
            vol.Optional(CONF_TOOL_MODE, default=TOOL_MODE_AUTO): SelectSelector(
                SelectSelectorConfig(options=list(TOOL_MODES), translation_key=CONF_TOOL_MODE)
            ),
        }
    )
    # Open while the node has none of the recommended models: the model that can act is
    # then one choice and a submit away.
    collapsed = any(recommended_model(model_id) for model_id in models)
    return {vol.Optional(CONF_ASSISTANT): section(fields, {"collapsed": collapsed})}


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSettings:
    """The agent's options (the "assistant" section of the entry's options)."""

    prompt: str
    llm_api: str | None
    model: str | None
    max_history: int
    temperature: float
    max_tokens: int
    tool_mode: str

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AgentSettings:
        section = options.get(CONF_ASSISTANT) or {}
        api = section.get(CONF_LLM_API)
        return cls(
            prompt=section.get(CONF_PROMPT) or llm.DEFAULT_INSTRUCTIONS_PROMPT,
            llm_api=None if api in (None, "", LLM_API_NONE) else str(api),
            model=section.get(CONF_MODEL) or None,
            max_history=int(section.get(CONF_MAX_HISTORY, DEFAULT_MAX_HISTORY)),
            temperature=float(section.get(CONF_TEMPERATURE, DEFAULT_TEMPERATURE)),
            max_tokens=int(section.get(CONF_MAX_TOKENS, DEFAULT_MAX_TOKENS)),
            tool_mode=str(section.get(CONF_TOOL_MODE, TOOL_MODE_AUTO)),
        )
