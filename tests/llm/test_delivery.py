"""The engine thread's events reach the loop in order, a busy loop takes them all at its
next wake instead of one wake per token, and a stream's words between its first and its
end wake the loop at most every 20 ms (engines/llm/delivery.py, request.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import threading

import pytest

from heatcompute_node.engines.llm import delivery
from heatcompute_node.engines.llm.delivery import delivery_for
from heatcompute_node.engines.llm.request import (
    Finished,
    GenerationHandle,
    GenerationRequest,
    TextDelta,
)


@contextlib.contextmanager
def wakes_counted(loop: asyncio.AbstractEventLoop) -> Iterator[list[int]]:
    """The times the inbox woke the loop while inside (one number, in a list)."""
    inbox = delivery_for(loop)
    drain = inbox._drain
    wakes = [0]

    def counted() -> None:
        wakes[0] += 1
        drain()

    loop.remove_reader(inbox._read_fd)
    loop.add_reader(inbox._read_fd, counted)
    try:
        yield wakes
    finally:
        loop.remove_reader(inbox._read_fd)
        loop.add_reader(inbox._read_fd, drain)


async def test_events_arrive_in_order_and_a_busy_loop_takes_them_in_one_wake() -> None:
    loop = asyncio.get_running_loop()
    inbox = delivery_for(loop)
    assert delivery_for(loop) is inbox
    received: list[int] = []
    all_sent = threading.Event()
    done = loop.create_future()

    def deliver(event: int) -> None:
        received.append(event)
        if event == 99:
            done.set_result(None)

    def engine() -> None:
        for event in range(100):
            inbox.send(deliver, event)
        all_sent.set()

    with wakes_counted(loop) as wakes:
        thread = threading.Thread(target=engine)
        thread.start()
        # The loop is busy (this wait blocks it) while the engine sends every event.
        assert all_sent.wait(10)
        thread.join()
        await asyncio.wait_for(done, 10)
        assert received == list(range(100))
        assert wakes == [1]
        # The next event wakes the loop again.
        again = loop.create_future()
        threading.Thread(target=inbox.send, args=(again.set_result, "next")).start()
        assert await asyncio.wait_for(again, 10) == "next"
        assert wakes == [2]


async def test_a_handle_made_off_the_loop_delivers_on_it() -> None:
    """submit() runs on a worker thread (generate.py): the inbox is made from there."""
    loop = asyncio.get_running_loop()
    other = asyncio.new_event_loop()
    try:
        made = await asyncio.to_thread(delivery_for, other)
        assert made is delivery_for(other)
    finally:
        other.close()
    got = loop.create_future()
    await asyncio.to_thread(delivery_for(loop).send, got.set_result, 1)
    assert await asyncio.wait_for(got, 10) == 1


def finished(text: str, tokens: int) -> Finished:
    return Finished(
        reason="length",
        prompt_tokens=3,
        completion_tokens=tokens,
        cached_tokens=0,
        text=text,
        ttft_s=0.01,
        latency_s=0.1,
    )


async def test_a_stream_wakes_the_loop_for_its_first_words_and_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The words between may ride along with the next wake and come joined as one delta;
    the first words and the end never wait, even when the first token completes no
    character. (The interval is made long here so that which events wait does not depend
    on how fast this machine runs the engine thread.)"""
    monkeypatch.setattr(delivery, "STREAM_INTERVAL_S", 3600.0)
    loop = asyncio.get_running_loop()
    handle = GenerationHandle(GenerationRequest(prompt=(1, 2, 3), max_tokens=11), loop, print)
    seen = [threading.Event(), threading.Event()]
    words = "abcdefghij"

    def engine() -> None:
        handle.push(TextDelta("", 1))  # the first token completes no character yet
        assert seen[0].wait(10)
        handle.push(TextDelta(words[0], 2))
        assert seen[1].wait(10)
        for tokens in range(3, 12):
            handle.push(TextDelta(words[tokens - 2], tokens))
        handle.push(finished(words, 11))

    thread = threading.Thread(target=engine)
    events: list[TextDelta | Finished] = []
    with wakes_counted(loop) as wakes:
        try:
            thread.start()
            async with asyncio.timeout(10):
                async for event in handle:
                    events.append(event)
                    seen[min(len(events), 2) - 1].set()
        finally:
            thread.join()
    assert events == [
        TextDelta("", 1),
        TextDelta("a", 2),
        TextDelta("bcdefghij", 11),
        finished(words, 11),
    ]
    assert wakes == [3]


async def test_words_sent_after_the_interval_wake_the_loop_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "STREAM_INTERVAL_S", 0.0)
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    send = delivery_for(loop).send
    await asyncio.to_thread(lambda: send(got.set_result, "words", urgent=False))
    assert await asyncio.wait_for(got, 10) == "words"
