"""
The `Inbox` in PostgreSQL: what every ingress replica writes and every worker claims from (``DATABASE_URL``).

Like the SQLite inbox, one writer thread owns one connection and runs every request in the order it was made,
the fire-and-forget marks included: it takes everything waiting, runs it in one transaction and commits once, so
concurrent webhook requests share a commit. The connection sets ``synchronous_commit = on``, so a put returns
(and the webhook answers 200) only once its row is on the server's disk, whatever the server's default.

An update is keyed by its ``update_id`` for as long as its row exists: done and failed rows are kept for the
retention window (`purge_finished`), so a redelivery within it is recognised as a duplicate. Rows a worker has
claimed are ``running``; through this port they read as pending, since they are not finished.

A request waits at most *timeout_s* for the server (a paused or unreachable server is then a `StateStoreError`,
which the webhook answers with 503 + Retry-After); a put that times out may still commit later, which is harmless
because Telegram's retry is then a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Self

import anyio
import attrs
import psycopg

from voicecoder.adapters.postgres.connection import connect, migrate, safe_target, scrub
from voicecoder.adapters.postgres.routing import routing_keys
from voicecoder.adapters.writer_thread import WriterThread, deliver_to_loops
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import InboxCounts, InboxItem, ItemState, NewUpdate

__all__ = ["PostgresInbox", "item_of"]

log = logging.getLogger(__name__)

_MAX_BATCH = 256
_MAX_ERROR_CHARS = 2000
_OFFSET_KEY = "polling_offset"
# The routing keys (chat, thread, sender, tag) are what a worker with several projects routes by (ADR 0028).
_INSERT = (
    "INSERT INTO voicecoder_inbox (update_id, lane, body, received_at, chat, thread, sender, tag) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (update_id) DO NOTHING RETURNING update_id"
)
_COLUMNS = "update_id, lane, body, state, attempts, last_error, received_at"

_Job = Callable[[psycopg.Connection[Any]], Any]


def item_of(row: tuple[Any, ...]) -> InboxItem:
    """An `InboxItem` from a row of `_COLUMNS`; a claimed (running) row is still pending to the port."""
    update_id, lane, body, state, attempts, last_error, received_at = row
    return InboxItem(
        update_id=int(update_id),
        lane=str(lane),
        body=bytes(body),
        state=ItemState.PENDING if state == "running" else ItemState(state),
        attempts=int(attempts),
        last_error=last_error,
        received_at=float(received_at),
    )


@attrs.define
class _Request:
    job: _Job
    loop: asyncio.AbstractEventLoop | None  # None: fire and forget
    future: asyncio.Future[Any] | None
    abandoned: bool = False  # the caller stopped waiting (timeout): a put not yet run is skipped
    skippable: bool = False
    result: Any = None
    error: BaseException | None = None


def _deliver(batch: list[_Request]) -> None:
    for req in batch:
        if req.future is None or req.future.done():
            continue
        if req.error is not None:
            req.future.set_exception(req.error)
        else:
            req.future.set_result(req.result)


class PostgresInbox:
    """The `Inbox` on a PostgreSQL database; ``async with PostgresInbox(url) as inbox`` or ``open``/``aclose``."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, max_batch: int = _MAX_BATCH) -> None:
        """*timeout_s*: how long one request waits for the server before it is a `StateStoreError`."""
        self._url = url
        self._timeout_s = timeout_s
        self._max_batch = max_batch
        self._writer: WriterThread[_Request] | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self.commits = 0

    def __repr__(self) -> str:
        return f"PostgresInbox({safe_target(self._url)!r})"  # never the password

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        self._conn = await anyio.to_thread.run_sync(self._connect)
        writer = WriterThread(
            "postgres-inbox", self._run_batch, max_batch=self._max_batch, teardown=self._drop_connection
        )
        await writer.start()
        self._writer = writer

    async def aclose(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = connect(self._url, autocommit=True)  # transactions are explicit: `conn.transaction()`
        try:
            migrate(conn)
        except psycopg.Error as exc:
            conn.close()
            raise StateStoreError(
                f"Cannot prepare the inbox tables in {safe_target(self._url)}: {scrub(str(exc), self._url)}"
            ) from None
        return conn

    # --- writer thread ---------------------------------------------------------------------

    def _run_batch(self, batch: list[_Request]) -> None:
        batch = [r for r in batch if not (r.abandoned and r.skippable)]
        if not batch:
            return
        try:
            conn = self._conn if self._conn is not None and not self._conn.closed else self._reconnect()
            try:
                with conn.transaction():
                    for req in batch:
                        req.result = req.job(conn)
                self.commits += 1
            except psycopg.OperationalError:
                raise
            except psycopg.Error:
                # One bad request must not fail the others: run each in its own transaction.
                for req in batch:
                    try:
                        with conn.transaction():
                            req.result = req.job(conn)
                    except psycopg.OperationalError:
                        raise
                    except psycopg.Error as exc:
                        req.error = StateStoreError(f"Update inbox operation failed: {scrub(str(exc), self._url)}")
        except (psycopg.OperationalError, StateStoreError) as exc:
            self._drop_connection()
            text = exc if isinstance(exc, StateStoreError) else scrub(str(exc).strip(), self._url)
            error = StateStoreError(f"PostgreSQL at {safe_target(self._url)} cannot be written: {text}")
            for req in batch:
                req.error = error
            if any(req.loop is None for req in batch):
                lost = sum(r.loop is None for r in batch)
                log.error("update inbox: %d background write(s) lost: %s", lost, error)  # noqa: TRY400 - no traceback
        deliver_to_loops(batch, _deliver)

    def _reconnect(self) -> psycopg.Connection[Any]:
        self._conn = connect(self._url, autocommit=True)
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                log.debug("update inbox: closing a broken connection failed", exc_info=True)

    # --- requests --------------------------------------------------------------------------

    def _check_open(self) -> WriterThread[_Request]:
        if self._writer is None:
            raise StateStoreError("The update inbox is not open.")
        return self._writer

    async def _call(self, job: _Job, *, on_done: Callable[[Any], None] | None = None, skippable: bool = False) -> Any:
        writer = self._check_open()
        loop = asyncio.get_running_loop()
        req = _Request(job, loop, loop.create_future(), skippable=skippable)
        writer.submit([req])
        assert req.future is not None
        try:
            result = await asyncio.wait_for(asyncio.shield(req.future), self._timeout_s)
        except TimeoutError:
            req.abandoned = True
            raise StateStoreError(
                f"PostgreSQL at {safe_target(self._url)} did not answer within {self._timeout_s:g} s."
            ) from None
        if on_done is not None:  # in the caller's task: it may start work there (the dispatcher's lanes)
            on_done(result)
        return result

    def _nowait(self, job: _Job) -> None:
        self._check_open().submit([_Request(job, None, None)])

    async def put(
        self, update_id: int, lane: str, body: bytes, *, on_inserted: Callable[[bool], None] | None = None
    ) -> bool:
        received_at = time.time()

        def insert(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute(
                _INSERT,
                (update_id, lane, body, received_at, *routing_keys(lane, body).row()),
            ).fetchone()
            return row is not None

        return bool(await self._call(insert, on_done=on_inserted, skippable=True))

    async def put_many(self, updates: Iterable[NewUpdate], *, offset: int | None = None) -> list[bool]:
        batch = list(updates)
        received_at = time.time()

        def insert_all(conn: psycopg.Connection[Any]) -> list[bool]:
            fresh = []
            with conn.transaction():  # a savepoint: all or nothing even inside a shared commit
                for u in batch:
                    row = conn.execute(
                        _INSERT,
                        (u.update_id, u.lane, u.body, received_at, *routing_keys(u.lane, u.body).row()),
                    ).fetchone()
                    fresh.append(row is not None)
                if offset is not None:
                    _set_meta(conn, _OFFSET_KEY, str(offset))
            return fresh

        result: list[bool] = await self._call(insert_all)
        return result

    def claim_nowait(self, update_id: int) -> None:
        self._nowait(
            lambda conn: conn.execute(
                "UPDATE voicecoder_inbox SET attempts = attempts + 1 "
                "WHERE update_id = %s AND state IN ('pending', 'running')",
                (update_id,),
            )
        )

    def mark_done_nowait(self, update_id: int) -> None:
        self._nowait(
            lambda conn: conn.execute(
                "UPDATE voicecoder_inbox SET state = 'done', finished_at = now(), owner = NULL "
                "WHERE update_id = %s AND state IN ('pending', 'running')",
                (update_id,),
            )
        )

    async def mark_failed(self, update_id: int, error: str) -> None:
        await self._call(
            lambda conn: conn.execute(
                "UPDATE voicecoder_inbox SET state = 'failed', finished_at = now(), owner = NULL, last_error = %s "
                "WHERE update_id = %s AND state IN ('pending', 'running')",
                (error[:_MAX_ERROR_CHARS], update_id),
            )
        )

    async def record_error(self, update_id: int, error: str) -> None:
        await self._call(
            lambda conn: conn.execute(
                "UPDATE voicecoder_inbox SET last_error = %s WHERE update_id = %s",
                (error[:_MAX_ERROR_CHARS], update_id),
            )
        )

    async def pending(self) -> list[InboxItem]:
        return await self._items("state IN ('pending', 'running')")

    async def failed(self) -> list[InboxItem]:
        return await self._items("state = 'failed'")

    async def _items(self, where: str) -> list[InboxItem]:
        rows = await self._call(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM voicecoder_inbox WHERE {where} ORDER BY update_id"  # noqa: S608 - constants
            ).fetchall()
        )
        return [item_of(row) for row in rows]

    async def get(self, update_id: int) -> InboxItem | None:
        row = await self._call(
            lambda conn: conn.execute(
                f"SELECT {_COLUMNS} FROM voicecoder_inbox WHERE update_id = %s",  # noqa: S608 - constants
                (update_id,),
            ).fetchone()
        )
        return None if row is None else item_of(row)

    async def counts(self) -> InboxCounts:
        rows = await self._call(
            lambda conn: conn.execute("SELECT state, count(*) FROM voicecoder_inbox GROUP BY state").fetchall()
        )
        by_state = {str(state): int(n) for state, n in rows}
        return InboxCounts(
            pending=by_state.get("pending", 0) + by_state.get("running", 0),
            done=by_state.get("done", 0),
            failed=by_state.get("failed", 0),
        )

    async def depth(self) -> int:
        return (await self.counts()).pending

    async def offset(self) -> int | None:
        row = await self._call(
            lambda conn: conn.execute("SELECT value FROM voicecoder_meta WHERE key = %s", (_OFFSET_KEY,)).fetchone()
        )
        return None if row is None else int(row[0])

    async def check_writable(self) -> None:
        await self._call(lambda conn: _set_meta(conn, "writable_check", repr(time.time())))

    async def purge_finished(self, *, older_than_s: float) -> int:
        def purge(conn: psycopg.Connection[Any]) -> int:
            cursor = conn.execute(
                "DELETE FROM voicecoder_inbox WHERE state IN ('done', 'failed') "
                "AND finished_at < now() - make_interval(secs => %s)",
                (older_than_s,),
            )
            return int(cursor.rowcount)

        purged: int = await self._call(purge)
        return purged


def _set_meta(conn: psycopg.Connection[Any], key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO voicecoder_meta (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
