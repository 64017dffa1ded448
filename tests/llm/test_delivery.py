"""The engine thread's events reach the loop in order, and a busy loop takes them all
at its next wake instead of one wake per token (engines/llm/delivery.py)."""

from __future__ import annotations

import asyncio
import threading

from heatcompute_node.engines.llm.delivery import delivery_for


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

    drains = 0
    drain = inbox._drain

    def counted() -> None:
        nonlocal drains
        drains += 1
        drain()

    loop.remove_reader(inbox._read_fd)
    loop.add_reader(inbox._read_fd, counted)
    thread = threading.Thread(target=engine)
    thread.start()
    # The loop is busy (this wait blocks it) while the engine sends every event.
    assert all_sent.wait(10)
    thread.join()
    await asyncio.wait_for(done, 10)
    assert received == list(range(100))
    assert drains == 1
    # The next event wakes the loop again.
    again = loop.create_future()
    threading.Thread(target=inbox.send, args=(again.set_result, "next")).start()
    assert await asyncio.wait_for(again, 10) == "next"
    assert drains == 2


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
