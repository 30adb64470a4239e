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

The tests run on whatever ``anyio_backend`` your conftest chooses. The Hypothesis strategies below
(`sessions`, `pending_changes`, `audit_records`, …) are public so adapter-specific tests can reuse them.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecoder.domain.model import (
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeKind,
    ChangeStatus,
    ChatId,
    CommitInfo,
    Diff,
    FileChange,
    Ownership,
    PendingChange,
    Prompt,
    PromptSource,
    SecretFinding,
    Session,
    TurnId,
    UserId,
)
from voicecoder.domain.ports import StateStore

__all__ = [
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

# --- strategies ---------------------------------------------------------------------------
# Explicit on purpose: attrs validators (id patterns) defeat `st.builds` inference.

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_HEX = "0123456789abcdef"


def chat_ids() -> st.SearchStrategy[ChatId]:
    """Any 64-bit chat id (Telegram groups are negative)."""
    return _INT64.map(ChatId)


def user_ids() -> st.SearchStrategy[UserId]:
    return _INT64.map(UserId)


def change_ids() -> st.SearchStrategy[ChangeId]:
    return st.text(alphabet=_HEX, min_size=8, max_size=32).map(ChangeId)


def turn_ids() -> st.SearchStrategy[TurnId]:
    return st.from_regex(r"[0-9a-zA-Z_-]{1,64}", fullmatch=True).map(TurnId)


def _fixed_offsets() -> st.SearchStrategy[timezone]:
    limit = timedelta(hours=23, minutes=59)
    return st.timedeltas(min_value=-limit, max_value=limit).map(timezone)


def aware_datetimes() -> st.SearchStrategy[datetime]:
    """
    Timezone-aware datetimes in IANA zones (including DST gaps and folds), fixed offsets and UTC.

    Kept a day away from `datetime.min`/`max` so that converting to UTC cannot overflow.
    """
    return st.datetimes(
        min_value=datetime(1, 1, 3),  # noqa: DTZ001 - bounds of a naive range, zones come from `timezones`
        max_value=datetime(9999, 12, 29),  # noqa: DTZ001
        timezones=st.one_of(st.timezones(), _fixed_offsets(), st.just(UTC)),
    )


def _hex_digests(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_HEX, min_size=size, max_size=size)


def prompts() -> st.SearchStrategy[Prompt]:
    return st.builds(
        Prompt,
        text=st.text(),
        source=st.sampled_from(PromptSource),
        confidence=st.none() | st.floats(min_value=0.0, max_value=1.0),
        audio_digest=st.none() | _hex_digests(64),
    )


def file_changes() -> st.SearchStrategy[FileChange]:
    modes = st.none() | st.sampled_from([0o100644, 0o100755, 0o120000, 0o160000]) | st.integers(0, 0o177777)
    return st.builds(
        FileChange,
        path=st.text(min_size=1),
        kind=st.sampled_from(ChangeKind),
        additions=st.integers(min_value=0, max_value=2**40),
        deletions=st.integers(min_value=0, max_value=2**40),
        binary=st.booleans(),
        old_mode=modes,
        new_mode=modes,
        owner=st.sampled_from(Ownership),
    )


def diffs() -> st.SearchStrategy[Diff]:
    return st.builds(
        Diff,
        unified=st.text(),
        files=st.lists(file_changes(), max_size=4).map(tuple),
        fingerprint=_hex_digests(64) | st.just(""),
        yours=st.text(),
        late=st.lists(file_changes(), max_size=2).map(tuple),
        late_unified=st.text(),
    )


def baselines(turn: TurnId) -> st.SearchStrategy[Baseline]:
    """A baseline of *turn*, with or without a turn-end snapshot."""
    return st.builds(
        Baseline, turn_id=st.just(turn), snapshot=_hex_digests(40) | st.text(), turn_end=st.none() | _hex_digests(40)
    )


def secret_findings() -> st.SearchStrategy[SecretFinding]:
    return st.builds(
        SecretFinding, path=st.text(min_size=1), line=st.integers(min_value=1, max_value=10**7), kind=st.text()
    )


def commit_infos() -> st.SearchStrategy[CommitInfo]:
    return st.builds(
        CommitInfo,
        sha=_hex_digests(40),
        message=st.text(min_size=1),
        author=st.text(),
        committed_at=aware_datetimes(),
    )


@st.composite
def pending_changes(
    draw: st.DrawFn, *, chat: ChatId | None = None, status: ChangeStatus | None = None
) -> PendingChange:
    """A change of *chat* in *status* (any when None), with the decision fields that status implies."""
    chat = chat if chat is not None else draw(chat_ids())
    status = status if status is not None else draw(st.sampled_from(ChangeStatus))
    turn = draw(turn_ids())
    decided = status is not ChangeStatus.PENDING
    approved = status in (ChangeStatus.APPROVED, ChangeStatus.AUTO_APPROVED)
    return PendingChange(
        id=draw(change_ids()),
        turn_id=turn,
        chat_id=chat,
        prompt=draw(prompts()),
        baseline=draw(baselines(turn)),
        diff=draw(diffs()),
        created_at=draw(aware_datetimes()),
        agent_session_id=draw(st.none() | st.text(min_size=1)),
        findings=tuple(draw(st.lists(secret_findings(), max_size=3))),
        status=status,
        decided_at=draw(aware_datetimes()) if decided else None,
        decided_by=draw(user_ids()) if decided and status is not ChangeStatus.SUPERSEDED else None,
        commit=draw(commit_infos()) if approved else None,
        message_ids=tuple(draw(st.lists(st.integers(min_value=1, max_value=2**31 - 1), max_size=3))),
    )


@st.composite
def sessions(
    draw: st.DrawFn,
    *,
    chat: ChatId | None = None,
    with_pending: bool | None = None,
    status: ChangeStatus | None = None,
) -> Session:
    """A session of *chat*; with a pending change in *status* when *with_pending* (either when None)."""
    chat = chat if chat is not None else draw(chat_ids())
    has_pending = with_pending if with_pending is not None else draw(st.booleans())
    counts = st.integers(min_value=0, max_value=2**31)
    return Session(
        chat_id=chat,
        agent_session_id=draw(st.none() | st.text(min_size=1)),
        turn_count=draw(counts),
        compaction_threshold=draw(st.integers(min_value=1, max_value=1000)),
        approved_count=draw(counts),
        rejected_count=draw(counts),
        pending=draw(pending_changes(chat=chat, status=status)) if has_pending else None,
        started_at=draw(st.none() | aware_datetimes()),
        last_activity=draw(st.none() | aware_datetimes()),
        open_turn=draw(st.none() | turn_ids().flatmap(baselines)),
        tool_rules=tuple(draw(st.lists(st.text(min_size=1), max_size=3, unique=True))),
    )


def audit_records(*, chat: ChatId | None = None) -> st.SearchStrategy[AuditRecord]:
    optional_text = st.none() | st.text()
    return st.builds(
        AuditRecord,
        at=aware_datetimes(),
        chat_id=st.just(chat) if chat is not None else chat_ids(),
        user_id=st.none() | user_ids(),
        action=st.sampled_from(["voice", "prompt", "change", "approve", "reject", "auto-approve"]) | st.text(),
        change_id=st.none() | change_ids(),
        audio_digest=st.none() | _hex_digests(64),
        transcript=optional_text,
        prompt=optional_text,
        agent_session_id=optional_text,
        diff_fingerprint=st.none() | _hex_digests(64),
        commit_sha=st.none() | _hex_digests(40),
        detail=optional_text,
    )


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
    return AuditRecord(at=T0 + timedelta(seconds=n), chat_id=chat, user_id=ALICE, action="prompt", prompt=f"#{n}")


_hypothesis = settings(
    max_examples=40,
    deadline=None,  # a durable store syncs to disk on every write; latency varies on shared machines
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # every example writes distinct state
)


class StateStoreContract:
    """What `StateStore.load_session`, `save_session`, `load_change`, `append_audit` and `audit_trail` promise."""

    @pytest.fixture
    async def store(self) -> AsyncIterator[StateStore]:
        """Override: yield a fresh, empty store and close it afterwards."""
        raise NotImplementedError
        yield  # noqa: PT022 - an async generator, the shape overrides have

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

    # --- sessions

    async def test_unknown_chat_has_no_session(self, store: StateStore) -> None:
        """A chat never saved loads as None, not as an empty session."""
        assert await store.load_session(CHAT) is None

    @_hypothesis
    @given(session=sessions(with_pending=False))
    async def test_session_without_pending_round_trips(self, store: StateStore, session: Session) -> None:
        """A session without a change loads equal to what was saved."""
        await store.save_session(session)

        assert await store.load_session(session.chat_id) == session

    @_hypothesis
    @given(session=sessions(with_pending=True))
    async def test_session_with_pending_round_trips(self, store: StateStore, session: Session) -> None:
        """A session and its change, in any status, load equal to what was saved."""
        await store.save_session(session)

        loaded = await store.load_session(session.chat_id)

        assert loaded is not None
        assert loaded == session
        assert loaded.pending == session.pending

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
        assert loaded.pending is not None
        assert loaded.pending.status == status
        assert loaded == session

    @_hypothesis
    @given(session=sessions(with_pending=True), moment=aware_datetimes())
    async def test_datetimes_keep_zone_and_offset(self, store: StateStore, session: Session, moment: datetime) -> None:
        """Aware datetimes come back as the same instant with the same wall time, offset and zone."""
        assert session.pending is not None
        session.last_activity = moment
        session.pending.created_at = moment

        await store.save_session(session)
        loaded = await store.load_session(session.chat_id)

        assert loaded is not None
        assert loaded.pending is not None
        for got in (loaded.last_activity, loaded.pending.created_at):
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
        assert loaded.pending is not None
        assert (
            loaded.pending.status,
            loaded.pending.decided_by,
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
        assert loaded.pending == newer

    async def test_pending_can_be_cleared(self, store: StateStore) -> None:
        """A session saved without a change after one with a change loads without one."""
        session = Session(chat_id=CHAT)
        session.attach(_change(CHAT, 1), now=T0)
        await store.save_session(session)

        session.pending = None
        await store.save_session(session)

        assert await store.load_session(CHAT) == session

    async def test_store_keeps_state_not_references(self, store: StateStore) -> None:
        """Mutating a saved or a loaded session changes nothing in the store until it is saved."""
        session = Session(chat_id=CHAT, turn_count=3)
        session.attach(_change(CHAT, 1), now=T0)
        await store.save_session(session)
        saved = copy.deepcopy(session)

        session.turn_count = 99
        assert session.pending is not None
        session.pending.reject(BOB, now=T0)
        loaded = await store.load_session(CHAT)
        assert loaded is not None
        assert loaded.pending is not None
        loaded.pending.reject(ALICE, now=T0)
        loaded.agent_session_id = "changed"

        assert await store.load_session(CHAT) == saved

    async def test_change_events_are_not_stored(self, store: StateStore) -> None:
        """Domain events are transient: a loaded change has none, whatever the saved one had."""
        session = Session(chat_id=CHAT)
        change = _change(CHAT, 1)
        session.attach(change, now=T0)
        change.reject(ALICE, now=T0)
        assert change.events

        await store.save_session(session)
        loaded = await store.load_session(CHAT)

        assert loaded is not None
        assert loaded.pending is not None
        assert loaded.pending.events == []

    async def test_sessions_are_isolated_between_chats(self, store: StateStore) -> None:
        """Each chat has its own session; saving one leaves the other as it was."""
        mine = Session(chat_id=CHAT, turn_count=1)
        mine.attach(_change(CHAT, 1), now=T0)
        theirs = Session(chat_id=OTHER_CHAT, turn_count=7)
        theirs.attach(_change(OTHER_CHAT, 1), now=T0)  # the same change id in another chat
        await store.save_session(mine)
        await store.save_session(theirs)
        expected_theirs = copy.deepcopy(theirs)

        assert mine.pending is not None
        mine.pending.reject(ALICE, now=T0)
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
    async def test_audit_record_round_trips(self, store: StateStore, record: AuditRecord) -> None:
        """Every field of an audit record comes back unchanged."""
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
