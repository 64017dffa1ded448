"""Helpers for job tests against a real node app: submit, wait on events, count samples."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field
from typing import Any

from heatcompute_node.api.jobs import HEAT_SERVICE_KEY
from heatcompute_node.api.keys import NODE_KEY
from heatcompute_node.events import Event
from heatcompute_node.hardware.base import HardwareReading
from heatcompute_node.heat.service import HeatService
from heatcompute_node.node import Node

from .conftest import NodeClient, auth


def node_of(client: NodeClient) -> Node:
    app = client.app
    assert app is not None
    return app[NODE_KEY]


@dataclass
class SampleCounter:
    """Counts the node's hardware samples, so a test can let N control steps pass."""

    count: int = 0
    ticked: asyncio.Event = field(default_factory=asyncio.Event)

    def on_sample(self, reading: HardwareReading, now: float) -> None:
        self.count += 1
        self.ticked.set()

    async def wait(self, samples: int, timeout: float = 10.0) -> None:
        target = self.count + samples
        async with asyncio.timeout(timeout):
            while self.count < target:
                self.ticked.clear()
                await self.ticked.wait()


def count_samples(client: NodeClient) -> SampleCounter:
    counter = SampleCounter()
    node_of(client).add_sample_listener(counter)
    return counter


class JobEvents:
    """Every ``job`` event (and ``safety`` event) the node publishes, from subscription on.

    A task reads the subscription as events arrive: the hub drops a subscriber's oldest
    events once 64 wait (the tests sample every 50 ms, so a status event each time), and
    a test busy with something else must not lose the job's first states that way.
    """

    def __init__(self, client: NodeClient) -> None:
        self.node = node_of(client)
        self.queue: asyncio.Queue[Event] = self.node.events.subscribe()
        self.seen: list[Event] = []
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            self.seen.append(await self.queue.get())
            self._arrived.set()

    def close(self) -> None:
        self._reader.cancel()
        self.node.events.unsubscribe(self.queue)

    async def wait(
        self, predicate: Callable[[Event], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        checked = 0
        async with asyncio.timeout(timeout):
            while True:
                for event in self.seen[checked:]:
                    if predicate(event):
                        return event.data
                checked = len(self.seen)
                self._arrived.clear()
                await self._arrived.wait()

    async def state(self, job_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
        return await self.wait(
            lambda e: e.name == "job" and e.data["id"] == job_id and e.data["state"] == state,
            timeout,
        )

    async def states_until(self, job_id: str, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until the job has gone through ``count`` states; return them."""

        def enough(_event: Event) -> bool:
            return len(self.states(job_id)) >= count

        await self.wait(enough, timeout)
        return self.states(job_id)

    def states(self, job_id: str) -> list[str]:
        """The job's states in the order they were published, repeats folded."""
        states: list[str] = []
        for event in self.seen:
            if (
                event.name == "job"
                and event.data["id"] == job_id
                and (not states or states[-1] != event.data["state"])
            ):
                states.append(event.data["state"])
        return states


@contextlib.asynccontextmanager
async def job_events(client: NodeClient) -> AsyncIterator[JobEvents]:
    events = JobEvents(client)
    try:
        yield events
    finally:
        events.close()


async def submit(client: NodeClient, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = await client.post("/api/jobs", json=body, headers=auth())
    data: dict[str, Any] = await response.json()
    assert response.status == status, data
    return data


async def get_job(client: NodeClient, job_id: str, **query: int) -> dict[str, Any]:
    response = await client.get(f"/api/jobs/{job_id}", params=query, headers=auth())
    assert response.status == 200
    data: dict[str, Any] = await response.json()
    return data


async def set_heat(client: NodeClient, mode: str, target_w: float = 100.0) -> None:
    response = await client.put(
        "/api/heat", json={"mode": mode, "target_w": target_w}, headers=auth()
    )
    assert response.status == 200


def heat_service_of(client: NodeClient) -> HeatService:
    app = client.app
    assert app is not None
    return app[HEAT_SERVICE_KEY]
