"""
A Hypothesis state machine any `StateStore` runs against the in-memory reference, step by step.

Subclass `StateStoreMachine`, implement `open_store` (and `reopen` and `close` if the store has a lifetime), then
expose ``TestMyStore = MyMachine.TestCase`` with settings from `voicecoder.testing.profiles.budget`::

    class SqliteMachine(StateStoreMachine):
        async def open_store(self) -> StateStore:
            self.path = Path(tempfile.mkdtemp()) / "state.sqlite3"
            return SqliteStateStore(self.path)

        async def reopen(self, store: StateStore) -> StateStore:
            await store.close()
            return SqliteStateStore(self.path)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from anyio.from_thread import start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from voicecoder.domain.model import (
    Baseline,
    ChangeId,
    ChatId,
    CommitInfo,
    Diff,
    PendingChange,
    Prompt,
    Session,
    TurnId,
    UserId,
)
from voicecoder.domain.ports import StateStore
from voicecoder.testing.contracts.state_store import audit_records
from voicecoder.testing.fakes import InMemoryStateStore

__all__ = ["StateStoreMachine"]

CHATS = (ChatId(1), ChatId(-100_200), ChatId(3))
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class StateStoreMachine(RuleBasedStateMachine):
    """
    Drives the store under test and `InMemoryStateStore` (the reference) with the same steps and compares them.

    Steps go through the domain's own transitions (record a turn, attach a change, approve, reject, undo, clear)
    and append audit records; `restart` reopens the store under test, as after a restart of the process. After
    every step both stores must answer every read the same.
    """

    def __init__(self) -> None:
        super().__init__()
        self.portal_cm = start_blocking_portal()
        self.portal = self.portal_cm.__enter__()
        self.fake = InMemoryStateStore()
        self.store = self.portal.call(self.open_store)
        self.now = T0
        self.serial = 0

    async def open_store(self) -> StateStore:
        """Override: the store under test, empty (called once per example, inside the machine's event loop)."""
        raise NotImplementedError("override open_store() to return the store under test, empty")

    async def reopen(self, store: StateStore) -> StateStore:
        """Override: close *store* and open it again on the same data (the default keeps it: nothing to restart)."""
        return store

    async def close(self, store: StateStore) -> None:
        """Override: release *store* at the end of an example."""

    def teardown(self) -> None:
        self.portal.call(self.close, self.store)
        self.portal_cm.__exit__(None, None, None)

    def both(self, chat: ChatId) -> Session:
        fake = self.portal.call(self.fake.load_session, chat)
        real = self.portal.call(self.store.load_session, chat)
        assert real == fake
        return real if real is not None else Session(chat_id=chat)

    def save(self, session: Session) -> None:
        self.portal.call(self.fake.save_session, session)
        self.portal.call(self.store.save_session, session)

    def tick(self) -> datetime:
        self.now += timedelta(seconds=37)
        return self.now

    @rule(chat=st.sampled_from(CHATS), agent_session=st.none() | st.sampled_from(["s1", "s2"]))
    def turn_with_change(self, chat: ChatId, agent_session: str | None) -> None:
        session = self.both(chat)
        now = self.tick()
        self.serial += 1
        turn = TurnId(f"turn-{self.serial}")
        session.record_turn(agent_session, now=now)
        session.attach(
            PendingChange(
                id=ChangeId(f"{self.serial:08x}"),
                turn_id=turn,
                chat_id=chat,
                prompt=Prompt.typed(f"step {self.serial}"),
                baseline=Baseline(turn_id=turn, snapshot=f"{self.serial:040x}"),
                diff=Diff(unified=f"+{self.serial}\n", fingerprint=f"{self.serial:064x}"),
                created_at=now,
                agent_session_id=agent_session,
            ),
            now=now,
        )
        self.save(session)

    @rule(chat=st.sampled_from(CHATS), approve=st.booleans())
    def decide(self, chat: ChatId, approve: bool) -> None:
        session = self.both(chat)
        if session.latest_change is None or not session.latest_change.is_pending:
            return
        now = self.tick()
        if approve:
            session.latest_change.approve(UserId(9), CommitInfo("c" * 40, "msg\n", "A <a@b>", now), now=now)
        else:
            session.latest_change.reject(UserId(9), now=now)
        session.settle(session.latest_change)
        self.save(session)

    @rule(chat=st.sampled_from(CHATS))
    def undo(self, chat: ChatId) -> None:
        fake = self.portal.call(self.fake.approved_changes, chat, 1)
        real = self.portal.call(self.store.approved_changes, chat, 1)
        assert list(real) == list(fake)
        if not real:
            return
        target = real[0]
        target.revert(f"{self.serial:040x}", now=self.tick())
        self.portal.call(self.fake.save_change, target)
        self.portal.call(self.store.save_change, target)

    @rule(chat=st.sampled_from(CHATS))
    def clear(self, chat: ChatId) -> None:
        session = self.both(chat)
        session.clear(now=self.tick())
        self.save(session)

    @rule(data=st.data(), chat=st.sampled_from(CHATS))
    def audit(self, data: st.DataObject, chat: ChatId) -> None:
        record = data.draw(audit_records(chat=chat))
        self.portal.call(self.fake.append_audit, record)
        self.portal.call(self.store.append_audit, record)

    @rule()
    def restart(self) -> None:
        self.store = self.portal.call(self.reopen, self.store)

    @invariant()
    def stores_agree(self) -> None:
        for chat in CHATS:
            self.both(chat)
            for limit in (1, 4):
                fake = self.portal.call(self.fake.audit_trail, chat, limit)
                real = self.portal.call(self.store.audit_trail, chat, limit)
                assert list(real) == list(fake)
                approved = self.portal.call(self.fake.approved_changes, chat, limit)
                assert list(self.portal.call(self.store.approved_changes, chat, limit)) == list(approved)
