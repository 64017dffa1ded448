"""The node's status, pushed by its event stream, polled only as a fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
import contextlib
from dataclasses import dataclass
import functools
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import (
    ConfigEntryAuthFailed,
    HomeAssistantError,
    ServiceValidationError,
)
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .client import (
    HeatcomputeAuthenticationError,
    HeatcomputeClient,
    HeatcomputeError,
    HeatcomputeNotSupportedError,
    HeatcomputeOverloadedError,
    HeatcomputeResponseError,
    NodeStatus,
)
from .const import DOMAIN, LOGGER, POLL_INTERVAL
from .router import Node

if TYPE_CHECKING:
    from .thermostat import Thermostat

# Reconnect quickly after a node restart, but don't hammer a node that is gone.
STREAM_RETRY_MIN_S = 1.0
STREAM_RETRY_MAX_S = 10.0


@dataclass(kw_only=True)
class HeatcomputeData:
    """What a config entry holds while it is loaded."""

    client: HeatcomputeClient
    coordinator: HeatcomputeCoordinator
    thermostat: Thermostat


type HeatcomputeConfigEntry = ConfigEntry[HeatcomputeData]


@contextlib.asynccontextmanager
async def translated_update_errors() -> AsyncIterator[None]:
    """Client errors as the coordinator must raise them: auth failure starts a reauth."""
    try:
        yield
    except HeatcomputeAuthenticationError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except HeatcomputeError as err:
        raise UpdateFailed(
            translation_domain=DOMAIN,
            translation_key="communication_error",
            translation_placeholders={"error": str(err)},
        ) from err


# Most specific first: the first class an error is an instance of decides how the user
# reads it, and whether the node's own reason goes into the message.
_ACTION_ERRORS: tuple[tuple[type[HeatcomputeError], type[HomeAssistantError], str, bool], ...] = (
    (HeatcomputeAuthenticationError, HomeAssistantError, "invalid_auth", False),
    (HeatcomputeNotSupportedError, HomeAssistantError, "not_supported", True),
    (HeatcomputeOverloadedError, HomeAssistantError, "overloaded", False),
    # The node understood and said no (a bad job, a power out of range): the user's
    # input is what needs changing, not the connection.
    (HeatcomputeResponseError, ServiceValidationError, "node_refused", True),
    (HeatcomputeError, HomeAssistantError, "communication_error", True),
)


def _action_error(err: HeatcomputeError) -> HomeAssistantError:
    raised, key, with_reason = next(
        (raised, key, with_reason)
        for error_class, raised, key, with_reason in _ACTION_ERRORS
        if isinstance(err, error_class)
    )
    return raised(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders={"error": str(err)} if with_reason else None,
    )


def translated_action_errors[**_P, _R](
    func: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Turn client errors in a user's action into translated HomeAssistantErrors."""

    @functools.wraps(func)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await func(*args, **kwargs)
        except HeatcomputeError as err:
            raise _action_error(err) from err

    return wrapper


class HeatcomputeCoordinator(DataUpdateCoordinator[NodeStatus]):
    """Holds the latest status of one node.

    The event stream delivers every change within a second; when it drops (the node
    restarts, the network fails) one immediate poll tells the entities whether the node
    is still there, and the stream reconnects with backoff while polling covers the gap.
    """

    config_entry: HeatcomputeConfigEntry

    def __init__(
        self, hass: HomeAssistant, entry: HeatcomputeConfigEntry, client: HeatcomputeClient
    ) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=POLL_INTERVAL,
            # Equal snapshots (the stream repeats a status on reconnect) write no states.
            always_update=False,
        )
        self.client = client
        self.stream_connected = False

    async def _async_update_data(self) -> NodeStatus:
        async with translated_update_errors():
            return await self.client.status()

    def as_node(self) -> Node:
        """This node as the assistant's router sees it."""
        status = self.data
        serving = status is None or status.config is None or status.config.serve_requests
        return Node(
            node_id=status.node_id if status else self.config_entry.entry_id,
            name=self.config_entry.title,
            client=self.client,
            status=status,
            healthy=self.last_update_success and serving is not False,
        )

    def async_start_stream(self) -> None:
        """Follow the node's event stream until the config entry unloads."""
        self.config_entry.async_create_background_task(
            self.hass, self._follow_stream(), f"{DOMAIN} event stream {self.config_entry.title}"
        )

    def _stream_lost(self) -> None:
        self.stream_connected = False
        self.update_interval = POLL_INTERVAL

    async def _follow_stream(self) -> None:
        retry_s = STREAM_RETRY_MIN_S
        while True:
            try:
                async for status in self.client.events():
                    if not self.stream_connected:
                        # The stream carries everything now: polling would only repeat it.
                        self.stream_connected = True
                        self.update_interval = None
                        retry_s = STREAM_RETRY_MIN_S
                    self.async_set_updated_data(status)
            except HeatcomputeAuthenticationError:
                # The refresh below raises the auth failure and starts the reauth flow;
                # retrying with the same token cannot succeed.
                self._stream_lost()
                await self.async_refresh()
                return
            except HeatcomputeError as err:
                LOGGER.debug("event stream of %s failed: %s", self.config_entry.title, err)
            self._stream_lost()
            # One poll at once tells the entities whether the node is still there.
            await self.async_refresh()
            await asyncio.sleep(retry_s)
            retry_s = min(retry_s * 2, STREAM_RETRY_MAX_S)
