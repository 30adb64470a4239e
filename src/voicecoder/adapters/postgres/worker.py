"""
`voicecoder serve --role worker`: own the workspaces whose trees are on this host, claim their updates, run them.

Without PROJECTS a host has one workspace (``default``); with PROJECTS every (user, project) workspace placed on
this host, plus the lobby that any worker may hold (ADR 0028). Each workspace has ownership periods of its own,
side by side: take the lease (a new epoch), stop any agent a previous owner left in the tree and any process still
holding the tree's lock (`TreeFence.take`), fence the workspace's SQLite state at the new epoch (ADR 0030), then
claim the workspace's updates in lane order and run them through a fresh `UpdateDispatcher` whose inbox writes are
fenced by that epoch (`LeasedInbox`). Beside it a renewer extends the lease every ttl/3, and a watchdog
ends the period when the lease's local deadline passes without a renewal (a pause, a partition, a database that
does not answer) or when any write finds the lease gone: the worker then **fences itself** for that workspace —
no claim, no send for it (`send_gate` refuses), no state write (its file's fence refuses), the agents in its tree
killed, its lanes dropped, the tree's lock let go — and may lease it again later; its other workspaces carry on.
A graceful stop gives the claimed items back and releases the leases, so another worker takes over at once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs

from voicecoder.adapters.postgres.inbox import PostgresInbox
from voicecoder.adapters.postgres.leases import (
    DEFAULT_WORKSPACE,
    LOBBY,
    Lease,
    LeaseStore,
    OwnershipLostError,
)
from voicecoder.adapters.postgres.project_choices import IN_HAND, InHand
from voicecoder.adapters.postgres.tree_fence import TreeFence
from voicecoder.adapters.sqlite.state_store import SqliteStateStore
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.intake import DEFAULT_RETENTION_S, housekeeping
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import InboxCounts, InboxItem, NewUpdate
from voicecoder.domain.ports import Inbox

__all__ = ["ClusterWorker", "LeasedInbox", "ProjectPlacement", "StateFence"]

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


@attrs.frozen
class ProjectPlacement:
    """
    What a worker with PROJECTS needs to place and fence workspaces.

    The projects as (name, shared, host or None), who may have a workspace, where the tree of a placed
    workspace goes on this host (*path_of*, also what the tree fence sweeps) and its SQLite state (*state_of*).
    """

    projects: tuple[tuple[str, bool, str | None], ...]
    allowed: tuple[int, ...]
    path_of: Callable[[str, int | None], Path]
    state_of: Callable[[str, int | None], Path]


@attrs.frozen
class StateFence:
    """
    The `OwnerFence` of one workspace's SQLite state: writes are made for the lease the running task works for.

    A refused write ends this worker's ownership period of the workspace, as a refused PostgreSQL write does.
    """

    worker: ClusterWorker
    workspace: str

    def held(self) -> tuple[str, int] | None:
        hand = IN_HAND.get()
        if hand is None or hand.lease.workspace != self.workspace:
            return None
        return hand.lease.workspace, hand.lease.epoch

    def refused(self) -> None:
        log.warning("worker: a state write for workspace %s was refused: its lease is gone", self.workspace)
        lost = self.worker.lost_events.get(self.workspace)
        if lost is not None:
            lost.set()


@attrs.define
class ClusterWorker:
    """
    The worker loop of one process (see the module docstring); *dispatcher_for* builds a dispatcher on an inbox.

    *fence* sweeps the one workspace's tree without PROJECTS, whose state is the SQLite file *state_path*; with
    *placement* each workspace's tree is swept and its state file fenced. None: the state is not fenced (tests).
    """

    store: LeaseStore
    reader: PostgresInbox
    fence: TreeFence
    dispatcher_for: Callable[[Inbox], UpdateDispatcher]
    workspace: str = DEFAULT_WORKSPACE
    placement: ProjectPlacement | None = None
    state_path: Path | None = None
    claim_batch: int = 16
    poll_s: float = 0.1
    retention_s: float | None = DEFAULT_RETENTION_S
    leases: dict[str, Lease] = attrs.field(factory=dict, init=False)
    _fenced: set[str] = attrs.field(factory=set, init=False)
    lost_events: dict[str, anyio.Event] = attrs.field(factory=dict, init=False)
    _trees: dict[str, TreeFence] = attrs.field(factory=dict, init=False)
    periods: int = attrs.field(default=0, init=False)

    # --- the send gate (wired into the Bot API client) -------------------------------------------

    async def send_gate(self) -> None:
        """
        Before every Telegram send: refuse unless the workspace this send is made for is still this worker's.

        The workspace is the one whose update the sending task runs (`IN_HAND`); then wait for the bot-wide budget.

        Raises:
            OwnershipLostError: The lease is gone or its local deadline passed (the worker is fencing itself).
        """
        hand = IN_HAND.get()
        lease = self._current(hand.lease if hand is not None else None)
        if lease is None:
            raise OwnershipLostError("This worker no longer owns the workspace: the message is not sent.")
        wait = await anyio.to_thread.run_sync(self.store.take_send, lease)
        if wait > 0:
            await anyio.sleep(wait)
        if not lease.live():
            raise OwnershipLostError("This worker's lease expired while waiting to send: the message is not sent.")

    def _current(self, held: Lease | None) -> Lease | None:
        """The live lease of *held*'s ownership period, if it is still this worker's; else None."""
        if held is None:
            return None
        lease = self.leases.get(held.workspace)
        if lease is None or lease.epoch != held.epoch or held.workspace in self._fenced or not lease.live():
            return None
        return lease

    def state_fence(self, workspace: str) -> StateFence:
        """The fence of *workspace*'s SQLite state store (give it to the store that workspace's app writes to)."""
        return StateFence(self, workspace)

    @property
    def lease(self) -> Lease | None:
        """The lease of the one workspace (without PROJECTS), or None."""
        return self.leases.get(self.workspace)

    # --- the loop -----------------------------------------------------------------------------

    async def run(
        self, *, stop: anyio.Event, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """
        Own, run, fence, repeat until *stop*, for every workspace of this host; a graceful stop releases the leases.

        Raises:
            StateStoreError: The database cannot be reached at start.
        """
        await anyio.to_thread.run_sync(self.store.open)
        try:
            if self.placement is None:
                await anyio.to_thread.run_sync(self.store.register, self.workspace, str(self.fence.tree))
            else:
                await anyio.to_thread.run_sync(self.store.register_projects, self.placement.projects)
            log.info("worker %s: ready on host %s, waiting for a lease", self.store.owner, self.store.host)
            task_status.started()
            async with anyio.create_task_group() as tg:
                if self.retention_s is not None:
                    tg.start_soon(housekeeping, self.reader, self.retention_s, 3600.0)
                async with anyio.create_task_group() as periods:
                    while not stop.is_set():
                        for lease in await self._acquire(stop):
                            periods.start_soon(self._own, lease, stop)
                        # Without PROJECTS a free workspace only appears when its owner dies: look now and then.
                        # With them a new workspace appears with a user's first prompt in a project: look soon.
                        with anyio.move_on_after(self.store.ttl_s / 4 if self.placement is None else 0.5):
                            await stop.wait()
                tg.cancel_scope.cancel()
        finally:
            await anyio.to_thread.run_sync(self.store.close)

    async def _candidates(self) -> list[str]:
        if self.placement is None:
            return [] if self.workspace in self.leases else [self.workspace]
        placement = self.placement
        for needed in await anyio.to_thread.run_sync(self.store.unplaced, placement.allowed):
            path = placement.path_of(needed.project, needed.user)
            if await anyio.to_thread.run_sync(self.store.place, needed, str(path)):
                log.info("worker: placed workspace %s on host %s (%s)", needed.workspace, self.store.host, path)
        free = await anyio.to_thread.run_sync(self.store.free_workspaces)
        return [ws for ws in free if ws not in self.leases]

    async def _acquire(self, stop: anyio.Event) -> list[Lease]:
        """The leases taken now: every free workspace this worker may own; nothing touches a tree before its sweep."""
        taken: list[Lease] = []
        try:
            for workspace in await self._candidates():
                lease = await anyio.to_thread.run_sync(self.store.acquire, workspace)
                if lease is None:
                    continue
                if stop.is_set():  # stopped while asking: hand it straight back
                    await self._give_back(lease)
                    continue
                # The previous owner may have died (or be paused) with its agent still editing the tree: nothing
                # here touches the tree until that agent is gone, nor the state before it is fenced at this epoch.
                fence = await self._fence_of(lease.workspace)
                if fence is not None and not await self._take_tree(fence):
                    await self._give_back(lease)
                    continue
                if not await self._take_over_state(lease):
                    if fence is not None:
                        fence.release()
                    await self._give_back(lease)
                    continue
                log.info("worker %s: owns workspace %s at epoch %d", lease.owner, lease.workspace, lease.epoch)
                self.leases[lease.workspace] = lease
                self._fenced.discard(lease.workspace)
                taken.append(lease)
        except StateStoreError as exc:
            log.warning("worker: cannot reach the database to take a lease: %s", exc)
        return taken

    async def _take_tree(self, fence: TreeFence) -> bool:
        """Sweep the tree's agents, then take its owner lock, killing a stale owner on this host that holds it."""
        try:
            await anyio.to_thread.run_sync(fence.stop_agents)
            await anyio.to_thread.run_sync(lambda: fence.take(grace_s=self.store.margin_s))
        except (OSError, TimeoutError) as exc:
            log.error("worker: cannot fence the tree %s: %s", fence.tree, exc)  # noqa: TRY400 - the message says it
            return False
        return True

    async def _take_over_state(self, lease: Lease) -> bool:
        """Fence *lease*'s SQLite state at its epoch: from now on a stale owner's state write is refused."""
        path = await self._state_of(lease.workspace)
        if path is None:
            return True
        store = SqliteStateStore(path)
        try:
            await store.take_over(lease.workspace, lease.epoch)
        except StateStoreError as exc:
            log.warning("worker: cannot fence the state of %s at epoch %d: %s", lease.workspace, lease.epoch, exc)
            return False
        finally:
            await store.close()
        return True

    async def _state_of(self, workspace: str) -> Path | None:
        if self.placement is None:
            return self.state_path
        if workspace == LOBBY:
            return None
        project, user = await anyio.to_thread.run_sync(self.store.workspace_of, workspace)
        return None if project is None else self.placement.state_of(project, user)

    async def _fence_of(self, workspace: str) -> TreeFence | None:
        """The one fence object of *workspace*'s tree in this process (it holds the tree's lock between periods)."""
        if self.placement is None:
            return self.fence
        if workspace == LOBBY:
            return None
        fence = self._trees.get(workspace)
        if fence is None:
            project, user = await anyio.to_thread.run_sync(self.store.workspace_of, workspace)
            if project is None:
                return None
            fence = self._trees[workspace] = TreeFence(self.placement.path_of(project, user).resolve())
        return fence

    async def _in_hand(self, lease: Lease) -> InHand:
        if self.placement is None or lease.workspace == LOBBY:
            return InHand(lease, None, None)
        project, user = await anyio.to_thread.run_sync(self.store.workspace_of, lease.workspace)
        return InHand(lease, project, user)

    async def _own(self, lease: Lease, stop: anyio.Event) -> None:
        self.periods += 1
        workspace = lease.workspace
        lost = self.lost_events[workspace] = anyio.Event()
        loop = asyncio.get_running_loop()
        inbox = LeasedInbox(self.store, self.reader, lease, on_lost=lambda: loop.call_soon_threadsafe(lost.set))
        graceful = False
        fence: TreeFence | None = None
        try:
            fence = await self._fence_of(workspace)
            # Every task of this period (the dispatcher's lanes and what they start) runs for this workspace: the
            # send gate and the project choices read it from the context.
            IN_HAND.set(await self._in_hand(lease))
            await inbox.open()
            dispatcher = self.dispatcher_for(inbox)
            async with anyio.create_task_group() as tg:
                await tg.start(dispatcher.run)
                tg.start_soon(self._renew, workspace, lost)
                tg.start_soon(self._claim, workspace, dispatcher, lost)
                async with anyio.create_task_group() as wait:

                    async def until(event: anyio.Event) -> None:
                        await event.wait()
                        wait.cancel_scope.cancel()

                    wait.start_soon(until, stop)
                    wait.start_soon(until, lost)
                graceful = stop.is_set() and not lost.is_set() and self._live(workspace)
                if graceful:
                    await dispatcher.stop()  # in-flight turns finish within the grace period
                else:
                    self._fenced.add(workspace)  # before anything else: no send, no claim from here on
                tg.cancel_scope.cancel()
        except StateStoreError as exc:
            log.warning("worker: the period on %s ended: %s", workspace, exc)
        finally:
            self._fenced.add(workspace)
            with anyio.CancelScope(shield=True):
                if not graceful:
                    log.warning("worker: lease on %s (epoch %d) lost: fencing myself", workspace, lease.epoch)
                if fence is not None:
                    await anyio.to_thread.run_sync(fence.stop_agents)
                    fence.release()  # only now: a new owner waits for this (or kills us) before touching the tree
                await inbox.aclose()
                if graceful:
                    await self._give_back(self.leases.get(workspace, lease))
                self.leases.pop(workspace, None)
                if self.lost_events.get(workspace) is lost:
                    del self.lost_events[workspace]

    def _still_owner(self, workspace: str) -> bool:
        return workspace not in self._fenced and self._live(workspace)

    def _live(self, workspace: str) -> bool:
        lease = self.leases.get(workspace)
        return lease is not None and lease.live()

    async def _give_back(self, lease: Lease) -> None:
        try:
            returned = await anyio.to_thread.run_sync(self.store.unclaim, lease)
            await anyio.to_thread.run_sync(self.store.release, lease)
            log.info("worker: released workspace %s (%d update(s) given back)", lease.workspace, returned)
        except StateStoreError as exc:
            log.warning("worker: could not release the lease (it lapses by itself): %s", exc)

    async def _renew(self, workspace: str, lost: anyio.Event) -> None:
        """Extend the lease every ttl/3; set *lost* when it is refused or its local deadline passes."""
        while True:
            lease = self.leases.get(workspace)
            if lease is None or not lease.live():
                lost.set()
                return
            with anyio.move_on_after(max(0.0, lease.deadline - time.monotonic())) as watchdog:
                try:
                    self.leases[workspace] = await anyio.to_thread.run_sync(
                        self.store.renew, lease, abandon_on_cancel=True
                    )
                except OwnershipLostError:
                    lost.set()
                    return
                except StateStoreError as exc:
                    log.warning("worker: renewing the lease failed (retrying until its deadline): %s", exc)
            if watchdog.cancelled_caught:
                lost.set()
                return
            renewed = self.leases.get(workspace) is not lease
            await anyio.sleep(self.store.ttl_s / 3 if renewed else 0.2)

    async def _claim(self, workspace: str, dispatcher: UpdateDispatcher, lost: anyio.Event) -> None:
        placement = self.placement
        while self._still_owner(workspace):
            lease = self.leases[workspace]
            try:
                if placement is None:
                    items = await anyio.to_thread.run_sync(self.store.claim, self.claim_batch, self.workspace)
                else:
                    items = await anyio.to_thread.run_sync(
                        self.store.claim_routed, lease, self.claim_batch, placement.allowed
                    )
            except OwnershipLostError:
                lost.set()
                return
            except StateStoreError as exc:
                log.warning("worker: claiming failed: %s", exc)
                items = []
            if not self._still_owner(workspace):
                lost.set()
                return  # claimed rows stay running under this epoch; the next owner gives them back
            for item in items:
                dispatcher.submit(item)
            if not items:
                await anyio.sleep(self.poll_s)
