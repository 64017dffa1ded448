"""Zeroconf advertisement: `_heatcompute._tcp.local.`, so Home Assistant finds the node.

Home Assistant's zeroconf integration matches the service type from the integration's
manifest and starts its config flow with these properties; the node id becomes the
config entry's unique id, so a node that moves to another address is recognised.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from . import API_VERSION, __version__

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_heatcompute._tcp.local."


def service_info(
    *, node_id: str, name: str, port: int, addresses: list[str], host: str | None = None
) -> AsyncServiceInfo:
    # The instance name must be unique on the LAN: the node id keeps two nodes both
    # called "heatcompute" apart.
    instance = f"{name} {node_id}"[:63]
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{instance}.{SERVICE_TYPE}",
        port=port,
        parsed_addresses=addresses,
        server=f"heatcompute-{node_id}.local.",
        properties={
            "node_id": node_id,
            "name": name,
            "api": API_VERSION,
            "version": __version__,
            **({"host": host} if host else {}),
        },
    )


def advertised_addresses(bind_host: str) -> list[str]:
    """The addresses to announce: the bound one, or this machine's LAN address."""
    try:
        address = ipaddress.ip_address(bind_host)
    except ValueError:
        address = None
    if address is not None and not address.is_unspecified:
        return [str(address)]
    # The address the kernel would use to reach the LAN; no packet is sent by connect()
    # on a UDP socket. 192.0.2.1 is TEST-NET-1, used only for the route lookup.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return [probe.getsockname()[0]]
        except OSError:
            return ["127.0.0.1"]


class Advertiser:
    """Registers the node's service on start, withdraws it on stop."""

    def __init__(self, info: AsyncServiceInfo, interfaces: list[str] | None = None) -> None:
        self._info = info
        self._interfaces = interfaces
        self._zeroconf: AsyncZeroconf | None = None

    @property
    def info(self) -> AsyncServiceInfo:
        return self._info

    async def start(self) -> None:
        try:
            if self._interfaces is not None:
                self._zeroconf = AsyncZeroconf(
                    interfaces=self._interfaces, ip_version=IPVersion.V4Only
                )
            else:
                self._zeroconf = AsyncZeroconf(ip_version=IPVersion.V4Only)
            await self._zeroconf.async_register_service(self._info, allow_name_change=True)
        except OSError as err:
            # No multicast (some containers): the node works, it just can't be discovered.
            _LOGGER.warning("zeroconf advertisement unavailable: %s", err)
            await self.stop()
            return
        _LOGGER.info("advertising %s on %s", self._info.name, self._info.parsed_addresses())

    async def stop(self) -> None:
        if self._zeroconf is None:
            return
        try:
            await self._zeroconf.async_unregister_all_services()
        finally:
            await self._zeroconf.async_close()
            self._zeroconf = None
