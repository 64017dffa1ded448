"""The nodes set up in this Home Assistant, as the voice assistant sees them.

Every config entry is one node; the assistant of any entry answers on the node whose
room wants heat most (router.py). The fleet is the one place where entries meet: an
entry joins with its coordinator while it is loaded, and an agent reads the nodes (and
follows their updates) here, never another entry's runtime data.
"""

from __future__ import annotations

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.util.hass_dict import HassKey

from .const import DOMAIN
from .coordinator import HeatcomputeCoordinator
from .router import Node

FLEET: HassKey[Fleet] = HassKey(f"{DOMAIN}_fleet")


@callback
def async_get_fleet(hass: HomeAssistant) -> Fleet:
    """The fleet of this Home Assistant instance (made on first use)."""
    if (fleet := hass.data.get(FLEET)) is None:
        fleet = hass.data[FLEET] = Fleet()
    return fleet


class Fleet:
    """The loaded nodes, and one listener list for changes on any of them."""

    def __init__(self) -> None:
        self._members: dict[str, HeatcomputeCoordinator] = {}
        self._listeners: list[CALLBACK_TYPE] = []

    @callback
    def async_join(self, coordinator: HeatcomputeCoordinator) -> CALLBACK_TYPE:
        """Add an entry's node; returns the function that takes it out again."""
        entry_id = coordinator.config_entry.entry_id
        self._members[entry_id] = coordinator
        stop_following = coordinator.async_add_listener(self._async_changed)
        self._async_changed()

        @callback
        def leave() -> None:
            stop_following()
            if self._members.get(entry_id) is coordinator:
                del self._members[entry_id]
            self._async_changed()

        return leave

    def nodes(self) -> list[Node]:
        """Every member node as the router sees it, now."""
        return [coordinator.as_node() for coordinator in self._members.values()]

    def members(self) -> dict[str, HeatcomputeCoordinator]:
        """The loaded nodes by config entry id (a copy)."""
        return dict(self._members)

    def entry_id_of(self, node: Node) -> str | None:
        """The config entry of a node the router chose."""
        return next(
            (
                entry_id
                for entry_id, coordinator in self._members.items()
                if coordinator.client is node.client
            ),
            None,
        )

    @property
    def can_answer(self) -> bool:
        """Whether any node is reachable and serves requests."""
        return any(node.healthy for node in self.nodes())

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` when a node joins, leaves or has news."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def _async_changed(self) -> None:
        for listener in list(self._listeners):
            listener()
