"""
The `Inbox` contract: what every durable update inbox must do, as an abstract pytest class.

Subclass `InboxContract` in a ``test_*.py`` module, name the subclass ``Test…`` and provide three fixtures::

    class TestMyInbox(InboxContract):
        @pytest.fixture
        async def inbox(self, tmp_path: Path) -> AsyncIterator[Inbox]:
            async with MyInbox(tmp_path / "inbox") as inbox:      # open, and closed afterwards
                yield inbox

        @pytest.fixture
        def unopened_inbox(self, tmp_path: Path) -> Inbox:
            return MyInbox(tmp_path / "never-opened")              # built, never opened

        @pytest.fixture
        def unopenable_inbox(self, tmp_path: Path) -> Inbox:
            return MyInbox(tmp_path / "a-directory-not-a-file")    # its storage cannot be opened

Every ``Raises:`` line of the `Inbox` port has a case here: a closed inbox refuses every read and write with
`StateStoreError`, and storage that cannot be opened makes ``open`` raise it.
"""

from __future__ import annotations

import json

import anyio
import pytest

from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import InboxCounts, ItemState, NewUpdate
from voicecoder.domain.ports import Inbox

__all__ = ["InboxContract"]


def _body(update_id: int) -> bytes:
    return json.dumps({"update_id": update_id, "message": {"text": f"m{update_id}"}}).encode()


class InboxContract:
    """The behaviour every `Inbox` promises; subclass it and provide the fixtures named in the module docstring."""

    @pytest.fixture
    def inbox(self) -> Inbox:
        """An open, empty inbox, closed after the test."""
        raise NotImplementedError("provide an `inbox` fixture: an open, empty inbox of your kind")

    @pytest.fixture
    def unopened_inbox(self) -> Inbox:
        """An inbox of the same kind that was built but never opened."""
        raise NotImplementedError("provide an `unopened_inbox` fixture: your inbox, built but never opened")

    @pytest.fixture
    def unopenable_inbox(self) -> Inbox:
        """An inbox whose storage cannot be opened (a path that is a directory, a refused connection, ...)."""
        raise NotImplementedError("provide an `unopenable_inbox` fixture: your inbox on storage that cannot open")

    # --- storing ---------------------------------------------------------------------------

    async def test_put_stores_once(self, inbox: Inbox) -> None:
        """A new update is stored (True); the same update_id again changes nothing (False), first body kept."""
        first = await inbox.put(7, "1:message", _body(7))
        again = await inbox.put(7, "2:callback", b'{"update_id": 7}')

        stored = await inbox.get(7)

        assert (first, again) == (True, False)
        assert stored is not None
        assert (stored.update_id, stored.lane, stored.body, stored.state) == (
            7,
            "1:message",
            _body(7),
            ItemState.PENDING,
        )
        assert stored.update() == json.loads(_body(7))

    async def test_concurrent_duplicates_store_once(self, inbox: Inbox) -> None:
        """Ten concurrent deliveries of one update: exactly one is new."""
        answers: list[bool] = []

        async def deliver() -> None:
            answers.append(await inbox.put(3, "1:message", _body(3)))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(deliver)

        assert sorted(answers) == [False] * 9 + [True]
        assert await inbox.depth() == 1

    async def test_on_inserted_hears_the_same_answer(self, inbox: Inbox) -> None:
        """*on_inserted* is told once, with the answer ``put`` then returns, and before it returns."""
        heard: list[bool] = []

        fresh = await inbox.put(1, "1:message", _body(1), on_inserted=heard.append)
        duplicate = await inbox.put(1, "1:message", _body(1), on_inserted=heard.append)

        assert (fresh, duplicate) == (True, False)
        assert heard == [True, False]

    async def test_put_many_stores_updates_and_offset_together(self, inbox: Inbox) -> None:
        """A batch reports which updates are new and stores the polling offset with them."""
        await inbox.put(1, "1:message", _body(1))
        offset_before = await inbox.offset()

        fresh = await inbox.put_many(
            [NewUpdate(1, "1:message", _body(1)), NewUpdate(2, "2:callback", _body(2))], offset=3
        )

        assert offset_before is None
        assert fresh == [False, True]
        assert await inbox.offset() == 3
        assert [(i.update_id, i.lane) for i in await inbox.pending()] == [(1, "1:message"), (2, "2:callback")]

    async def test_put_many_without_offset_keeps_the_offset(self, inbox: Inbox) -> None:
        """A batch without an offset (the webhook's, the Telethon's) leaves the stored offset as it was."""
        await inbox.put_many([NewUpdate(1, "1:message", _body(1))], offset=2)

        await inbox.put_many([NewUpdate(5, "1:message", _body(5))])

        assert await inbox.offset() == 2
        assert await inbox.depth() == 2

    async def test_a_finished_update_is_still_a_duplicate(self, inbox: Inbox) -> None:
        """Stored once means until purged: a redelivery of a done or failed update is not new and changes nothing."""
        for update_id in (1, 2):
            await inbox.put(update_id, "1:message", _body(update_id))
        inbox.mark_done_nowait(1)
        await inbox.mark_failed(2, "RuntimeError: boom")

        again = [await inbox.put(1, "1:message", _body(1)), *await inbox.put_many([NewUpdate(2, "1:message", b"{}")])]

        assert again == [False, False]
        assert await inbox.counts() == InboxCounts(pending=0, done=1, failed=1)
        failed = await inbox.get(2)
        assert failed is not None
        assert (failed.body, failed.last_error) == (_body(2), "RuntimeError: boom")

    async def test_put_many_stores_a_repeated_update_once(self, inbox: Inbox) -> None:
        """The same update_id twice in one batch, or in a batch and a concurrent put: one of them is new."""
        answers: list[bool] = []

        async def single() -> None:
            answers.append(await inbox.put(4, "1:message", _body(4)))

        async def batch() -> None:
            answers.extend(await inbox.put_many([NewUpdate(4, "1:message", _body(4))] * 2))

        async with anyio.create_task_group() as tg:
            tg.start_soon(single)
            tg.start_soon(batch)

        assert sorted(answers) == [False, False, True]
        assert [i.update_id for i in await inbox.pending()] == [4]

    # --- processing ------------------------------------------------------------------------

    async def test_pending_is_in_update_id_order(self, inbox: Inbox) -> None:
        """What a restart resumes comes in update_id order, whatever order it was stored in."""
        for update_id in (30, 10, 20):
            await inbox.put(update_id, "1:message", _body(update_id))

        assert [item.update_id for item in await inbox.pending()] == [10, 20, 30]

    async def test_writes_apply_in_order(self, inbox: Inbox) -> None:
        """Queued claims and marks are applied before a later awaited write: attempts count, done leaves pending."""
        for update_id in (1, 2):
            await inbox.put(update_id, "1:message", _body(update_id))

        inbox.claim_nowait(1)
        inbox.claim_nowait(1)
        inbox.mark_done_nowait(1)
        inbox.claim_nowait(2)
        await inbox.record_error(2, "RuntimeError: first try")

        done, retried = await inbox.get(1), await inbox.get(2)
        assert done is not None
        assert retried is not None
        assert (done.state, done.attempts) == (ItemState.DONE, 2)
        assert (retried.state, retried.attempts, retried.last_error) == (
            ItemState.PENDING,
            1,
            "RuntimeError: first try",
        )
        assert [i.update_id for i in await inbox.pending()] == [2]

    async def test_failed_keeps_the_error_and_leaves_the_backlog(self, inbox: Inbox) -> None:
        """A failed update keeps its last error, is listed as failed and no longer counts as pending."""
        for update_id in (5, 6):
            await inbox.put(update_id, "1:message", _body(update_id))
        inbox.mark_done_nowait(6)

        await inbox.mark_failed(5, "RuntimeError: boom")

        failed = await inbox.failed()
        assert [(i.update_id, i.state, i.last_error) for i in failed] == [(5, ItemState.FAILED, "RuntimeError: boom")]
        assert await inbox.counts() == InboxCounts(pending=0, done=1, failed=1)
        assert await inbox.depth() == 0
        assert await inbox.pending() == []

    async def test_get_unknown_is_none(self, inbox: Inbox) -> None:
        """An update_id never stored is None, not an error."""
        assert await inbox.get(404) is None

    async def test_purge_removes_finished_only(self, inbox: Inbox) -> None:
        """Purging removes done and failed updates; a pending one stays whatever its age."""
        for update_id in (1, 2, 3):
            await inbox.put(update_id, "1:message", _body(update_id))
        inbox.mark_done_nowait(1)
        await inbox.mark_failed(2, "gone")

        kept = await inbox.purge_finished(older_than_s=3600)
        purged = await inbox.purge_finished(older_than_s=-1)

        assert (kept, purged) == (0, 2)
        assert [i.update_id for i in await inbox.pending()] == [3]
        assert (await inbox.get(1), await inbox.get(2)) == (None, None)

    async def test_purged_update_id_is_new_again(self, inbox: Inbox) -> None:
        """After a purge the inbox no longer knows the update_id (the retention window is the dedup window)."""
        await inbox.put(1, "1:message", _body(1))
        await inbox.mark_failed(1, "gone")
        await inbox.purge_finished(older_than_s=-1)

        assert await inbox.put(1, "1:message", _body(1)) is True

    async def test_check_writable_on_a_healthy_inbox(self, inbox: Inbox) -> None:
        """The readiness probe passes on an open inbox and changes no update."""
        await inbox.put(1, "1:message", _body(1))

        await inbox.check_writable()

        assert await inbox.counts() == InboxCounts(pending=1, done=0, failed=0)

    async def test_open_twice_and_close_twice_are_harmless(self, inbox: Inbox) -> None:
        """Opening an open inbox keeps it (and its updates); closing is idempotent."""
        await inbox.put(1, "1:message", _body(1))

        await inbox.open()

        assert await inbox.depth() == 1
        await inbox.aclose()
        await inbox.aclose()

    # --- Raises ----------------------------------------------------------------------------

    async def test_unopenable_storage_raises_on_open(self, unopenable_inbox: Inbox) -> None:
        """Storage that cannot be opened is a StateStoreError from open(), never a hang or a raw error."""
        with pytest.raises(StateStoreError):
            await unopenable_inbox.open()

    async def test_every_write_needs_an_open_inbox(self, unopened_inbox: Inbox) -> None:
        """Before open() every write is refused with StateStoreError (the webhook then answers 503)."""
        with pytest.raises(StateStoreError):
            await unopened_inbox.put(1, "1:message", _body(1))
        with pytest.raises(StateStoreError):
            await unopened_inbox.put(1, "1:message", _body(1), on_inserted=lambda _fresh: None)
        with pytest.raises(StateStoreError):
            await unopened_inbox.put_many([NewUpdate(1, "1:message", _body(1))], offset=2)
        with pytest.raises(StateStoreError):
            unopened_inbox.claim_nowait(1)
        with pytest.raises(StateStoreError):
            unopened_inbox.mark_done_nowait(1)
        with pytest.raises(StateStoreError):
            await unopened_inbox.mark_failed(1, "boom")
        with pytest.raises(StateStoreError):
            await unopened_inbox.record_error(1, "boom")
        with pytest.raises(StateStoreError):
            await unopened_inbox.check_writable()
        with pytest.raises(StateStoreError):
            await unopened_inbox.purge_finished(older_than_s=0)

    async def test_every_read_needs_an_open_inbox(self, unopened_inbox: Inbox) -> None:
        """Before open() every read is refused with StateStoreError (readiness then says not ready)."""
        for read in (unopened_inbox.pending, unopened_inbox.failed, unopened_inbox.counts, unopened_inbox.depth):
            with pytest.raises(StateStoreError):
                await read()
        with pytest.raises(StateStoreError):
            await unopened_inbox.offset()
        with pytest.raises(StateStoreError):
            await unopened_inbox.get(1)

    async def test_a_closed_inbox_refuses_and_keeps_what_it_stored(self, inbox: Inbox) -> None:
        """After aclose() writes are refused; opening it again finds every update stored before."""
        await inbox.put(1, "1:message", _body(1))
        inbox.mark_done_nowait(1)
        await inbox.put(2, "1:message", _body(2))
        await inbox.aclose()

        with pytest.raises(StateStoreError):
            await inbox.put(3, "1:message", _body(3))
        await inbox.open()

        assert await inbox.counts() == InboxCounts(pending=1, done=1, failed=0)
