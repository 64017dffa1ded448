"""Two network namespaces joined by a veth pair: two hosts of a house, made by the test.

Names carry the test process's id (several runs may share a machine); the /30 is the
test's own. Everything is removed on exit, failures included.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import os
import shutil
import subprocess

SUBNET_PREFIX = "10.77.16"
"""10.77.16.0/30: .1 the lead's namespace, .2 the worker's."""


@dataclass(frozen=True, slots=True)
class Host:
    namespace: str
    address: str
    link: str
    """Its end of the veth pair."""

    def command(self, *argv: str) -> list[str]:
        """argv run inside this host's namespace (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (None: they can)."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root (CI runs as root)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    tag = f"{os.getpid() % 100000}"
    lead = Host(f"hcfleet-lead-{tag}", f"{SUBNET_PREFIX}.1", f"hcfl{tag}")
    worker = Host(f"hcfleet-work-{tag}", f"{SUBNET_PREFIX}.2", f"hcfw{tag}")
    veth_lead, veth_worker = lead.link, worker.link
    made: list[str] = []
    try:
        for host in (lead, worker):
            _ip("netns", "add", host.namespace)
            made.append(host.namespace)
        _ip("link", "add", veth_lead, "type", "veth", "peer", "name", veth_worker)
        for host, veth in ((lead, veth_lead), (worker, veth_worker)):
            _ip("link", "set", veth, "netns", host.namespace)
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/30", "dev", veth)
            _ip("-n", host.namespace, "link", "set", veth, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        yield lead, worker
    finally:
        # Deleting a namespace deletes the veth end in it (and so the pair).
        for namespace in made:
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", veth_lead], check=False, capture_output=True)
