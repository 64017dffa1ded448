"""Fan-out of node events to every subscriber of the SSE stream."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

SUBSCRIBER_QUEUE_SIZE = 64


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    data: dict[str, Any]


class EventHub:
    """Publish once, deliver to every subscriber without ever blocking the publisher.

    A subscriber too slow to keep up loses its oldest events, never the newest: for a
    status stream the latest state is what matters.
    """

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        self._subscribers.discard(queue)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        event = Event(name, data)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)
