"""
`voicecoder serve --role worker`: own the workspace whose tree is on this host, claim its updates, run them.

One ownership period at a time: take the lease (a new epoch), stop any agent a previous owner left in the tree,
then claim the workspace's updates in lane order and run them through a fresh `UpdateDispatcher` whose inbox
writes are fenced by that epoch (`LeasedInbox`). Beside it a renewer extends the lease every ttl/3, and a watchdog
ends the period when the lease's local deadline passes without a renewal (a pause, a partition, a database that
does not answer) or when any write finds the lease gone: the worker then **fences itself** — no claim, no send
(`send_gate` refuses), its agents' process groups killed, its lanes dropped — and goes back to waiting for a
lease. A graceful stop gives the claimed items back and releases the lease, so another worker takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

import anyio
import anyio.abc
import attrs

from voicecoder.adapters.postgres.inbox import PostgresInbox
from voicecoder.adapters.postgres.leases import DEFAULT_WORKSPACE, Lease, LeaseStore, OwnershipLostError
from voicecoder.adapters.postgres.tree_fence import TreeFence
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.intake import DEFAULT_RETENTION_S, housekeeping
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import InboxCounts, InboxItem, NewUpdate
from voicecoder.domain.ports import Inbox

__all__ = ["ClusterWorker", "LeasedInbox"]

log = logging.getLogger(__name__)

_Write = Callable[[], Any]


class LeasedInbox:
    """
    The `Inbox` the dispatcher of one ownership period sees: its writes are fenced by *lease*, in call order.

    Claims and marks go to one writer thread (the fire-and-forget ones too, so they keep their order); a write
    that finds the lease gone calls *on_lost* and changes nothing. Reads go to the shared *reader*. ``pending`` is
    empty: a worker never resumes by itself, it claims.
    """

    def __init__(self, store: LeaseStore, reader: Inbox, lease: Lease, on_lost: Callable[[], object]) -> None:
        self._store = store
        self._reader = reader
        self._lease = lease
        self._on_lost = on_lost
        self._writes: queue.SimpleQueue[tuple[_Write, Future[Any] | None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def open(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="leased-inbox", daemon=True)
            self._thread.start()

    async def aclose(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._writes.put(None)
            await anyio.to_thread.run_sync(thread.join)

    def _serve(self) -> None:
        while (job := self._writes.get()) is not None:
            write, future = job
            try:
                result = write()
            except OwnershipLostError as exc:
                log.warning("worker: %s", exc)
                self._on_lost()
                if future is not None:
                    future.set_exception(exc)
            except StateStoreError as exc:
                log.error("worker: an inbox write failed: %s", exc)  # noqa: TRY400 - the message says it all
                if future is not None:
                    future.set_exception(exc)
            else:
                if future is not None:
                    future.set_result(result)

    def _nowait(self, write: _Write) -> None:
        if self._thread is None:
            raise StateStoreError("The update inbox is not open.")
        self._writes.put((write, None))

    async def _wait(self, write: _Write) -> Any:
        if self._thread is None:
            raise StateStoreError("The update inbox is not open.")
        future: Future[Any] = Future()
        self._writes.put((write, future))
        return await anyio.to_thread.run_sync(future.result)

    async def put(
        self, update_id: int, lane: str, body: bytes, *, on_inserted: Callable[[bool], None] | None = None
    ) -> bool:
        return await self._reader.put(update_id, lane, body, on_inserted=on_inserted)

    async def put_many(self, updates: Iterable[NewUpdate], *, offset: int | None = None) -> list[bool]:
        return await self._reader.put_many(updates, offset=offset)

    def claim_nowait(self, update_id: int) -> None:
        self._nowait(lambda: self._store.attempt(self._lease, update_id))

    def mark_done_nowait(self, update_id: int) -> None:
        self._nowait(lambda: self._store.complete(self._lease, update_id))

    async def mark_failed(self, update_id: int, error: str) -> None:
        await self._wait(lambda: self._store.fail(self._lease, update_id, error))

    async def record_error(self, update_id: int, error: str) -> None:
        await self._wait(lambda: self._store.record_error(self._lease, update_id, error))

    async def pending(self) -> list[InboxItem]:
        return []

    async def get(self, update_id: int) -> InboxItem | None:
        return await self._reader.get(update_id)

    async def failed(self) -> list[InboxItem]:
        return await self._reader.failed()

    async def counts(self) -> InboxCounts:
        return await self._reader.counts()

    async def depth(self) -> int:
        return await self._reader.depth()

    async def offset(self) -> int | None:
        return await self._reader.offset()

    async def check_writable(self) -> None:
        await self._reader.check_writable()

    async def purge_finished(self, *, older_than_s: float) -> int:
        return await self._reader.purge_finished(older_than_s=older_than_s)


@attrs.define
class ClusterWorker:
    """
    The worker loop of one process (see the module docstring); *dispatcher_for* builds a dispatcher on an inbox.

    *stop_agents* kills the agents of this process (their process groups); the tree sweep then catches anything
    else working in the tree.
    """

    store: LeaseStore
    reader: PostgresInbox
    fence: TreeFence
    dispatcher_for: Callable[[Inbox], UpdateDispatcher]
    workspace: str = DEFAULT_WORKSPACE
    claim_batch: int = 16
    poll_s: float = 0.1
    retention_s: float | None = DEFAULT_RETENTION_S
    lease: Lease | None = attrs.field(default=None, init=False)
    fenced: bool = attrs.field(default=True, init=False)
    periods: int = attrs.field(default=0, init=False)

    # --- the send gate (wired into the Bot API client) -------------------------------------------

    async def send_gate(self) -> None:
        """
        Before every Telegram send: refuse unless this worker holds a live lease; wait for the bot-wide budget.

        Raises:
            OwnershipLostError: The lease is gone or its local deadline passed (the worker is fencing itself).
        """
        lease = self.lease
        if lease is None or self.fenced or not lease.live():
            raise OwnershipLostError("This worker no longer owns the workspace: the message is not sent.")
        wait = await anyio.to_thread.run_sync(self.store.take_send, lease)
        if wait > 0:
            await anyio.sleep(wait)
        if not lease.live():
            raise OwnershipLostError("This worker's lease expired while waiting to send: the message is not sent.")

    # --- the loop -----------------------------------------------------------------------------

    async def run(
        self, *, stop: anyio.Event, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """
        Own, run, fence, repeat until *stop*; a graceful stop releases the lease.

        Raises:
            StateStoreError: The database cannot be reached at start.
        """
        await anyio.to_thread.run_sync(self.store.open)
        try:
            await anyio.to_thread.run_sync(self.store.register, self.workspace, str(self.fence.tree))
            log.info("worker %s: ready on host %s, waiting for a lease", self.store.owner, self.store.host)
            task_status.started()
            async with anyio.create_task_group() as tg:
                if self.retention_s is not None:
                    tg.start_soon(housekeeping, self.reader, self.retention_s, 3600.0)
                while not stop.is_set():
                    lease = await self._acquire(stop)
                    if lease is None:
                        break
                    await self._own(lease, stop)
                tg.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(self.store.close)

    async def _acquire(self, stop: anyio.Event) -> Lease | None:
        while not stop.is_set():
            try:
                lease = await anyio.to_thread.run_sync(self.store.acquire, self.workspace)
            except StateStoreError as exc:
                log.warning("worker: cannot reach the database to take a lease: %s", exc)
                lease = None
            if lease is not None and stop.is_set():  # stopped while asking: hand it straight back
                await self._give_back(lease)
                return None
            if lease is not None:
                # The previous owner may have died (or be paused) with its agent still editing the tree: nothing
                # here touches the tree until that agent is gone.
                await anyio.to_thread.run_sync(self.fence.stop_agents)
                log.info("worker %s: owns workspace %s at epoch %d", lease.owner, lease.workspace, lease.epoch)
                return lease
            with anyio.move_on_after(self.store.ttl_s / 4):
                await stop.wait()
        return None

    async def _own(self, lease: Lease, stop: anyio.Event) -> None:
        self.lease, self.fenced = lease, False
        self.periods += 1
        lost = anyio.Event()
        loop = asyncio.get_running_loop()
        inbox = LeasedInbox(self.store, self.reader, lease, on_lost=lambda: loop.call_soon_threadsafe(lost.set))
        await inbox.open()
        dispatcher = self.dispatcher_for(inbox)
        graceful = False
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(dispatcher.run)
                tg.start_soon(self._renew, lost)
                tg.start_soon(self._claim, dispatcher, lost)
                async with anyio.create_task_group() as wait:

                    async def until(event: anyio.Event) -> None:
                        await event.wait()
                        wait.cancel_scope.cancel()

                    wait.start_soon(until, stop)
                    wait.start_soon(until, lost)
                graceful = stop.is_set() and not lost.is_set() and self._live()
                if graceful:
                    await dispatcher.stop()  # in-flight turns finish within the grace period
                else:
                    self.fenced = True  # before anything else: no send, no claim from here on
                tg.cancel_scope.cancel()
        finally:
            self.fenced = True
            with anyio.CancelScope(shield=True):
                if not graceful:
                    log.warning("worker: lease on %s (epoch %d) lost: fencing myself", lease.workspace, lease.epoch)
                await anyio.to_thread.run_sync(self.fence.stop_agents)
                await inbox.aclose()
                if graceful:
                    await self._give_back(lease)

    def _still_owner(self) -> bool:
        return not self.fenced and self._live()

    def _live(self) -> bool:
        return self.lease is not None and self.lease.live()

    async def _give_back(self, lease: Lease) -> None:
        try:
            returned = await anyio.to_thread.run_sync(self.store.unclaim, self.lease or lease)
            await anyio.to_thread.run_sync(self.store.release, self.lease or lease)
            log.info("worker: released workspace %s (%d update(s) given back)", lease.workspace, returned)
        except StateStoreError as exc:
            log.warning("worker: could not release the lease (it lapses by itself): %s", exc)

    async def _renew(self, lost: anyio.Event) -> None:
        """Extend the lease every ttl/3; set *lost* when it is refused or its local deadline passes."""
        while True:
            lease = self.lease
            if lease is None or not lease.live():
                lost.set()
                return
            with anyio.move_on_after(max(0.0, lease.deadline - time.monotonic())) as watchdog:
                try:
                    self.lease = await anyio.to_thread.run_sync(self.store.renew, lease, abandon_on_cancel=True)
                except OwnershipLostError:
                    lost.set()
                    return
                except StateStoreError as exc:
                    log.warning("worker: renewing the lease failed (retrying until its deadline): %s", exc)
            if watchdog.cancelled_caught:
                lost.set()
                return
            await anyio.sleep(self.store.ttl_s / 3 if self.lease is not lease else 0.2)

    async def _claim(self, dispatcher: UpdateDispatcher, lost: anyio.Event) -> None:
        while self._still_owner():
            try:
                items = await anyio.to_thread.run_sync(self.store.claim, self.claim_batch, self.workspace)
            except StateStoreError as exc:
                log.warning("worker: claiming failed: %s", exc)
                items = []
            if not self._still_owner():
                lost.set()
                return  # claimed rows stay running under this epoch; the next owner gives them back
            for item in items:
                dispatcher.submit(item)
            if not items:
                await anyio.sleep(self.poll_s)
