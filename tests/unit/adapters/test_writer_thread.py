"""The writer thread both inboxes share: batches in order, setup failures, stop after the queue."""

from __future__ import annotations

import asyncio
import threading

import anyio
import attrs
import pytest

from voicecoder.adapters.writer_thread import WriterThread, deliver_to_loops

pytestmark = pytest.mark.anyio


@attrs.define
class Req:
    value: int
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[int] | None = None


async def test_lists_waiting_together_run_as_one_batch_in_order_and_answer_on_the_loop() -> None:
    gate, entered = threading.Event(), threading.Event()
    batches: list[list[int]] = []

    def run_batch(batch: list[Req]) -> None:
        if batch[0].value == 0:
            entered.set()
            gate.wait(60)  # holds the thread until everything else is queued
        batches.append([r.value for r in batch])

        def deliver(reqs: list[Req]) -> None:
            for r in reqs:
                assert r.future is not None
                r.future.set_result(r.value * 10)

        deliver_to_loops(batch, deliver)

    writer: WriterThread[Req] = WriterThread("test-writer", run_batch, max_batch=100)
    await writer.start()
    loop = asyncio.get_running_loop()
    waiting = [Req(v, loop, loop.create_future()) for v in range(6)]
    writer.submit(waiting[:1])
    assert await anyio.to_thread.run_sync(entered.wait, 60)
    writer.submit(waiting[1:3])
    writer.submit([Req(99)])  # nobody waits for this one
    writer.submit(waiting[3:])
    gate.set()
    with anyio.fail_after(30):
        results = [await r.future for r in waiting if r.future is not None]
    await writer.stop()

    assert results == [0, 10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 99, 3, 4, 5]]  # the three lists queued behind the first ran together, in order
    assert not writer.running


async def test_a_failing_setup_is_raised_by_start_and_ends_the_thread() -> None:
    def setup() -> None:
        raise OSError("disk on fire")

    writer: WriterThread[Req] = WriterThread("test-writer", lambda _batch: None, max_batch=10, setup=setup)
    with pytest.raises(OSError, match="disk on fire"):
        await writer.start()
    assert not writer.running
    assert not any(t.name == "test-writer" for t in threading.enumerate())


async def test_stop_runs_what_is_queued_then_teardown_on_the_thread() -> None:
    ran: list[int] = []
    torn_down: list[str] = []
    gate = threading.Event()

    def run_batch(batch: list[Req]) -> None:
        gate.wait(60)
        ran.extend(r.value for r in batch)

    writer: WriterThread[Req] = WriterThread(
        "test-writer",
        run_batch,
        max_batch=2,
        teardown=lambda: torn_down.append(threading.current_thread().name),
    )
    await writer.start()
    for value in range(5):
        writer.submit([Req(value)])
    stopping = asyncio.ensure_future(writer.stop())
    gate.set()
    with anyio.fail_after(30):
        await stopping

    assert ran == [0, 1, 2, 3, 4]
    assert torn_down == ["test-writer"]
