"""
Runs stored updates through the handler: strict order per lane, bounded concurrency across lanes.

A lane is a chat and a kind ("123:message", "123:callback"): the messages of a chat are handled one
after the other, while its button presses (⏹ Cancel, ✅ Approve) have their own lane and never wait
behind a running agent turn. A pool of at most ``max_concurrency`` workers bounds how many lanes run at once.

An item is marked done only after the handler returned (the mark is queued to the inbox's writer without
waiting for its fsync, so a lane is never paced by the disk; a crash within that commit interval means the
update runs again after restart: at least once, never lost). A failing update is retried with backoff
(its lane waits, so order holds) and after ``max_attempts`` is recorded as failed with its error;
its lane then moves on. Errors that retrying cannot fix (``DomainError``, e.g. a malformed update) are
recorded as failed at once. On start, everything still pending in the inbox is resumed in ``update_id``
order. :meth:`UpdateDispatcher.stop` takes no new work, lets in-flight items finish within a grace
period and leaves the rest pending for the next start; an ``on_stop`` hook runs first (the app uses it to end
turns that wait for an answer nobody can give any more).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
import anyio.abc
import attrs

from voicecoder.domain.errors import DomainError
from voicecoder.domain.inbox import InboxItem
from voicecoder.domain.ports import Inbox

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]
"""Processes one raw Telegram update; raising means "try again later"."""

DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 2.0, 8.0, 30.0)


class UpdateObserver(Protocol):
    """
    Told what happens to each update, by the ingress and the dispatcher (the metrics layer passes one in).

    Calls are synchronous and must not raise: they run on the ack path and inside the dispatcher's lanes.
    """

    def outcome(self, name: str, /) -> None:
        """Once per ingress request: "acked", "duplicate", "ignored" or "rejected"."""

    def attempted(self, seconds: float, /) -> None:
        """A handler attempt took *seconds* (taken off the inbox to finished)."""

    def processed(self, lane: str, seconds: float, /) -> None:
        """An update of *lane* is done, *seconds* after it was received."""

    def retried(self, item: InboxItem, error: str, /) -> None:
        """An attempt failed with *error* and will be retried."""

    def failed(self, item: InboxItem, error: str, /) -> None:
        """The update was given up on with *error*."""


@attrs.define
class DispatchStats:
    """Counters the health checks read; *observer* (e.g. the Prometheus metrics) is told each event as well."""

    submitted: int = 0
    processed: int = 0
    failed: int = 0
    retries: int = 0
    in_flight: int = 0
    observer: UpdateObserver | None = None


class UpdateDispatcher:
    """
    Per-lane ordered, concurrency-bounded processing of inbox items.

    Run it with ``await task_group.start(dispatcher.run)``; hand it freshly stored items with :meth:`submit`.
    """

    def __init__(
        self,
        inbox: Inbox,
        handler: Handler,
        *,
        max_concurrency: int = 16,
        max_attempts: int = 5,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        grace_s: float = 10.0,
        stats: DispatchStats | None = None,
        permanent_errors: tuple[type[Exception], ...] = (DomainError,),
        on_stop: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not retry_delays:
            raise ValueError("retry_delays must not be empty")
        self._inbox = inbox
        self._handler = handler
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._max_workers = max_concurrency
        self._workers = 0
        self._ready: collections.deque[str] = collections.deque()  # lanes waiting for a worker, first come first
        # Idle workers, each waiting on its own future for a lane. A bare future, not an anyio.Event (which wraps an
        # asyncio.Event that makes a future per wait): waking a worker is the dispatcher's one hop per update, and
        # the event cost about 5 µs more per wake-up (adapters are asyncio-only, see tests/conftest.py).
        self._sleeping: collections.deque[asyncio.Future[None]] = collections.deque()
        self._attempts: dict[int, int] = {}  # attempts so far of items waiting for a retry
        self._max_attempts = max_attempts
        self._retry_delays = tuple(retry_delays)
        self._grace_s = grace_s
        self._permanent_errors = permanent_errors
        self._on_stop = on_stop
        self.stats = stats if stats is not None else DispatchStats()
        self._lanes: dict[str, collections.deque[InboxItem]] = {}
        self._known: set[int] = set()
        self._tg: anyio.abc.TaskGroup | None = None
        self._stopping = False
        self._stop_requested = anyio.Event()
        self._finished = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._quiet = anyio.Event()  # set when stopping and nothing is in flight any more

    # --- state -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between start and stop: new items are taken."""
        return self._tg is not None and not self._stopping

    @property
    def backlog(self) -> int:
        """Items held in memory and not yet done (queued or in flight)."""
        return len(self._known)

    @property
    def lanes(self) -> int:
        """Lanes with work right now."""
        return len(self._lanes)

    async def join(self) -> None:
        """Wait until every submitted item is done or failed (for tests and benchmarks)."""
        await self._idle.wait()

    # --- lifecycle -------------------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """
        Resume pending items, report started, and process until :meth:`stop`.

        Raises:
            StateStoreError: The inbox failed; the failure is not hidden.
        """
        if self._tg is not None or self._finished.is_set():
            raise RuntimeError("an UpdateDispatcher runs once")
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                resumed = await self._inbox.pending()
                for item in resumed:
                    self.submit(item)
                if resumed:
                    log.info("dispatcher: resumed %d pending update(s)", len(resumed))
                task_status.started()
                await self._stop_requested.wait()
                self._stopping = True
                if self._on_stop is not None:
                    # E.g. answer what can never be answered now (tool questions), so in-flight turns can end.
                    try:
                        await self._on_stop()
                    except Exception:
                        log.exception("dispatcher: the on_stop hook failed")
                if self.stats.in_flight > 0:
                    with anyio.move_on_after(self._grace_s):
                        await self._quiet.wait()
                left = self.stats.in_flight
                if left:
                    log.warning("dispatcher: %d update(s) still running after the grace period; left pending", left)
                tg.cancel_scope.cancel()
        finally:
            self._stopping = True
            self._finished.set()

    async def stop(self) -> None:
        """Take no new work, let in-flight items finish (up to the grace period), then return."""
        self._stopping = True
        self._stop_requested.set()
        if self._tg is not None:
            await self._finished.wait()

    # --- intake ----------------------------------------------------------------------------

    def submit(self, item: InboxItem) -> None:
        """
        Queue a stored item on its lane; synchronous and non-blocking. Ignored when stopping or already queued.

        The item is durable already, so an ignored item is picked up by the next start.
        """
        if self._tg is None or self._stopping or item.update_id in self._known:
            return
        self._known.add(item.update_id)
        self.stats.submitted += 1
        self._idle = self._idle if not self._idle.is_set() else anyio.Event()
        queue = self._lanes.get(item.lane)
        if queue is not None:
            queue.append(item)  # the lane is running, ready or waiting for a retry: its turn comes
            return
        self._lanes[item.lane] = collections.deque((item,))
        self._make_ready(item.lane)

    # --- processing ------------------------------------------------------------------------

    def _make_ready(self, lane: str) -> None:
        """Put *lane* in line for a worker: wake an idle one, or start one while fewer than the limit exist."""
        self._ready.append(lane)
        if self._wake_one():
            return
        if self._workers < self._max_workers and self._tg is not None:
            self._workers += 1
            self._tg.start_soon(self._worker, name="dispatcher-worker")

    def _wake_one(self) -> bool:
        """Wake the longest-idle worker; False when none sleeps (one cancelled meanwhile is passed over)."""
        while self._sleeping:
            turn = self._sleeping.popleft()
            if not turn.done():
                turn.set_result(None)
                return True
        return False

    async def _worker(self) -> None:
        """
        Run lanes one item at a time until stopping; at most *max_concurrency* workers exist, and they stay.

        A worker lives on between updates: starting a task per update (one per lane that became busy) cost more
        CPU than handing an idle worker the lane. After each item a lane with more work goes to the back of the
        line, so lanes share the workers the way they shared a capacity limiter before.
        """
        try:
            while True:
                while not self._ready:
                    if self._stopping:
                        return
                    turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._sleeping.append(turn)
                    try:
                        await turn
                    except BaseException:
                        if turn.cancelled():  # cancelled while waiting: no lane was meant for us
                            with contextlib.suppress(ValueError):  # unless a waker passed it over already
                                self._sleeping.remove(turn)
                        else:  # a lane was meant for us: pass the wake-up on
                            self._wake_one()
                        raise
                if self._stopping:
                    return
                await self._run_head(self._ready.popleft())
        finally:
            self._workers -= 1

    async def _run_head(self, lane: str) -> None:
        queue = self._lanes[lane]
        item = queue[0]
        if not await self._process(item):
            return  # a retry is scheduled; the lane comes back after its delay
        queue.popleft()
        self._known.discard(item.update_id)
        if queue:
            self._ready.append(lane)  # this worker looks at the line next: no wake-up needed
            return
        del self._lanes[lane]
        if not self._lanes and not self._stopping:
            self._idle.set()

    async def _ready_after(self, lane: str, delay: float) -> None:
        await anyio.sleep(delay)
        if not self._stopping:
            self._make_ready(lane)

    def _delay(self, attempt: int) -> float:
        return self._retry_delays[min(attempt, len(self._retry_delays)) - 1]

    async def _process(self, item: InboxItem) -> bool:
        """One attempt at *item*: True once it is done or failed, False if it waits for a retry (lane held)."""
        try:
            update = item.update()
        except ValueError as exc:
            await self._give_up(item, f"stored body is not JSON: {exc}")
            return True
        attempt = self._attempts.pop(item.update_id, item.attempts) + 1
        self._inbox.claim_nowait(item.update_id)
        self.stats.in_flight += 1
        started = time.perf_counter()
        try:
            error, permanent = await self._attempt(update)
            if error is None:
                self._inbox.mark_done_nowait(item.update_id)
            if self.stats.observer is not None:
                self.stats.observer.attempted(time.perf_counter() - started)
        finally:
            self.stats.in_flight -= 1
            if self._stopping and self.stats.in_flight == 0:
                self._quiet.set()
        if error is None:
            self.stats.processed += 1
            if self.stats.observer is not None:
                self.stats.observer.processed(item.lane, max(0.0, time.time() - item.received_at))
            return True
        if permanent or attempt >= self._max_attempts:
            await self._give_up(item, error)
            return True
        self._attempts[item.update_id] = attempt
        self.stats.retries += 1
        log.warning(
            "dispatcher: update %d (lane %s) failed on attempt %d/%d: %s",
            item.update_id,
            item.lane,
            attempt,
            self._max_attempts,
            error,
        )
        await self._inbox.record_error(item.update_id, error)
        if self.stats.observer is not None:
            self.stats.observer.retried(item, error)
        if self._tg is not None:
            self._tg.start_soon(self._ready_after, item.lane, self._delay(attempt), name="dispatcher-retry")
        return False

    async def _attempt(self, update: dict[str, Any]) -> tuple[str | None, bool]:
        """(error text or None, whether retrying is pointless)."""
        try:
            await self._handler(update)
        except Exception as exc:
            # Explicit policy (ADR 0008): a failing update is retried, then recorded as failed; it never
            # kills its lane. Cancellation is not an Exception and propagates.
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return error, isinstance(exc, self._permanent_errors)
        return None, False

    async def _give_up(self, item: InboxItem, error: str) -> None:
        log.error("dispatcher: update %d (lane %s) failed for good: %s", item.update_id, item.lane, error)
        with anyio.CancelScope(shield=True):
            await self._inbox.mark_failed(item.update_id, error)
        self.stats.failed += 1
        if self.stats.observer is not None:
            self.stats.observer.failed(item, error)


def exponential_delays(first: float, factor: float = 4.0, count: int = 4) -> tuple[float, ...]:
    """``count`` retry delays growing by *factor* from *first*, e.g. (0.5, 2, 8, 32)."""
    return tuple(first * math.pow(factor, i) for i in range(count))


__all__ = [
    "DEFAULT_RETRY_DELAYS",
    "DispatchStats",
    "Handler",
    "UpdateDispatcher",
    "UpdateObserver",
    "exponential_delays",
]
