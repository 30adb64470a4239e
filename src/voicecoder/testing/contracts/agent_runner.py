"""
The `AgentRunner` contract as an abstract pytest class.

Subclass `AgentRunnerContract` in a ``test_*.py`` module, name the subclass ``Test…`` and override
two fixtures: ``runner`` (an agent that answers prompts normally and knows no session yet) and
``hanging_runner`` (an agent whose next run starts, announces its session, and then never finishes
on its own). Override `AgentRunnerContract.assert_nothing_left` to check that a cancelled run left no
process (or thread, or connection) behind::

    class TestMyAgent(AgentRunnerContract):
        @pytest.fixture
        def runner(self, tmp_path: Path) -> AgentRunner:
            return MyAgent(workdir=tmp_path)

        @pytest.fixture
        def hanging_runner(self, tmp_path: Path) -> AgentRunner:
            return MyAgent(workdir=tmp_path, model_url=BLACK_HOLE)

The suite checks only what the port's docstrings promise; it never inspects the answer's wording.
"""

from __future__ import annotations

import time

import anyio
import pytest

from voicecoder.domain.model import AgentEvent, AgentRequest, Compacted, SessionStarted
from voicecoder.domain.ports import AgentRunner

__all__ = ["AgentRunnerContract", "EventLog"]


class EventLog:
    """An EventSink that keeps the events and can wait for the first one."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self._first = anyio.Event()

    async def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)
        self._first.set()

    async def wait_for_first(self, timeout_s: float = 30.0) -> None:
        with anyio.fail_after(timeout_s):
            await self._first.wait()


class AgentRunnerContract:
    """What every AgentRunner must do. Not collected itself (no ``Test`` prefix)."""

    @pytest.fixture
    def runner(self) -> AgentRunner:
        raise NotImplementedError

    @pytest.fixture
    def hanging_runner(self) -> AgentRunner:
        raise NotImplementedError

    def assert_nothing_left(self) -> None:
        """Override: fail if a stopped run left anything running."""

    async def test_first_turn_announces_its_session(self, runner: AgentRunner) -> None:
        """A first turn succeeds, names its session, and announces it with SessionStarted first."""
        log = EventLog()

        result = await runner.run(AgentRequest("say hello", session_id=None, resume=False), log)

        assert result.success is True
        assert result.session_id
        assert isinstance(log.events[0], SessionStarted)
        assert log.events[0].session_id == result.session_id

    async def test_resume_keeps_the_session(self, runner: AgentRunner) -> None:
        """A resumed turn continues the same session without notices."""
        first = await runner.run(AgentRequest("first", session_id=None, resume=False), EventLog())

        second = await runner.run(AgentRequest("second", session_id=first.session_id, resume=True), EventLog())

        assert second.success is True
        assert second.session_id == first.session_id
        assert second.notices == ()

    async def test_compact_keeps_the_session(self, runner: AgentRunner) -> None:
        """Compacting a session with history succeeds, reports Compacted, and keeps the session."""
        first = await runner.run(AgentRequest("remember this", session_id=None, resume=False), EventLog())
        assert first.session_id is not None
        log = EventLog()

        result = await runner.compact(first.session_id, log)

        assert result.success is True
        assert result.session_id == first.session_id
        assert any(isinstance(e, Compacted) for e in log.events)

    async def test_cancel_stops_the_run(self, hanging_runner: AgentRunner) -> None:
        """Cancelling the calling task ends a running turn promptly and leaves nothing behind."""
        log = EventLog()

        async with anyio.create_task_group() as tg:
            tg.start_soon(hanging_runner.run, AgentRequest("never ends", session_id=None, resume=False), log)
            await log.wait_for_first()
            started = time.monotonic()
            tg.cancel_scope.cancel()

        assert time.monotonic() - started < 10
        self.assert_nothing_left()
