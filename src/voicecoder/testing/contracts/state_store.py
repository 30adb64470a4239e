"""
The `StateStore` contract: what every store must do, as an abstract pytest class.

Subclass `StateStoreContract` in a ``test_*.py`` module, name the subclass ``Test…`` and override the
``store`` fixture (an async generator that yields the store and closes it afterwards)::

    class TestMyStore(StateStoreContract):
        @pytest.fixture
        async def store(self, tmp_path: Path) -> AsyncIterator[StateStore]:
            store = MyStore(tmp_path / "state")
            yield store
            await store.close()

The tests run on whatever ``anyio_backend`` your conftest chooses. The Hypothesis strategies it draws from
(`sessions`, `pending_changes`, `audit_records`, …) live in `voicecoder.testing.state_strategies` and are
re-exported here, so adapter-specific tests can reuse them.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import HealthCheck, given, settings

from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.model import (
    AuditAction,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeKind,
    ChangeStatus,
    ChatId,
    CommitInfo,
    Diff,
    FileChange,
    PendingChange,
    Prompt,
    Session,
    TurnId,
    UserId,
)
from voicecoder.domain.ports import StateStore
from voicecoder.testing.state_strategies import (
    audit_records,
    aware_datetimes,
    change_ids,
    chat_ids,
    commit_infos,
    diffs,
    pending_changes,
    prompts,
    sessions,
    user_ids,
)

__all__ = [
    "OpenStore",
    "StateStoreContract",
    "audit_records",
    "aware_datetimes",
    "change_ids",
    "chat_ids",
    "commit_infos",
    "diffs",
    "pending_changes",
    "prompts",
    "sessions",
    "user_ids",
]

# --- fixed examples -----------------------------------------------------------------------

ALICE = UserId(1001)
BOB = UserId(1002)
CHAT = ChatId(-100_123)
OTHER_CHAT = ChatId(42)
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _change(chat: ChatId, n: int) -> PendingChange:
    turn = TurnId(f"turn-{n}")
    return PendingChange(
        id=ChangeId(f"{n:08x}"),
        turn_id=turn,
        chat_id=chat,
        prompt=Prompt.typed(f"change number {n}"),
        baseline=Baseline(turn_id=turn, snapshot=f"{n:040x}"),
        diff=Diff(
            unified=f"--- a/f{n}.py\n+++ b/f{n}.py\n@@ -0,0 +1 @@\n+x = {n}\n",
            files=(FileChange(path=f"f{n}.py", kind=ChangeKind.ADDED, additions=1, new_mode=0o100644),),
            fingerprint=f"{n:064x}",
        ),
        created_at=T0 + timedelta(minutes=n),
        agent_session_id="sess-1",
    )


def _record(chat: ChatId, n: int) -> AuditRecord:
    return AuditRecord(
        at=T0 + timedelta(seconds=n), chat_id=chat, user_id=ALICE, action=AuditAction.PROMPT, prompt=f"#{n}"
    )


OpenStore = Callable[[], AbstractAsyncContextManager[StateStore]]
"""Opens a fresh, empty store for the length of an ``async with``."""

_hypothesis = settings(
    max_examples=40,
    deadline=None,  # a durable store syncs to disk on every write; latency varies on shared machines
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # every example writes distinct state
)


class StateStoreContract:
    """
    What every `StateStore` method promises.

    `load_session`, `save_session`, `load_change`, `save_change`, `approved_changes`, `append_audit` and
    `audit_trail`. Each documented ``StateStoreError`` has a case: saving a change the chat does not have, and every
    method of a store that can be neither read nor written (`unavailable_store`).
    """

    @pytest.fixture
    def open_store(self) -> OpenStore:
        """
        Override: a factory of fresh, empty stores, each closed when its context ends.

        Each test gets one (`store`); each example of a property test opens its own, so no example sees another's
        state and a failure replays alone.
        """
        raise NotImplementedError

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> AsyncIterator[StateStore]:
        async with open_store() as store:
            yield store

    @pytest.fixture
    async def unavailable_store(self) -> AsyncIterator[StateStore]:
        """Override: yield a store that can be neither read nor written (closed, its file or server gone)."""
        raise NotImplementedError
        yield  # noqa: PT022 - an async generator, the shape overrides have

    async def test_every_call_to_an_unavailable_store_raises(self, unavailable_store: StateStore) -> None:
        """A store that cannot be read or written says so with StateStoreError, from every method."""
        store = unavailable_store
        session = Session(chat_id=CHAT)
        session.attach(_change(CHAT, 1), now=T0)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "load_session": lambda: store.load_session(CHAT),
            "save_session": lambda: store.save_session(session),
            "load_change": lambda: store.load_change(CHAT, ChangeId("00000001")),
            "save_change": lambda: store.save_change(_change(CHAT, 1)),
            "approved_changes": lambda: store.approved_changes(CHAT),
            "append_audit": lambda: store.append_audit(_record(CHAT, 1)),
            "audit_trail": lambda: store.audit_trail(CHAT),
        }
        raised = {}
        for name, call in calls.items():
            try:
                await call()
            except StateStoreError:
                raised[name] = True
            else:
                raised[name] = False

        assert raised == dict.fromkeys(calls, True)

    # --- changes by id

    async def test_unknown_change_is_none(self, store: StateStore) -> None:
        """A change id never saved (or saved in another chat) loads as None."""
        session = Session(chat_id=CHAT)
        session.attach(_change(CHAT, 1), now=T0)
        await store.save_session(session)

        assert await store.load_change(CHAT, ChangeId("ffffffff")) is None
        assert await store.load_change(OTHER_CHAT, _change(CHAT, 1).id) is None

    async def test_pending_change_loads_by_id(self, store: StateStore) -> None:
        """The session's pending change also loads by its id, equal to what was saved."""
        change = attrs.evolve(_change(CHAT, 1), message_ids=(77, 80))
        session = Session(chat_id=CHAT)
        session.attach(change, now=T0)
        await store.save_session(session)

        assert await store.load_change(CHAT, change.id) == change

    async def test_replaced_change_loads_as_superseded(self, store: StateStore) -> None:
        """A pending change replaced by a newer one stays loadable by id, marked superseded, with its diff."""
        first, second = _change(CHAT, 1), _change(CHAT, 2)
        session = Session(chat_id=CHAT)
        session.attach(first, now=T0)
        await store.save_session(session)
        session.attach(second, now=T0 + timedelta(minutes=2))
        await store.save_session(session)

        loaded = await store.load_change(CHAT, first.id)

        assert loaded is not None
        assert (loaded.status, loaded.diff) == (ChangeStatus.SUPERSEDED, first.diff)
        assert loaded.decided_at is not None

    async def test_decided_change_stays_loadable_after_the_next(self, store: StateStore) -> None:
        """An approved change keeps its status and commit when a later change takes its place in the session."""
        first = _change(CHAT, 1)
        session = Session(chat_id=CHAT)
        session.attach(first, now=T0)
        commit = CommitInfo("a" * 40, "Apply changes from Claude", "Ada <ada@example.com>", T0)
        first.approve(ALICE, commit, now=T0 + timedelta(minutes=1))
        await store.save_session(session)
        session.attach(_change(CHAT, 2), now=T0 + timedelta(minutes=2))
        await store.save_session(session)

        loaded = await store.load_change(CHAT, first.id)

        assert loaded is not None
        assert (loaded.status, loaded.commit, loaded.decided_by) == (ChangeStatus.APPROVED, commit, ALICE)

    # --- approved changes (what /undo reverts)

    async def _decide(
        self, store: StateStore, session: Session, n: int, *, approve: bool, auto: bool = False
    ) -> PendingChange:
        """Attach change *n* to *session*, decide it at T0 + n minutes and save the session."""
        change = _change(session.chat_id, n)
        session.attach(change, now=T0 + timedelta(minutes=n))
        decided_at = T0 + timedelta(minutes=n, seconds=30)
        if approve:
            commit = CommitInfo(f"{n:040x}", "Apply changes from Claude", "Ada <ada@example.com>", decided_at)
            change.approve(ALICE, commit, now=decided_at, auto=auto)
        else:
            change.reject(ALICE, now=decided_at)
        await store.save_session(session)
        return change

    async def test_approved_changes_are_the_approved_ones_last_decided_first(self, store: StateStore) -> None:
        """Approved and auto-approved changes come back, newest decision first; not rejected, pending or others'."""
        session = Session(chat_id=CHAT)
        first = await self._decide(store, session, 1, approve=True)
        await self._decide(store, session, 2, approve=False)
        third = await self._decide(store, session, 3, approve=True, auto=True)
        session.attach(_change(CHAT, 4), now=T0 + timedelta(minutes=4))
        await store.save_session(session)
        await self._decide(store, Session(chat_id=OTHER_CHAT), 5, approve=True)

        assert list(await store.approved_changes(CHAT)) == [third, first]
        assert list(await store.approved_changes(CHAT, 1)) == [third]
        assert list(await store.approved_changes(CHAT, 0)) == []

    async def test_a_reverted_change_is_no_longer_approved(self, store: StateStore) -> None:
        """After save_change records its revert, an approved change leaves approved_changes and loads reverted."""
        session = Session(chat_id=CHAT)
        first = await self._decide(store, session, 1, approve=True)
        second = await self._decide(store, session, 2, approve=True)

        second.revert("e" * 40, now=T0 + timedelta(hours=1))
        await store.save_change(second)
        first.revert("f" * 40, now=T0 + timedelta(hours=2))
        await store.save_change(first)

        assert list(await store.approved_changes(CHAT)) == []
        assert await store.load_change(CHAT, first.id) == first
        loaded = await store.load_session(CHAT)
        assert loaded is not None
        assert loaded.latest_change == second

    async def test_saving_a_change_the_chat_does_not_have_raises(self, store: StateStore) -> None:
        """save_change of a change never saved with its session (or saved in another chat) is a StateStoreError."""
        session = Session(chat_id=OTHER_CHAT)
        theirs = await self._decide(store, session, 1, approve=True)

        with pytest.raises(StateStoreError):
            await store.save_change(_change(CHAT, 9))
        with pytest.raises(StateStoreError):
            await store.save_change(attrs.evolve(theirs, chat_id=CHAT))

        assert await store.load_change(CHAT, theirs.id) is None

    # --- sessions

    async def test_unknown_chat_has_no_session(self, store: StateStore) -> None:
        """A chat never saved loads as None, not as an empty session."""
        assert await store.load_session(CHAT) is None

    @_hypothesis
    @given(session=sessions(with_pending=False))
    async def test_session_without_pending_round_trips(self, open_store: OpenStore, session: Session) -> None:
        """A session without a change loads equal to what was saved."""
        async with open_store() as store:
            await store.save_session(session)

            assert await store.load_session(session.chat_id) == session

    @_hypothesis
    @given(session=sessions(with_pending=True))
    async def test_session_with_pending_round_trips(self, open_store: OpenStore, session: Session) -> None:
        """A session and its change, in any status, load equal to what was saved."""
        async with open_store() as store:
            await store.save_session(session)

            loaded = await store.load_session(session.chat_id)

            assert loaded is not None
            assert loaded == session
            assert loaded.latest_change == session.latest_change

    @pytest.mark.parametrize("status", list(ChangeStatus))
    async def test_every_status_round_trips(self, store: StateStore, status: ChangeStatus) -> None:
        """A change brought into each status by the domain's own transitions comes back unchanged."""
        session = Session(chat_id=CHAT)
        change = _change(CHAT, 1)
        session.attach(change, now=T0)
        decided = T0 + timedelta(hours=1)
        commit = CommitInfo("b" * 40, "Add f1\n\nBody.\n", "Alice <a@example.org>", decided)
        if status is ChangeStatus.APPROVED:
            change.approve(ALICE, commit, now=decided)
        elif status is ChangeStatus.AUTO_APPROVED:
            change.approve(ALICE, commit, now=decided, auto=True)
        elif status is ChangeStatus.REJECTED:
            change.reject(BOB, now=decided)
        elif status is ChangeStatus.SUPERSEDED:
            change.supersede(ChangeId("0000ffff"), now=decided)

        await store.save_session(session)
        loaded = await store.load_session(CHAT)

        assert loaded is not None
        assert loaded.latest_change is not None
        assert loaded.latest_change.status == status
        assert loaded == session

    @_hypothesis
    @given(session=sessions(with_pending=True), moment=aware_datetimes())
    async def test_datetimes_keep_zone_and_offset(
        self, open_store: OpenStore, session: Session, moment: datetime
    ) -> None:
        """Aware datetimes come back as the same instant with the same wall time, offset and zone."""
        async with open_store() as store:
            assert session.latest_change is not None
            session.last_activity = moment
            session.latest_change.created_at = moment

            await store.save_session(session)
            loaded = await store.load_session(session.chat_id)

            assert loaded is not None
            assert loaded.latest_change is not None
            for got in (loaded.last_activity, loaded.latest_change.created_at):
                assert got is not None
                assert (got.replace(tzinfo=None), got.utcoffset(), got.tzname()) == (
                    moment.replace(tzinfo=None),
                    moment.utcoffset(),
                    moment.tzname(),
                )

    async def test_later_save_replaces_earlier(self, store: StateStore) -> None:
        """Saving a session again stores its new state: turns, agent session, decision and counters."""
        session = Session(chat_id=CHAT)
        session.record_turn("sess-1", now=T0)
        change = _change(CHAT, 1)
        session.attach(change, now=T0)
        await store.save_session(session)

        change.approve(ALICE, CommitInfo("a" * 40, "Add f1\n", "Alice <a@example.org>", T0), now=T0)
        session.settle(change)
        session.record_turn("sess-2", now=T0 + timedelta(minutes=5))
        await store.save_session(session)
        loaded = await store.load_session(CHAT)

        assert loaded == session
        assert loaded is not None
        assert loaded.latest_change is not None
        assert (
            loaded.latest_change.status,
            loaded.latest_change.decided_by,
            loaded.approved_count,
            loaded.agent_session_id,
            loaded.turn_count,
        ) == (ChangeStatus.APPROVED, ALICE, 1, "sess-2", 2)

    async def test_attaching_a_new_change_replaces_the_pending_one(self, store: StateStore) -> None:
        """After attach + save, the session loads with the new change as its pending one."""
        session = Session(chat_id=CHAT)
        session.attach(_change(CHAT, 1), now=T0)
        await store.save_session(session)
        newer = _change(CHAT, 2)

        session.attach(newer, now=T0 + timedelta(minutes=2))
        await store.save_session(session)
        loaded = await store.load_session(CHAT)

        assert loaded is not None
        assert loaded.latest_change == newer

    async def test_pending_can_be_cleared(self, store: StateStore) -> None:
        """A session saved without a change after one with a change loads without one."""
        session = Session(chat_id=CHAT)
        session.attach(_change(CHAT, 1), now=T0)
        await store.save_session(session)

        session.latest_change = None
        await store.save_session(session)

        assert await store.load_session(CHAT) == session

    async def test_store_keeps_state_not_references(self, store: StateStore) -> None:
        """Mutating a saved or a loaded session changes nothing in the store until it is saved."""
        session = Session(chat_id=CHAT, turn_count=3)
        session.attach(_change(CHAT, 1), now=T0)
        await store.save_session(session)
        saved = copy.deepcopy(session)

        session.turn_count = 99
        assert session.latest_change is not None
        session.latest_change.reject(BOB, now=T0)
        loaded = await store.load_session(CHAT)
        assert loaded is not None
        assert loaded.latest_change is not None
        loaded.latest_change.reject(ALICE, now=T0)
        loaded.agent_session_id = "changed"

        assert await store.load_session(CHAT) == saved

    async def test_sessions_are_isolated_between_chats(self, store: StateStore) -> None:
        """Each chat has its own session; saving one leaves the other as it was."""
        mine = Session(chat_id=CHAT, turn_count=1)
        mine.attach(_change(CHAT, 1), now=T0)
        theirs = Session(chat_id=OTHER_CHAT, turn_count=7)
        theirs.attach(_change(OTHER_CHAT, 1), now=T0)  # the same change id in another chat
        await store.save_session(mine)
        await store.save_session(theirs)
        expected_theirs = copy.deepcopy(theirs)

        assert mine.latest_change is not None
        mine.latest_change.reject(ALICE, now=T0)
        mine.turn_count = 2
        await store.save_session(mine)

        assert (await store.load_session(CHAT), await store.load_session(OTHER_CHAT)) == (mine, expected_theirs)

    # --- audit

    async def test_audit_trail_of_unknown_chat_is_empty(self, store: StateStore) -> None:
        """A chat without records has an empty trail."""
        assert list(await store.audit_trail(CHAT)) == []

    async def test_audit_trail_is_oldest_first(self, store: StateStore) -> None:
        """Records come back in the order they were appended."""
        records = [_record(CHAT, n) for n in range(5)]
        for record in records:
            await store.append_audit(record)

        assert list(await store.audit_trail(CHAT)) == records

    async def test_audit_limit_keeps_the_latest(self, store: StateStore) -> None:
        """With a limit, the trail is the latest *limit* records, still oldest first."""
        records = [_record(CHAT, n) for n in range(30)]
        for record in records:
            await store.append_audit(record)

        assert (
            list(await store.audit_trail(CHAT, 3)),
            list(await store.audit_trail(CHAT)),
            list(await store.audit_trail(CHAT, 100)),
            list(await store.audit_trail(CHAT, 0)),
        ) == (records[-3:], records[-20:], records, [])

    async def test_audit_is_isolated_between_chats(self, store: StateStore) -> None:
        """A chat's trail holds only its own records, even when chats interleave."""
        mine: list[AuditRecord] = []
        theirs: list[AuditRecord] = []
        for n in range(6):
            record = _record(CHAT if n % 2 else OTHER_CHAT, n)
            (mine if n % 2 else theirs).append(record)
            await store.append_audit(record)

        assert (list(await store.audit_trail(CHAT)), list(await store.audit_trail(OTHER_CHAT))) == (mine, theirs)

    @_hypothesis
    @given(record=audit_records())
    async def test_audit_record_round_trips(self, open_store: OpenStore, record: AuditRecord) -> None:
        """Every field of an audit record comes back unchanged."""
        async with open_store() as store:
            await store.append_audit(record)

            assert list(await store.audit_trail(record.chat_id, 1)) == [record]

    async def test_audit_does_not_touch_sessions(self, store: StateStore) -> None:
        """Appending audit records creates no session."""
        await store.append_audit(_record(CHAT, 1))

        assert await store.load_session(CHAT) is None

    async def test_evolved_values_are_stored_independently(self, store: StateStore) -> None:
        """Two saves of different values of the same chat leave only the latter."""
        first = Session(chat_id=CHAT, agent_session_id="a")
        second = attrs.evolve(first, agent_session_id="b", turn_count=4)

        await store.save_session(first)
        await store.save_session(second)

        assert await store.load_session(CHAT) == second
