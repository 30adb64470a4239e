"""
A durable inbox of raw Telegram updates in SQLite (WAL), written before the webhook answers 200.

One writer thread owns the connection. Requests from the event loop are queued to it; it takes
everything that is waiting, runs it in ONE transaction and commits once (``synchronous=FULL``:
the commit is on disk when it returns), then wakes all the waiting coroutines together. Many
concurrent webhook requests therefore share one fsync ("group commit").

An update is keyed by its ``update_id``: a second delivery of the same id is acknowledged and not
stored or processed again. :meth:`SqliteInbox.put` can also report, through *on_inserted*, whether the row is
new as soon as it is inserted in the open transaction, before the commit's fsync: processing may then start
while the disk works (the caller still answers only after the commit).

Items go pending → done | failed; ``attempts`` counts claims, so an update that crashes the process is still
recorded as failed after N attempts across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import attrs

from voicecoder.adapters.sqlite.inbox_reader import ItemTiming, read_item_timing
from voicecoder.adapters.sqlite.inbox_statements import Row, apply_marks, insert_new, insert_returning
from voicecoder.adapters.writer_thread import WriterThread, deliver_to_loops
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import InboxCounts, InboxItem, ItemState, NewUpdate

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS updates (
    update_id   INTEGER PRIMARY KEY,
    lane        TEXT    NOT NULL,
    body        BLOB    NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    received_at REAL    NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS updates_pending ON updates (update_id) WHERE state = 'pending';
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_OFFSET_KEY = "polling_offset"
_EARLY_REPORTS = 4
"""
Up to this many puts in a batch hear "inserted" before the commit. A bigger batch means load: the report then
comes with the commit's, so each waiting request wakes once, not twice (under load that hop costs more CPU than
overlapping the fsync saves).
"""
_MAX_BATCH = 512
_MAX_ERROR_CHARS = 2000


# A job runs on the writer thread inside the batch transaction and returns its result.
_Job = Callable[[sqlite3.Connection], Any]


@attrs.define
class _Request:
    kind: str  # "put" | "marks" (claims and dones, folded into one statement each per batch) or "job"
    job: _Job | None
    loop: asyncio.AbstractEventLoop | None  # None: nobody waits (fire and forget)
    future: asyncio.Future[Any] | None
    update_id: int = 0
    lane: str = ""
    body: bytes = b""
    received_at: float = 0.0
    inserted: asyncio.Future[bool] | None = None  # resolved as soon as a put's row is in the open transaction
    marks: list[tuple[str, int]] = attrs.field(factory=list)  # ("claim" | "done", update_id) in queue order
    result: Any = None
    error: BaseException | None = None


def _report(puts: list[_Request]) -> None:
    for req in puts:
        if req.inserted is not None and not req.inserted.done():
            req.inserted.set_result(bool(req.result))


def _resolve(batch: list[_Request]) -> None:
    for req in batch:
        if req.inserted is not None and not req.inserted.done():  # not reported early, or failed before the insert
            if req.error is not None:
                req.inserted.set_exception(req.error)
            else:
                req.inserted.set_result(bool(req.result))
        if req.future is None or req.future.done():  # the caller was cancelled; the work happened anyway
            continue
        if req.error is not None:
            req.future.set_exception(req.error)
        else:
            req.future.set_result(req.result)


class SqliteInbox:
    """
    The `Inbox` in one SQLite file. Open with ``async with SqliteInbox(path) as inbox`` (or ``open()``/``aclose()``).

    Every method that touches the file runs on the single writer thread; the event loop never blocks on SQLite.
    Errors surface as :class:`StateStoreError`.
    """

    def __init__(self, path: Path | str, *, max_batch: int = _MAX_BATCH, linger_s: float = 0.01) -> None:
        """*linger_s*: how long fire-and-forget marks wait to share a commit (see ``mark_done_nowait``)."""
        self.path = Path(path)
        self._max_batch = max_batch
        self._linger_s = linger_s
        # Requests wait here, on the event loop's side, and go to the writer thread together: once per loop
        # iteration when somebody awaits one, or after *linger_s* when only marks wait. Handing each over on its own
        # would wake that thread (and make it take the GIL from the loop, on the same core) once per request.
        self._held: list[_Request] = []
        self._held_loop: asyncio.AbstractEventLoop | None = None
        self._hand_over_soon: asyncio.Handle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        self._writer: WriterThread[_Request] | None = None
        self._conn: sqlite3.Connection | None = None
        self.commits = 0
        """Number of transactions committed (group-commit efficiency = writes / commits)."""
        self.writes = 0
        """Number of jobs executed."""

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        writer = WriterThread(
            f"sqlite-inbox:{self.path.name}",
            self._run_batch,
            max_batch=self._max_batch,
            setup=self._connect,
            teardown=self._disconnect,
        )
        try:
            await writer.start()
        except Exception as exc:
            raise StateStoreError(f"Cannot open the update inbox at {self.path}: {exc}") from exc
        self._writer = writer

    async def aclose(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self._hand_over()
        self._writer = None
        await writer.stop()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # in WAL mode: the WAL is fsync'd at every commit
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        self._conn = conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- writer thread ---------------------------------------------------------------------

    def _run_batch(self, batch: list[_Request]) -> None:
        """
        Run *batch* in one transaction (the IN-lists and VALUES rows interpolate placeholders only).

        Puts, claims and done-marks are folded into one statement each (fewer statements = fewer GIL hand-offs
        with the busy event loop); other jobs follow in queue order.
        """
        conn = self._conn
        if conn is None:  # pragma: no cover - the writer calls us only after _connect
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            puts = [r for r in batch if r.kind == "put"]
            if puts and not self._insert_all_new(conn, puts):
                # A redelivery is among them: start over, this time learning row by row which ids are new. The
                # inserts are the transaction's first statements, so nothing else is undone.
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                self._insert(conn, puts)
            if puts and len(puts) <= _EARLY_REPORTS:
                self._report_inserted(puts)
            marks = [mark for r in batch if r.kind == "marks" for mark in r.marks]
            apply_marks(conn, marks)
            for req in batch:
                if req.job is None:
                    continue
                try:
                    req.result = req.job(conn)
                except sqlite3.Error as exc:  # a failed statement is undone by SQLite; the batch goes on
                    req.error = StateStoreError(f"Update inbox operation failed: {exc}")
                    req.error.__cause__ = exc
            conn.execute("COMMIT")
            self.commits += 1
            self.writes += len(marks) + sum(r.kind != "marks" for r in batch)
        except sqlite3.Error as exc:
            log.exception("update inbox: commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for req in batch:
                req.error = StateStoreError(f"Update inbox commit failed: {exc}")
                req.error.__cause__ = exc
        for req in batch:
            if req.loop is None and req.error is not None:
                log.error("update inbox: a background write failed: %s", req.error)
        deliver_to_loops(batch, _resolve)

    @staticmethod
    def _report_inserted(puts: list[_Request]) -> None:
        """Tell each put that asked whether its row is new, in queue order, before the commit."""
        deliver_to_loops([req for req in puts if req.inserted is not None], _report)

    @staticmethod
    def _insert_all_new(conn: sqlite3.Connection, puts: list[_Request]) -> bool:
        """
        Insert the puts' rows; True (each put's result set) when every id was new, as nearly always.

        False, with each put's result untouched, when an id was stored already or came twice: the caller then
        rolls back and uses `_insert`, which learns row by row which ids are new.
        """
        if len({req.update_id for req in puts}) < len(puts) or not insert_new(conn, [_row(req) for req in puts]):
            return False
        for req in puts:
            req.result = True
        return True

    @staticmethod
    def _insert(conn: sqlite3.Connection, puts: list[_Request]) -> None:
        first: dict[int, _Request] = {}
        for req in puts:
            first.setdefault(req.update_id, req)
        inserted = insert_returning(conn, [_row(req) for req in first.values()])
        for req in puts:
            req.result = req.update_id in inserted and first[req.update_id] is req

    async def _submit(self, job: _Job) -> Any:
        return await self._wait(_Request("job", job, None, None))

    async def _wait(self, request: _Request) -> Any:
        if self._writer is None:
            raise StateStoreError("The update inbox is not open.")
        request.loop = loop = asyncio.get_running_loop()
        request.future = loop.create_future()
        self._send(request, loop)
        return await request.future

    def _send(self, request: _Request, loop: asyncio.AbstractEventLoop) -> None:
        """
        Queue *request* (awaited) behind everything held; it goes to the writer at the end of this loop iteration.

        All requests made in one iteration (a burst of webhook puts, the marks before them) then wake the writer
        once and share its next commit. The wait for the hand-over is shorter than the commit they would queue for.
        """
        self._adopt(loop)
        self._held.append(request)
        if self._hand_over_soon is None:
            self._hand_over_soon = loop.call_soon(self._hand_over)

    def _enqueue_mark(self, kind: str, update_id: int) -> None:
        """
        Queue a claim or done mark nobody waits for, to share the next commit somebody does wait for.

        On an event loop the mark is held until the next hand-over (it keeps its place in the queue, so writes keep
        their order) or, when no awaited request comes, for *linger_s*. Without a running loop it goes to the writer
        straight away, behind everything held.
        """
        if self._writer is None:
            raise StateStoreError("The update inbox is not open.")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._hand_over()
            self._writer.submit([_Request("marks", None, None, None, marks=[(kind, update_id)])])
            return
        self._adopt(loop)
        last = self._held[-1] if self._held else None
        if last is not None and last.kind == "marks":
            last.marks.append((kind, update_id))
        else:
            self._held.append(_Request("marks", None, None, None, marks=[(kind, update_id)]))
        if self._hand_over_soon is None and self._linger_timer is None:
            self._linger_timer = loop.call_later(self._linger_s, self._hand_over)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hold requests for *loop*: what another (maybe closed) loop held goes now, its callbacks may never run."""
        if loop is not self._held_loop:
            self._hand_over()
            self._held_loop = loop

    def _hand_over(self) -> None:
        """Give every held request to the writer, in order, as one item of its queue."""
        if self._hand_over_soon is not None:
            self._hand_over_soon.cancel()
            self._hand_over_soon = None
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        if self._held and self._writer is not None:
            held, self._held = self._held, []
            self._writer.submit(held)

    # --- API -------------------------------------------------------------------------------

    async def put(
        self, update_id: int, lane: str, body: bytes, *, on_inserted: Callable[[bool], None] | None = None
    ) -> bool:
        """
        Store one update durably. True if it is new, False for a duplicate ``update_id`` (nothing changes).

        *on_inserted* is called in the caller's task with the same answer as soon as the row is inserted, before the
        commit is on disk (under load, when many puts share a commit, together with the commit's answer). Work
        started from it may run although the commit then fails (this raises, the sender delivers again, the update
        runs twice): at least once, never lost.

        Raises:
            StateStoreError: The inbox cannot be written (the webhook must not answer 200).
        """
        request = _Request("put", None, None, None, update_id=update_id, lane=lane, body=body, received_at=time.time())
        if on_inserted is None:
            result: bool = await self._wait(request)
            return result
        if self._writer is None:
            raise StateStoreError("The update inbox is not open.")
        request.loop = loop = asyncio.get_running_loop()
        request.future = loop.create_future()
        request.inserted = loop.create_future()
        self._send(request, loop)
        try:
            fresh = await request.inserted
        except StateStoreError:
            pass  # the batch failed before the insert; awaiting the commit below raises the same error
        else:
            on_inserted(fresh)
        committed: bool = await request.future
        return committed

    async def put_many(self, updates: Iterable[NewUpdate], *, offset: int | None = None) -> list[bool]:
        """Store several updates (and optionally the next polling offset) in one transaction; True per new one."""
        items = list(updates)
        now = time.time()

        def job(conn: sqlite3.Connection) -> list[bool]:
            fresh = [
                conn.execute(
                    "INSERT OR IGNORE INTO updates (update_id, lane, body, received_at) VALUES (?, ?, ?, ?)",
                    (u.update_id, u.lane, u.body, now),
                ).rowcount
                == 1
                for u in items
            ]
            if offset is not None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (_OFFSET_KEY, str(offset)),
                )
            return fresh

        result: list[bool] = await self._submit(job)
        return result

    async def claim(self, update_id: int) -> int:
        """
        Record that processing of *update_id* starts; return the attempt number (1 for the first).

        Raises:
            StateStoreError: The inbox cannot be written, or the update is unknown or no longer pending.
        """

        def job(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE updates SET attempts = attempts + 1 WHERE update_id = ? AND state = 'pending' "
                "RETURNING attempts",
                (update_id,),
            ).fetchone()
            return None if row is None else int(row[0])

        attempts: int | None = await self._submit(job)
        if attempts is None:
            raise StateStoreError(f"Update {update_id} is not pending in the inbox.")
        return attempts

    def claim_nowait(self, update_id: int) -> None:
        """
        Like :meth:`claim` without waiting for the commit: the attempt is queued before anything written later.

        The dispatcher uses it so a claim costs no round trip; a process dying seconds into a handler has its
        claim on disk, which is what crash-loop detection needs.
        """
        self._enqueue_mark("claim", update_id)

    async def mark_done(self, update_id: int) -> None:
        """Record that *update_id* was processed."""
        await self._finish(update_id, ItemState.DONE, None)

    def mark_done_nowait(self, update_id: int) -> None:
        """
        Queue "done" for *update_id* without waiting for its commit.

        Writes are applied in the order they are queued, and :meth:`aclose` commits everything queued. The mark
        shares the next commit a caller waits for, or is committed on its own after *linger_s* (10 ms), so only
        a crash within that interval can lose it; the update is then processed again after restart
        (at-least-once), never lost.
        """
        self._enqueue_mark("done", update_id)

    async def mark_failed(self, update_id: int, error: str) -> None:
        """Record that *update_id* failed for good, with its last error."""
        await self._finish(update_id, ItemState.FAILED, error)

    async def record_error(self, update_id: int, error: str) -> None:
        """Remember the latest error of an attempt; the item stays pending."""

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE updates SET last_error = ? WHERE update_id = ?", (error[:_MAX_ERROR_CHARS], update_id))

        await self._submit(job)

    async def _finish(self, update_id: int, state: ItemState, error: str | None) -> None:
        await self._submit(self._finish_job(update_id, state, error))

    @staticmethod
    def _finish_job(update_id: int, state: ItemState, error: str | None) -> _Job:
        now = time.time()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE updates SET state = ?, last_error = coalesce(?, last_error), finished_at = ? "
                "WHERE update_id = ?",
                (state.value, None if error is None else error[:_MAX_ERROR_CHARS], now, update_id),
            )

        return job

    async def pending(self) -> list[InboxItem]:
        """Every pending item in ``update_id`` order (what a restart must resume)."""
        rows: list[tuple[Any, ...]] = await self._submit(
            lambda conn: conn.execute(
                "SELECT update_id, lane, body, state, attempts, last_error, received_at FROM updates "
                "WHERE state = 'pending' ORDER BY update_id"
            ).fetchall()
        )
        return [_item(row) for row in rows]

    async def get(self, update_id: int) -> InboxItem | None:
        """The stored item *update_id*, in any state, or None."""
        row: tuple[Any, ...] | None = await self._submit(
            lambda conn: conn.execute(
                "SELECT update_id, lane, body, state, attempts, last_error, received_at FROM updates "
                "WHERE update_id = ?",
                (update_id,),
            ).fetchone()
        )
        return None if row is None else _item(row)

    async def failed(self) -> list[InboxItem]:
        """Items given up on, oldest first."""
        rows: list[tuple[Any, ...]] = await self._submit(
            lambda conn: conn.execute(
                "SELECT update_id, lane, body, state, attempts, last_error, received_at FROM updates "
                "WHERE state = 'failed' ORDER BY update_id"
            ).fetchall()
        )
        return [_item(row) for row in rows]

    async def counts(self) -> InboxCounts:
        """How many items are pending, done and failed."""
        rows: Sequence[tuple[str, int]] = await self._submit(
            lambda conn: conn.execute("SELECT state, count(*) FROM updates GROUP BY state").fetchall()
        )
        by_state = dict(rows)
        return InboxCounts(
            pending=by_state.get("pending", 0), done=by_state.get("done", 0), failed=by_state.get("failed", 0)
        )

    async def depth(self) -> int:
        """Pending items (the backlog), for metrics."""
        return (await self.counts()).pending

    async def offset(self) -> int | None:
        """The persisted getUpdates offset, or None before the first poll."""
        row: tuple[str] | None = await self._submit(
            lambda conn: conn.execute("SELECT value FROM meta WHERE key = ?", (_OFFSET_KEY,)).fetchone()
        )
        return None if row is None else int(row[0])

    async def set_offset(self, offset: int) -> None:
        """Persist the next getUpdates offset."""
        await self.put_many((), offset=offset)

    async def check_writable(self) -> None:
        """
        Prove the inbox file can be written (for readiness probes).

        Raises:
            StateStoreError: It cannot.
        """

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('probe', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(time.time()),),
            )

        await self._submit(job)

    async def purge_finished(self, *, older_than_s: float) -> int:
        """Delete done/failed items finished more than *older_than_s* ago; return how many went."""
        cutoff = time.time() - older_than_s
        deleted: int = await self._submit(
            lambda conn: (
                conn.execute("DELETE FROM updates WHERE state != 'pending' AND finished_at < ?", (cutoff,)).rowcount
            )
        )
        return deleted


def _row(req: _Request) -> Row:
    return (req.update_id, req.lane, req.body, req.received_at)


def _item(row: tuple[Any, ...]) -> InboxItem:
    update_id, lane, body, state, attempts, last_error, received_at = row
    return InboxItem(
        update_id=int(update_id),
        lane=str(lane),
        body=bytes(body),
        state=ItemState(state),
        attempts=int(attempts),
        last_error=last_error,
        received_at=float(received_at),
    )


__all__ = ["InboxCounts", "InboxItem", "ItemState", "ItemTiming", "NewUpdate", "SqliteInbox", "read_item_timing"]
