"""The unit of work: one load and one save per operation on a session, none when it fails or changes nothing."""

from __future__ import annotations

import anyio
import attrs
import pytest

from tests.unit.domain.scenario import ALICE, CHAT
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.model import ChatId, Session
from voicecoder.domain.unit_of_work import Sessions
from voicecoder.testing.fakes import AgentScript, InMemoryStateStore, build_voicecoder


@attrs.define
class CountingStore(InMemoryStateStore):
    """The in-memory store, counting the session loads and saves it serves."""

    loads: int = 0
    saves: int = 0

    def take(self) -> tuple[int, int]:
        """(loads, saves) since the last call."""
        counts = (self.loads, self.saves)
        self.loads = self.saves = 0
        return counts

    async def load_session(self, chat: ChatId, /) -> Session | None:
        self.loads += 1
        return await super().load_session(chat)

    async def save_session(self, session: Session, /) -> None:
        self.saves += 1
        await super().save_session(session)


@pytest.fixture(name="store")
def _store() -> CountingStore:
    return CountingStore()


class TestSessions:
    async def test_update_loads_once_and_saves_once(self, store: CountingStore) -> None:
        """An operation that changes the session costs one load and one save, and the change is stored."""
        sessions = Sessions(store, compaction_threshold=20)

        async with sessions.update(CHAT) as session:
            session.allow_tool("Bash(pytest *)")

        saved = store.sessions.get(CHAT)
        assert (store.take(), saved.tool_rules if saved else None) == ((1, 1), ("Bash(pytest *)",))

    async def test_nothing_is_saved_when_the_operation_fails(self, store: CountingStore) -> None:
        """An operation that raises leaves the stored session as it was (its changes are not saved)."""
        sessions = Sessions(store, compaction_threshold=20)

        async def failing() -> None:
            async with sessions.update(CHAT) as session:
                session.allow_tool("Bash(rm *)")
                raise StateStoreError("boom")

        with pytest.raises(StateStoreError):
            await failing()

        assert (store.take(), store.sessions.get(CHAT)) == ((1, 0), None)

    async def test_nothing_is_saved_when_nothing_changed(self, store: CountingStore) -> None:
        """Looking at a session inside a unit of work writes nothing."""
        sessions = Sessions(store, compaction_threshold=20)

        async with sessions.update(CHAT) as session:
            assert session.tool_rules == ()

        assert store.take() == (1, 0)

    async def test_concurrent_updates_lose_nothing(self, store: CountingStore) -> None:
        """Two operations on one session run one after the other: both changes are stored."""
        sessions = Sessions(store, compaction_threshold=20)
        inside = anyio.Event()

        async def first() -> None:
            async with sessions.update(CHAT) as session:
                inside.set()
                await anyio.lowlevel.checkpoint()
                session.allow_tool("Bash(pytest *)")

        async def second() -> None:
            await inside.wait()
            async with sessions.update(CHAT) as session:
                session.allow_tool("Bash(ruff *)")

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)

        saved = store.sessions.get(CHAT)
        assert saved is not None
        assert saved.tool_rules == ("Bash(pytest *)", "Bash(ruff *)")


class TestStoreTraffic:
    """
    What each use case costs in session loads and saves.

    Before the unit of work: a prompt with a change 5 loads and 4 saves, without one 4 and 3; approve and reject
    2 loads and 1 save each.
    """

    async def test_a_prompt_with_a_change(self, store: CountingStore) -> None:
        """Begin, settle, and remembering the summary's message: three loads, three saves."""
        app, fakes = build_voicecoder(allowed_users=[ALICE.value], store=store)
        fakes.agent.script(AgentScript(writes={"a.txt": b"a\n"}))

        await app.prompt(CHAT, ALICE, "write a")

        assert store.take() == (3, 3)

    async def test_a_prompt_without_a_change(self, store: CountingStore) -> None:
        """Begin and settle: two loads, two saves."""
        app, _ = build_voicecoder(allowed_users=[ALICE.value], store=store)

        await app.prompt(CHAT, ALICE, "just answer")

        assert store.take() == (2, 2)

    async def test_approve_and_reject(self, store: CountingStore) -> None:
        """A decision is one unit of work: one load, one save."""
        app, fakes = build_voicecoder(allowed_users=[ALICE.value], store=store)
        fakes.agent.script(AgentScript(writes={"a.txt": b"a\n"}), AgentScript(writes={"b.txt": b"b\n"}))
        await app.prompt(CHAT, ALICE, "write a")
        store.take()

        assert await app.approve(CHAT, ALICE) is not None
        approved = store.take()
        await app.prompt(CHAT, ALICE, "write b")
        store.take()
        assert await app.reject(CHAT, ALICE)

        assert (approved, store.take()) == ((1, 1), (1, 1))
