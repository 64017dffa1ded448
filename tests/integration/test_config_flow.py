"""Every config-flow step and every error, each error recovering to a created entry."""

from __future__ import annotations

from ipaddress import ip_address
from unittest.mock import AsyncMock

from homeassistant.config_entries import SOURCE_HASSIO, SOURCE_USER, SOURCE_ZEROCONF
from homeassistant.const import CONF_HOST, CONF_PORT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
import pytest
from pytest_homeassistant_custom_component.common import (  # type: ignore[import-untyped]
    MockConfigEntry,
)

from custom_components.heatcompute.client import (
    HeatcomputeAuthenticationError,
    HeatcomputeConnectionError,
    HeatcomputeResponseError,
)
from custom_components.heatcompute.const import (
    CONF_ADDON_SLUG,
    CONF_MAX_POWER,
    CONF_MIN_POWER,
    CONF_OUTDOOR_SENSOR,
    CONF_ROOM_SENSOR,
    CONF_TOKEN,
    DOMAIN,
)

from .conftest import sample_status

pytestmark = pytest.mark.usefixtures("mock_setup_entry")

USER_INPUT = {CONF_HOST: "192.168.1.50", CONF_PORT: 8765, CONF_TOKEN: "secret"}
NODE_ID = "0123456789ab"

ZEROCONF = ZeroconfServiceInfo(
    ip_address=ip_address("192.168.1.50"),
    ip_addresses=[ip_address("192.168.1.50")],
    hostname="heatcompute.local.",
    name=f"heatcompute {NODE_ID}._heatcompute._tcp.local.",
    port=8765,
    type="_heatcompute._tcp.local.",
    properties={"node_id": NODE_ID, "name": "Attic", "api": "1", "version": "0.1.0"},
)
HASSIO = HassioServiceInfo(
    config={CONF_HOST: "a0d7b954-heatcompute", CONF_PORT: 8765, CONF_TOKEN: "addon-token"},
    name="heatcompute",
    slug="a0d7b954_heatcompute",
    uuid="1234",
)

ERRORS = [
    (HeatcomputeConnectionError("down"), {"base": "cannot_connect"}),
    (HeatcomputeAuthenticationError("no"), {CONF_TOKEN: "invalid_auth"}),
    (HeatcomputeResponseError(400, "odd"), {"base": "unknown"}),
]


def existing_entry(hass: HomeAssistant, **data: object) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=NODE_ID, title="heatcompute", data={**USER_INPUT, **data}
    )
    entry.add_to_hass(hass)
    return entry


# --- user -------------------------------------------------------------------------------


async def test_user_creates_entry(hass: HomeAssistant, mock_status: AsyncMock) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"

    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "heatcompute"
    assert result["data"] == USER_INPUT
    assert result["result"].unique_id == NODE_ID


@pytest.mark.parametrize(("error", "form_errors"), ERRORS)
async def test_user_errors_recover(
    hass: HomeAssistant,
    mock_status: AsyncMock,
    error: Exception,
    form_errors: dict[str, str],
) -> None:
    mock_status.side_effect = error
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == form_errors

    mock_status.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_user_already_configured_updates_address(
    hass: HomeAssistant, mock_status: AsyncMock
) -> None:
    entry = existing_entry(hass, **{CONF_HOST: "10.0.0.9"})
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == "192.168.1.50"


# --- zeroconf ---------------------------------------------------------------------------


async def test_zeroconf_asks_for_token(hass: HomeAssistant, mock_status: AsyncMock) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=ZEROCONF
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    assert result["description_placeholders"] == {"name": "Attic", "host": "192.168.1.50"}

    mock_status.side_effect = HeatcomputeAuthenticationError("no")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "wrong"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    mock_status.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "secret"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == USER_INPUT
    assert result["result"].unique_id == NODE_ID


async def test_zeroconf_without_node_id_aborts(hass: HomeAssistant) -> None:
    info = ZeroconfServiceInfo(
        ip_address=ZEROCONF.ip_address,
        ip_addresses=ZEROCONF.ip_addresses,
        hostname=ZEROCONF.hostname,
        name=ZEROCONF.name,
        port=ZEROCONF.port,
        type=ZEROCONF.type,
        properties={},
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_heatcompute_node"


async def test_zeroconf_known_node_updates_address(hass: HomeAssistant) -> None:
    entry = existing_entry(hass, **{CONF_HOST: "10.0.0.9"})
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=ZEROCONF
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_HOST] == "192.168.1.50"


# --- hassio (the add-on) ----------------------------------------------------------------


async def test_hassio_creates_entry(hass: HomeAssistant, mock_status: AsyncMock) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=HASSIO
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {**HASSIO.config, CONF_ADDON_SLUG: "a0d7b954_heatcompute"}


async def test_hassio_known_node_takes_new_token(
    hass: HomeAssistant, mock_status: AsyncMock
) -> None:
    entry = existing_entry(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=HASSIO
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_TOKEN] == "addon-token"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (HeatcomputeConnectionError("down"), "cannot_connect"),
        (HeatcomputeAuthenticationError("no"), "invalid_auth"),
    ],
)
async def test_hassio_errors_abort_then_a_new_announcement_succeeds(
    hass: HomeAssistant, mock_status: AsyncMock, error: Exception, reason: str
) -> None:
    """The add-on announces itself again when it restarts; that one goes through."""
    mock_status.side_effect = error
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=HASSIO
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason

    mock_status.side_effect = None
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=HASSIO
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_hassio_incomplete_discovery_aborts(hass: HomeAssistant) -> None:
    info = HassioServiceInfo(
        config={CONF_HOST: "x"}, name="heatcompute", slug="heatcompute", uuid="1"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "invalid_discovery_info"


# --- reauth -----------------------------------------------------------------------------


async def test_reauth(hass: HomeAssistant, mock_status: AsyncMock) -> None:
    entry = existing_entry(hass)
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"

    mock_status.side_effect = HeatcomputeAuthenticationError("no")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["errors"] == {CONF_TOKEN: "invalid_auth"}

    mock_status.side_effect = HeatcomputeConnectionError("down")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "new-token"}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    mock_status.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "new-token"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_TOKEN] == "new-token"


async def test_reauth_other_node_refused(hass: HomeAssistant, mock_status: AsyncMock) -> None:
    entry = existing_entry(hass)
    mock_status.return_value = sample_status(node_id="ffffffffffff")
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "other"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_node"
    assert entry.data[CONF_TOKEN] == "secret"


# --- reconfigure ------------------------------------------------------------------------


async def test_reconfigure(hass: HomeAssistant, mock_status: AsyncMock) -> None:
    entry = existing_entry(hass)
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"

    new = {CONF_HOST: "192.168.1.60", CONF_PORT: 9000, CONF_TOKEN: "t2"}
    mock_status.side_effect = HeatcomputeConnectionError("down")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new)
    assert result["errors"] == {"base": "cannot_connect"}

    mock_status.side_effect = None
    result = await hass.config_entries.flow.async_configure(result["flow_id"], new)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(entry.data) == new


async def test_reconfigure_to_another_node_refused(
    hass: HomeAssistant, mock_status: AsyncMock
) -> None:
    entry = existing_entry(hass)
    mock_status.return_value = sample_status(node_id="ffffffffffff")
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "192.168.1.61", CONF_PORT: 8765, CONF_TOKEN: "t"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_node"
    assert entry.data[CONF_HOST] == "192.168.1.50"


# --- options ----------------------------------------------------------------------------


async def test_options(hass: HomeAssistant) -> None:
    entry = existing_entry(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "init"

    options = {
        CONF_ROOM_SENSOR: "sensor.room",
        CONF_MIN_POWER: 30,
        CONF_MAX_POWER: 150,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], options)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_ROOM_SENSOR] == "sensor.room"
    assert entry.options[CONF_MAX_POWER] == 150
    # The defaults fill what was left alone.
    assert entry.options["comfort_temperature"] == 21.0


@pytest.mark.parametrize(
    ("options", "errors"),
    [
        ({CONF_MIN_POWER: 100, CONF_MAX_POWER: 50}, {CONF_MIN_POWER: "min_above_max"}),
        ({CONF_OUTDOOR_SENSOR: "sensor.outside"}, {CONF_OUTDOOR_SENSOR: "outdoor_without_room"}),
    ],
)
async def test_options_errors_recover(
    hass: HomeAssistant, options: dict[str, object], errors: dict[str, str]
) -> None:
    entry = existing_entry(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(result["flow_id"], options)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_ROOM_SENSOR: "sensor.room", CONF_OUTDOOR_SENSOR: "sensor.out"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
