from __future__ import annotations

import itertools
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from voicecoder.adapters.sqlite.state_store import SqliteStateStore
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
from voicecoder.testing.contracts.state_store import OpenStore, StateStoreContract, audit_records
from voicecoder.testing.fakes import InMemoryStateStore


class TestInMemoryStateStore(StateStoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        """The fake every domain test uses."""

        @asynccontextmanager
        async def fresh() -> AsyncIterator[StateStore]:
            store = InMemoryStateStore()
            yield store
            await store.close()

        return fresh

    @pytest.fixture
    async def unavailable_store(self) -> AsyncIterator[StateStore]:
        """A closed fake."""
        store = InMemoryStateStore()
        await store.close()
        yield store
        assert (store.sessions, store.changes, store.audit) == ({}, {}, [])


class TestSqliteStateStore(StateStoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        """A fresh database file each time, closed afterwards."""
        files = itertools.count()

        @asynccontextmanager
        async def fresh() -> AsyncIterator[StateStore]:
            store = SqliteStateStore(tmp_path / "data" / f"state-{next(files)}.sqlite3")
            try:
                yield store
            finally:
                await store.close()

        return fresh

    @pytest.fixture
    async def unavailable_store(self, tmp_path: Path) -> AsyncIterator[StateStore]:
        """A store whose path is a directory's place taken by a file: it cannot open the database."""
        (tmp_path / "data").write_text("not a directory\n")
        store = SqliteStateStore(tmp_path / "data" / "state.sqlite3")
        yield store
        await store.close()


CHATS = (ChatId(1), ChatId(-100_200), ChatId(3))
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeVersusSqlite(RuleBasedStateMachine):
    """
    Drives InMemoryStateStore and SqliteStateStore with the same use-case-like steps and compares them.

    Steps go through the domain's own transitions (record a turn, attach a change, approve, reject, clear), and
    sometimes the SQLite store is closed and reopened, as after a restart.
    """

    def __init__(self) -> None:
        super().__init__()
        self.portal_cm = start_blocking_portal()
        self.portal = self.portal_cm.__enter__()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "state.sqlite3"
        self.fake = InMemoryStateStore()
        self.sqlite = SqliteStateStore(self.path)
        self.now = T0
        self.serial = 0

    def teardown(self) -> None:
        self.portal.call(self.sqlite.close)
        self.portal_cm.__exit__(None, None, None)
        self.tmp.cleanup()

    def both(self, chat: ChatId) -> Session:
        fake = self.portal.call(self.fake.load_session, chat)
        real = self.portal.call(self.sqlite.load_session, chat)
        assert real == fake
        return real if real is not None else Session(chat_id=chat)

    def save(self, session: Session) -> None:
        self.portal.call(self.fake.save_session, session)
        self.portal.call(self.sqlite.save_session, session)

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
        real = self.portal.call(self.sqlite.approved_changes, chat, 1)
        assert list(real) == list(fake)
        if not real:
            return
        target = real[0]
        target.revert(f"{self.serial:040x}", now=self.tick())
        self.portal.call(self.fake.save_change, target)
        self.portal.call(self.sqlite.save_change, target)

    @rule(chat=st.sampled_from(CHATS))
    def clear(self, chat: ChatId) -> None:
        session = self.both(chat)
        session.clear(now=self.tick())
        self.save(session)

    @rule(data=st.data(), chat=st.sampled_from(CHATS))
    def audit(self, data: st.DataObject, chat: ChatId) -> None:
        record = data.draw(audit_records(chat=chat))
        self.portal.call(self.fake.append_audit, record)
        self.portal.call(self.sqlite.append_audit, record)

    @rule()
    def restart(self) -> None:
        self.portal.call(self.sqlite.close)
        self.sqlite = SqliteStateStore(self.path)

    @invariant()
    def stores_agree(self) -> None:
        for chat in CHATS:
            self.both(chat)
            for limit in (1, 4):
                fake = self.portal.call(self.fake.audit_trail, chat, limit)
                real = self.portal.call(self.sqlite.audit_trail, chat, limit)
                assert list(real) == list(fake)
                approved = self.portal.call(self.fake.approved_changes, chat, limit)
                assert list(self.portal.call(self.sqlite.approved_changes, chat, limit)) == list(approved)


FakeVersusSqlite.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestFakeVersusSqlite = FakeVersusSqlite.TestCase
