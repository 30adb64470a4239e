from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from voicecoder.adapters.sqlite.inbox import InboxCounts, ItemState, NewUpdate, SqliteInbox
from voicecoder.domain.errors import StateStoreError


def _states(path: Path) -> dict[int, tuple[str, int]]:
    with sqlite3.connect(path) as other:
        return {row[0]: (row[1], row[2]) for row in other.execute("SELECT update_id, state, attempts FROM updates")}


def body(update_id: int, text: str = "hi") -> bytes:
    return json.dumps({"update_id": update_id, "message": {"chat": {"id": 1}, "text": text}}).encode()


@pytest.fixture(name="path")
def _path(tmp_path: Path) -> Path:
    return tmp_path / "inbox.sqlite3"


@pytest.fixture(name="inbox")
async def _inbox(path: Path) -> AsyncIterator[SqliteInbox]:
    async with SqliteInbox(path) as inbox:
        yield inbox


class TestSqliteInbox:
    async def test_put_new_then_duplicate(self, inbox: SqliteInbox) -> None:
        """The first delivery of an update_id is stored; a second one is acknowledged and changes nothing."""
        first = await inbox.put(10, "1:message", body(10, "original"))
        second = await inbox.put(10, "1:message", body(10, "replayed"))

        assert (first, second) == (True, False)
        stored = await inbox.get(10)
        assert stored is not None
        assert stored.update()["message"]["text"] == "original"
        assert await inbox.counts() == InboxCounts(pending=1, done=0, failed=0)

    async def test_concurrent_duplicates_store_once(self, inbox: SqliteInbox) -> None:
        """Twenty simultaneous deliveries of one update report exactly one as new."""
        results: list[bool] = []

        async def deliver() -> None:
            results.append(await inbox.put(7, "1:message", body(7)))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(deliver)

        assert sorted(results) == [False] * 19 + [True]

    async def test_one_commit_mixing_stored_new_and_repeated_ids(self, inbox: SqliteInbox) -> None:
        """Puts sharing a commit: an id stored before, new ids, and a new id twice; each answer and row is right."""
        assert await inbox.put(1, "1:message", body(1, "stored before"))
        results: dict[str, bool] = {}

        async def deliver(key: str, update_id: int, text: str) -> None:
            results[key] = await inbox.put(update_id, "1:message", body(update_id, text))

        async with anyio.create_task_group() as tg:
            for key, update_id in (("old", 1), ("a", 2), ("b", 3), ("b again", 3), ("c", 4)):
                tg.start_soon(deliver, key, update_id, key)

        assert inbox.commits == 2  # the five later puts were made in one loop iteration: they shared a commit
        assert results == {"old": False, "a": True, "b": True, "b again": False, "c": True}
        texts = {}
        for update_id in (1, 2, 3, 4):
            item = await inbox.get(update_id)
            assert item is not None
            texts[update_id] = item.update()["message"]["text"]
        assert texts == {1: "stored before", 2: "a", 3: "b", 4: "c"}

    async def test_a_stored_id_among_distinct_new_ones_redoes_only_the_inserts(self, inbox: SqliteInbox) -> None:
        """
        All ids of a commit distinct, one stored before: the one-step insert finds a row missing and the batch
        starts over row by row; every answer is right and the claim and done marks of the same commit count once.
        """
        assert await inbox.put(1, "1:message", body(1, "stored before"))
        assert await inbox.put(9, "1:message", body(9))
        results: dict[int, bool] = {}

        async def deliver(update_id: int) -> None:
            results[update_id] = await inbox.put(update_id, "1:message", body(update_id, "later"))

        commits = inbox.commits
        async with anyio.create_task_group() as tg:
            inbox.claim_nowait(9)
            for update_id in (2, 1, 3):
                tg.start_soon(deliver, update_id)
            inbox.mark_done_nowait(9)

        assert inbox.commits == commits + 1
        assert results == {2: True, 1: False, 3: True}
        old, done = await inbox.get(1), await inbox.get(9)
        assert old is not None
        assert old.update()["message"]["text"] == "stored before"
        assert done is not None
        assert (done.state, done.attempts) == (ItemState.DONE, 1)
        assert await inbox.counts() == InboxCounts(pending=3, done=1, failed=0)

    async def test_a_commit_of_more_puts_and_marks_than_one_statement_takes(
        self, path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """
        450 puts in one commit, on a SQLite that allows 999 parameters per statement (builds before 3.32): they go in
        as several multi-row inserts; a stored id in the last of them still sends the batch row by row, and every
        answer and row is right. So do 900 claims and 900 done marks in one commit each.
        """
        connect = sqlite3.connect

        def old_sqlite(database: str | Path, **kwargs: Any) -> sqlite3.Connection:
            conn: sqlite3.Connection = connect(database, **kwargs)
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
            return conn

        monkeypatch.setattr(sqlite3, "connect", old_sqlite)
        results: dict[int, bool] = {}
        async with SqliteInbox(path) as inbox:
            assert await inbox.put(440, "1:message", body(440, "stored before"))

            async def deliver(update_id: int) -> None:
                results[update_id] = await inbox.put(update_id, "1:message", body(update_id, "later"))

            for ids in (range(1000, 1450), range(1, 451)):
                commits = inbox.commits
                async with anyio.create_task_group() as tg:
                    for update_id in ids:
                        tg.start_soon(deliver, update_id)
                assert inbox.commits == commits + 1  # one loop iteration's puts: one batch
            old = await inbox.get(440)
            # And 900 claims, then 900 done marks, each set in one commit (two IN-lists longer than 999 allows).
            for mark in (inbox.claim_nowait, inbox.mark_done_nowait):
                commits = inbox.commits
                for update_id in (*range(1000, 1450), *range(1, 451)):
                    mark(update_id)
                counts = await inbox.counts()
                assert inbox.commits == commits + 1
            assert counts == InboxCounts(pending=0, done=900, failed=0)
        assert results == {i: i != 440 for i in (*range(1000, 1450), *range(1, 451))}
        assert len(_states(path)) == 900
        assert old is not None
        assert old.update()["message"]["text"] == "stored before"

    async def test_on_inserted_reports_before_the_commit(self, inbox: SqliteInbox, path: Path) -> None:
        """
        on_inserted says "new" (or "duplicate") while the transaction is still open, so processing can overlap the
        fsync; put itself returns only once the row is committed.
        """
        first_job, second_job = threading.Event(), threading.Event()
        reported: list[bool] = []
        seen_uncommitted: list[list[tuple[int]]] = []

        first_running, second_running = threading.Event(), threading.Event()

        def hold(event: threading.Event, running: threading.Event) -> Callable[[sqlite3.Connection], None]:
            def job(_conn: sqlite3.Connection) -> None:
                running.set()
                event.wait(60)  # a hang guard; the test sets it

            return job

        async with anyio.create_task_group() as tg:
            tg.start_soon(inbox._submit, hold(first_job, first_running))  # occupies the writer: the next two share
            # The writer thread must be inside the first job before anything else is queued; a busy machine can
            # wake it late, and it would then take the put into the first job's batch and commit it early.
            assert await anyio.to_thread.run_sync(first_running.wait, 60)
            put = anyio.Event()

            async def store() -> None:
                assert await inbox.put(5, "1:message", body(5), on_inserted=reported.append)
                put.set()

            # Both in one loop iteration: the inbox hands them to the writer together, the second job after the
            # insert and before the commit.
            tg.start_soon(store)
            tg.start_soon(inbox._submit, hold(second_job, second_running))
            await anyio.wait_all_tasks_blocked()
            first_job.set()
            assert await anyio.to_thread.run_sync(second_running.wait, 60)
            with anyio.fail_after(60):
                while not reported:
                    await anyio.sleep(0.005)
            with sqlite3.connect(path) as other:
                seen_uncommitted.append(other.execute("SELECT update_id FROM updates").fetchall())
            put_done_early = put.is_set()
            second_job.set()
            with anyio.fail_after(60):
                await put.wait()
        duplicate: list[bool] = []
        again = await inbox.put(5, "1:message", body(5), on_inserted=duplicate.append)

        assert reported == [True]
        assert seen_uncommitted == [[]]  # reported while nothing was committed yet
        assert not put_done_early
        assert (again, duplicate) == (False, [False])

    async def test_marks_alone_reach_the_disk_and_ride_along_otherwise(self, path: Path) -> None:
        """
        A claim and a done mark that nobody waits for are committed on their own after the linger time, and right
        away with a put that somebody waits for; either way another connection then sees them.
        """
        async with SqliteInbox(path, linger_s=0.05) as inbox:
            await inbox.put(1, "1:message", body(1))
            await inbox.put(2, "1:message", body(2))
            inbox.claim_nowait(1)
            inbox.mark_done_nowait(1)
            with anyio.fail_after(5):
                while _states(path).get(1) != ("done", 1):
                    await anyio.sleep(0.01)
            inbox.claim_nowait(2)
            inbox.mark_done_nowait(2)
            await inbox.put(3, "1:message", body(3))
            with_put = _states(path)

        assert with_put == {1: ("done", 1), 2: ("done", 1), 3: ("pending", 0)}

    async def test_committed_before_put_returns(self, inbox: SqliteInbox, path: Path) -> None:
        """When put returns the row is committed: an independent connection sees it."""
        await inbox.put(1, "1:message", body(1))

        with sqlite3.connect(path) as other:
            rows = other.execute("SELECT update_id, state FROM updates").fetchall()
        other.close()

        assert rows == [(1, "pending")]

    async def test_wal_mode(self, inbox: SqliteInbox, path: Path) -> None:
        """The file is in WAL mode, so readers never block the writer."""
        await inbox.put(1, "1:message", body(1))

        other = sqlite3.connect(path)
        mode = other.execute("PRAGMA journal_mode").fetchone()[0]
        other.close()

        assert mode == "wal"

    async def test_survives_reopen(self, path: Path) -> None:
        """Pending items, states and the offset are still there after closing and reopening the file."""
        async with SqliteInbox(path) as inbox:
            await inbox.put(1, "1:message", body(1))
            await inbox.put(2, "1:message", body(2))
            await inbox.mark_done(1)
            await inbox.set_offset(3)

        async with SqliteInbox(path) as reopened:
            pending = [item.update_id for item in await reopened.pending()]
            offset = await reopened.offset()

        assert pending == [2]
        assert offset == 3

    async def test_pending_in_update_id_order(self, inbox: SqliteInbox) -> None:
        """Resume order is update_id order, whatever order the updates were stored in."""
        for update_id in (30, 10, 20):
            await inbox.put(update_id, "1:message", body(update_id))

        assert [item.update_id for item in await inbox.pending()] == [10, 20, 30]

    async def test_claim_counts_attempts(self, inbox: SqliteInbox) -> None:
        """Each claim is one more attempt, recorded durably."""
        await inbox.put(5, "1:message", body(5))

        attempts = [await inbox.claim(5), await inbox.claim(5)]

        assert attempts == [1, 2]
        stored = await inbox.get(5)
        assert stored is not None
        assert stored.attempts == 2

    async def test_claim_of_finished_item_raises(self, inbox: SqliteInbox) -> None:
        """A done item cannot be claimed again: processing it twice is refused."""
        await inbox.put(5, "1:message", body(5))
        await inbox.mark_done(5)

        with pytest.raises(StateStoreError, match="not pending"):
            await inbox.claim(5)

    async def test_mark_failed_keeps_error(self, inbox: SqliteInbox) -> None:
        """A failed item leaves the pending set and keeps its last error."""
        await inbox.put(5, "1:message", body(5))
        await inbox.put(6, "1:message", body(6))
        await inbox.claim(5)
        await inbox.record_error(5, "RuntimeError: first")
        await inbox.mark_failed(5, "RuntimeError: boom")

        failed = await inbox.failed()

        assert [(i.update_id, i.state, i.last_error, i.attempts) for i in failed] == [
            (5, ItemState.FAILED, "RuntimeError: boom", 1)
        ]
        assert [i.update_id for i in await inbox.pending()] == [6]
        assert await inbox.depth() == 1

    async def test_put_many_with_offset_is_atomic(self, inbox: SqliteInbox) -> None:
        """Polling stores a batch and the next offset in one transaction; duplicates in it are reported."""
        await inbox.put(1, "1:message", body(1))

        fresh = await inbox.put_many(
            [NewUpdate(1, "1:message", body(1)), NewUpdate(2, "2:callback", body(2))], offset=3
        )

        assert fresh == [False, True]
        assert await inbox.offset() == 3
        assert [i.lane for i in await inbox.pending()] == ["1:message", "2:callback"]

    async def test_offset_none_before_first_poll(self, inbox: SqliteInbox) -> None:
        """No offset is stored until polling stores one."""
        assert await inbox.offset() is None

    async def test_group_commit_shares_transactions(self, inbox: SqliteInbox) -> None:
        """Two hundred concurrent puts are committed in far fewer transactions than writes."""
        commits_before = inbox.commits

        async with anyio.create_task_group() as tg:
            for update_id in range(200):
                tg.start_soon(inbox.put, update_id, f"{update_id % 50}:message", body(update_id))

        assert await inbox.depth() == 200
        assert inbox.commits - commits_before < 100

    async def test_purge_finished(self, inbox: SqliteInbox) -> None:
        """Purging removes finished items only; pending ones stay whatever their age."""
        await inbox.put(1, "1:message", body(1))
        await inbox.put(2, "1:message", body(2))
        await inbox.mark_done(1)

        deleted = await inbox.purge_finished(older_than_s=-1)

        assert deleted == 1
        assert [i.update_id for i in await inbox.pending()] == [2]

    async def test_check_writable(self, inbox: SqliteInbox) -> None:
        """The readiness probe writes successfully on a healthy file."""
        await inbox.check_writable()

    async def test_unopenable_path_raises(self, tmp_path: Path) -> None:
        """A path that is a directory gives StateStoreError naming the path."""
        directory = tmp_path / "dir"
        directory.mkdir()

        with pytest.raises(StateStoreError, match="Cannot open the update inbox"):
            await SqliteInbox(directory).open()

    async def test_use_before_open_raises(self, path: Path) -> None:
        """Calling the inbox before open() is a clear StateStoreError, not a hang."""
        with pytest.raises(StateStoreError, match="not open"):
            await SqliteInbox(path).put(1, "1:message", body(1))

    async def test_corruption_surfaces_as_state_store_error(self, path: Path) -> None:
        """A file that is not a database cannot be opened; the error is a StateStoreError."""
        path.write_bytes(b"this is not sqlite" * 100)

        with pytest.raises(StateStoreError):
            await SqliteInbox(path).open()
