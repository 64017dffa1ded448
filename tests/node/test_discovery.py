"""Zeroconf: the node's service is found by a real python-zeroconf browser.

Both ends are bound to 127.0.0.1 so the multicast never leaves this machine.
"""

from __future__ import annotations

from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from heatcompute_node import discovery


async def test_advertised_service_is_resolvable(socket_enabled: None) -> None:
    info = discovery.service_info(
        node_id="abcdef123456", name="Living room", port=8765, addresses=["127.0.0.1"]
    )
    advertiser = discovery.Advertiser(info, interfaces=["127.0.0.1"])
    await advertiser.start()
    browser = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        found = AsyncServiceInfo(discovery.SERVICE_TYPE, info.name)
        assert await found.async_request(browser.zeroconf, 3000)
        assert found.port == 8765
        assert found.parsed_addresses() == ["127.0.0.1"]
        assert found.properties == {
            b"node_id": b"abcdef123456",
            b"name": b"Living room",
            b"api": b"1",
            b"version": b"0.1.0",
        }
    finally:
        await browser.async_close()
        await advertiser.stop()
    await advertiser.stop()  # stopping twice is harmless


def test_instance_name_is_unique_per_node() -> None:
    first = discovery.service_info(node_id="aaaaaaaaaaaa", name="n", port=1, addresses=["10.0.0.1"])
    second = discovery.service_info(
        node_id="bbbbbbbbbbbb", name="n", port=1, addresses=["10.0.0.1"]
    )
    assert first.name != second.name
    assert first.name.endswith("._heatcompute._tcp.local.")


def test_advertised_addresses(socket_enabled: None) -> None:
    assert discovery.advertised_addresses("192.168.7.9") == ["192.168.7.9"]
    # Unspecified or a name: the address the machine would reach its LAN with.
    for host in ("0.0.0.0", "myhost"):
        (address,) = discovery.advertised_addresses(host)
        assert address.count(".") == 3
