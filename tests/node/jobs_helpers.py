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
    """Every ``job`` event (and ``safety`` event) the node publishes, from subscription on."""

    def __init__(self, client: NodeClient) -> None:
        self.node = node_of(client)
        self.queue: asyncio.Queue[Event] = self.node.events.subscribe()
        self.seen: list[Event] = []

    def close(self) -> None:
        self.node.events.unsubscribe(self.queue)

    async def wait(
        self, predicate: Callable[[Event], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        for event in self.seen:
            if predicate(event):
                return event.data
        async with asyncio.timeout(timeout):
            while True:
                event = await self.queue.get()
                self.seen.append(event)
                if predicate(event):
                    return event.data

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

    async def drain(self) -> None:
        while not self.queue.empty():
            self.seen.append(self.queue.get_nowait())


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
