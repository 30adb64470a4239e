"""
One thread that owns a database connection and runs batches of requests for event loops (both inboxes use it).

Requests are handed over as lists, in order. The thread takes everything waiting (up to *max_batch* requests,
whole lists) and gives it to ONE ``run_batch`` call, which runs it in one transaction and commits once, so many
concurrent requests share one commit. ``run_batch`` answers with :func:`deliver_to_loops`: one hop per waiting
event loop and batch, whatever the number of requests.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import anyio

log = logging.getLogger(__name__)


class LoopRequest(Protocol):
    """A request for the thread: *loop* is where its caller waits (None: nobody waits)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None: ...


R = TypeVar("R", bound=LoopRequest)


def deliver_to_loops(requests: list[R], deliver: Callable[[list[R]], None]) -> None:
    """Run *deliver* on each waiting event loop with its requests, in queue order: one hop per loop and batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[R]] = {}
    for req in requests:
        if req.loop is not None:
            by_loop.setdefault(req.loop, []).append(req)
    for loop, reqs in by_loop.items():
        try:
            loop.call_soon_threadsafe(deliver, reqs)
        except RuntimeError:  # the loop is closed; nobody is waiting any more
            log.debug("%s: event loop closed before results were delivered", threading.current_thread().name)


class WriterThread(Generic[R]):
    """
    A daemon thread running *run_batch* on what is submitted, until stopped; *setup*/*teardown* run on it.

    ``start`` then ``submit`` any number of times, then ``stop``: everything submitted before ``stop`` still runs.
    """

    def __init__(
        self,
        name: str,
        run_batch: Callable[[list[R]], None],
        *,
        max_batch: int,
        setup: Callable[[], None] | None = None,
        teardown: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._setup = setup
        self._teardown = teardown
        self._queue: queue.SimpleQueue[list[R] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    async def start(self) -> None:
        """
        Start the thread and wait until *setup* ran on it.

        Raises:
            Exception: Whatever *setup* raised; the thread has ended then.
        """
        if self._thread is not None:
            return
        started = threading.Event()
        failure: list[BaseException] = []

        def boot() -> None:
            if self._setup is not None:
                try:
                    self._setup()
                except BaseException as exc:
                    failure.append(exc)
                    started.set()
                    return
            started.set()
            self._serve()

        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=boot, name=self.name, daemon=True)
        self._thread.start()
        await anyio.to_thread.run_sync(started.wait)
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def submit(self, requests: list[R]) -> None:
        """Queue *requests* to run in this order, after everything submitted before."""
        self._queue.put(requests)

    async def stop(self) -> None:
        """Run what is queued, end the thread (with *teardown*) and wait for it."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        await anyio.to_thread.run_sync(thread.join)

    def _serve(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    break
                batch = list(first)
                stop = self._take_waiting(batch)
                self._run_batch(batch)
                if stop:
                    break
        finally:
            if self._teardown is not None:
                self._teardown()

    def _take_waiting(self, batch: list[R]) -> bool:
        """Add what is queued already to *batch*; True if the stop marker came."""
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                return True
            batch += nxt
        return False


__all__ = ["LoopRequest", "WriterThread", "deliver_to_loops"]
