"""Constants of the heatcompute integration."""

from __future__ import annotations

from datetime import timedelta
import logging
from typing import Final

DOMAIN: Final = "heatcompute"
LOGGER = logging.getLogger(__package__)

DEFAULT_PORT: Final = 8765
CONF_TOKEN: Final = "token"
# The add-on that announced the node (Supervisor discovery): its dashboard is reached
# through Home Assistant's ingress, which the device page links to.
CONF_ADDON_SLUG: Final = "addon_slug"

# The SSE stream pushes every change at once; polling only covers a stream that is
# (re)connecting, so it can be slow.
POLL_INTERVAL: Final = timedelta(seconds=30)
# How often the thermostat re-computes and re-sends the heat target. The re-send also
# feeds the node's watchdog, which falls back to a safe level when Home Assistant goes quiet.
CONTROL_INTERVAL: Final = timedelta(seconds=60)

# Options (the thermostat's set-up, changeable at any time).
CONF_ROOM_SENSOR: Final = "room_sensor"
CONF_OUTDOOR_SENSOR: Final = "outdoor_sensor"
CONF_MIN_POWER: Final = "min_power_w"
CONF_MAX_POWER: Final = "max_power_w"
CONF_KP: Final = "kp_w_per_k"
CONF_KI: Final = "ki_w_per_kh"
CONF_FEED_FORWARD: Final = "feed_forward_w_per_k"
CONF_MIN_RUN: Final = "min_run_minutes"
CONF_MIN_OFF: Final = "min_off_minutes"
CONF_COMFORT_TEMP: Final = "comfort_temperature"
CONF_ECO_TEMP: Final = "eco_temperature"
CONF_AWAY_TEMP: Final = "away_temperature"
CONF_BOOST_TEMP: Final = "boost_temperature"

DEFAULT_MIN_POWER: Final = 20.0
DEFAULT_MAX_POWER: Final = 200.0
DEFAULT_KP: Final = 200.0
DEFAULT_KI: Final = 100.0
DEFAULT_FEED_FORWARD: Final = 0.0
DEFAULT_MIN_RUN: Final = 5.0
DEFAULT_MIN_OFF: Final = 5.0
DEFAULT_COMFORT_TEMP: Final = 21.0
DEFAULT_ECO_TEMP: Final = 19.0
DEFAULT_AWAY_TEMP: Final = 16.0
DEFAULT_BOOST_TEMP: Final = 23.0

PRESET_COMFORT: Final = "comfort"
PRESET_ECO: Final = "eco"
PRESET_BOOST: Final = "boost"
PRESET_AWAY: Final = "away"
PRESETS: Final = (PRESET_COMFORT, PRESET_ECO, PRESET_BOOST, PRESET_AWAY)
# Without a room sensor the presets pick a share of the maximum power instead.
POWER_MODE_PRESET_SHARE: Final = {
    PRESET_COMFORT: 0.6,
    PRESET_ECO: 0.3,
    PRESET_BOOST: 1.0,
    PRESET_AWAY: 0.0,
}

MIN_TARGET_TEMP: Final = 5.0
MAX_TARGET_TEMP: Final = 30.0

# Services.
SERVICE_SUBMIT_JOB: Final = "submit_job"
SERVICE_SET_HEAT_TARGET: Final = "set_heat_target"
SERVICE_READ_TEXT: Final = "read_text"
SERVICE_SEARCH_DOCUMENTS: Final = "search_documents"
ATTR_CAMERA: Final = "camera_entity_id"
ATTR_IMAGE_PATH: Final = "image_path"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"
ATTR_JOB: Final = "job"
ATTR_POWER: Final = "power_w"
ATTR_DURATION: Final = "duration"
ATTR_QUERY: Final = "query"
ATTR_LIMIT: Final = "limit"

# The voice assistant (conversation agent): options in the "assistant" section.
CONF_ASSISTANT: Final = "assistant"
CONF_PROMPT: Final = "prompt"
CONF_LLM_API: Final = "llm_hass_api"
CONF_MODEL: Final = "model"
CONF_MAX_HISTORY: Final = "max_history"
CONF_TEMPERATURE: Final = "temperature"
CONF_MAX_TOKENS: Final = "max_tokens"
CONF_TOOL_MODE: Final = "tool_mode"
LLM_API_NONE: Final = "none"
TOOL_MODE_AUTO: Final = "auto"
"""The model decides whether to call a tool (standard OpenAI tool calling)."""
TOOL_MODE_REQUIRED: Final = "required"
"""Each turn starts with a tool call the node constrains by grammar, then an answer:
for very small models that only control the home."""
TOOL_MODES: Final = (TOOL_MODE_AUTO, TOOL_MODE_REQUIRED)
DEFAULT_MAX_HISTORY: Final = 10
DEFAULT_TEMPERATURE: Final = 0.5
DEFAULT_MAX_TOKENS: Final = 256
# Rounds of model -> tools -> model in one turn (as core's ollama integration).
MAX_TOOL_ITERATIONS: Final = 10

# Splitting a model over several nodes: options in the lead's "fleet" section.
CONF_FLEET: Final = "fleet"
CONF_WORKERS: Final = "workers"
CONF_FLEET_MODEL: Final = "model"
