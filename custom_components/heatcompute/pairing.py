"""Pairing a lead with its workers, done by Home Assistant through the nodes' API.

Home Assistant knows every node (their config entries) and each node's token, so it
can introduce them: it reads each node's certificate (public) and hands it to the other
side, with the address of the worker's tunnel for the lead. The private keys never
leave their nodes, and nobody copies a secret by hand. Then it gives the roles:
workers first, so the lead finds them listening when it splits the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

from .client import (
    HeatcomputeAuthenticationError,
    HeatcomputeError,
    HeatcomputeNotSupportedError,
    HeatcomputeResponseError,
)
from .const import LOGGER
from .fleet_api import FleetApi, FleetInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A node set up in Home Assistant, as pairing needs it."""

    node_id: str
    name: str
    host: str
    """The address Home Assistant reaches it at: its tunnel listens there too."""
    api: FleetApi


class PairingError(Exception):
    """Pairing stopped at one node; `reason` is a translation key of the options form."""

    def __init__(self, reason: str, node: str, detail: str = "") -> None:
        super().__init__(f"{node}: {reason} {detail}".strip())
        self.reason = reason
        self.node = node
        self.detail = detail


async def _at[T](member: Member, call: Awaitable[T]) -> T:
    """Run one call on `member`, its failure told as a PairingError naming the node."""
    try:
        return await call
    except HeatcomputeAuthenticationError as err:
        raise PairingError("invalid_auth", member.name) from err
    except HeatcomputeNotSupportedError as err:
        if err.code is None:  # no such route: an older node without the fleet API
            raise PairingError("fleet_not_supported", member.name, str(err)) from err
        raise PairingError("node_refused", member.name, str(err)) from err
    except HeatcomputeResponseError as err:
        raise PairingError("node_refused", member.name, str(err)) from err
    except HeatcomputeError as err:
        raise PairingError("cannot_connect", member.name, str(err)) from err


def tunnel_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def async_lead(
    lead: Member, workers: list[Member], model: str, released: Iterable[Member | str] = ()
) -> FleetInfo:
    """Pair `lead` with `workers` both ways, make them workers and `lead` the lead of
    `model` over them; then let go of the `released` workers (nodes, or node ids of
    nodes Home Assistant no longer has). Answers the lead's fleet as it is now."""
    lead_info, *worker_infos = await asyncio.gather(
        _at(lead, lead.api.info()), *(_at(worker, worker.api.info()) for worker in workers)
    )
    for worker, info in zip(workers, worker_infos, strict=True):
        if info.role == "lead":
            raise PairingError("worker_is_lead", worker.name)
        if info.tunnel_port is None:
            raise PairingError("fleet_not_supported", worker.name)
        address = tunnel_address(worker.host, info.tunnel_port)
        await _at(lead, lead.api.admit(info, address))
        await _at(worker, worker.api.admit(lead_info))
    for worker in workers:
        await _at(worker, worker.api.set_role("worker"))
    answer = await _at(
        lead,
        lead.api.set_role("lead", model=model, workers=[info.node_id for info in worker_infos]),
    )
    await _release(lead, released)
    return answer


async def async_stop_leading(lead: Member, released: Iterable[Member | str]) -> None:
    """The lead runs its models alone again; its workers are let go."""
    await _at(lead, lead.api.set_role("off"))
    await _release(lead, released)


async def _release(lead: Member, released: Iterable[Member | str]) -> None:
    """Unpair each released worker from the lead, and end its role if no other lead
    uses it. A worker that is gone is only forgotten by the lead: it cannot be reached,
    and the lead refuses its key from now on anyway."""
    for worker in released:
        node_id = worker if isinstance(worker, str) else worker.node_id
        await _at(lead, lead.api.forget(node_id))
        if isinstance(worker, str):
            continue
        try:
            await worker.api.forget(lead.node_id)
            if not (await worker.api.info()).peers:
                await worker.api.set_role("off")
        except HeatcomputeError as err:
            LOGGER.info("could not let %s go from %s's split: %s", worker.name, lead.name, err)
