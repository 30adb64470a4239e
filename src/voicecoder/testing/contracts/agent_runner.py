"""
The `AgentRunner` contract as an abstract pytest class.

Subclass `AgentRunnerContract` in a ``test_*.py`` module, name the subclass ``Test…`` and override the
fixtures, each a fresh runner whose *next* run behaves as named:

* ``runner``: answers prompts normally and knows no session yet;
* ``hanging_runner``: starts, announces its session, then never finishes on its own;
* ``asking_runner``: asks its `ToolGate` about exactly one tool use before it answers, and reports the
  tool's outcome (a `ToolFinished` for the asked tool; a denied one also in ``permission_denials``);
* ``missing_runner``: its agent is not installed;
* ``slow_runner``: does not finish within its time limit;
* ``crashing_runner``: its agent dies without a result (also when asked to compact);

and `AgentRunnerContract.assert_nothing_left`, which must fail if a stopped run left anything running
(a process, a thread, a connection). It is called with ``idle_agent_may_remain=True`` right after a run
was stopped (an adapter may keep an idle agent for the session's next turn) and without it after
``end_session``. Leaving it unimplemented fails every test that needs it, with a message saying so::

    class TestMyAgent(AgentRunnerContract):
        @pytest.fixture
        def runner(self, tmp_path: Path) -> AgentRunner:
            return MyAgent(workdir=tmp_path)
        ...
        def assert_nothing_left(self, *, idle_agent_may_remain: bool = False) -> None:
            assert my_processes() == ([] if not idle_agent_may_remain else my_processes()[:1])

The suite checks only what the port's docstrings promise (every ``Raises:`` line included); it never
inspects the answer's wording, and it orders steps by events, never by time.
"""

from __future__ import annotations

import anyio
import pytest

from voicecoder.domain.errors import AgentNotInstalledError, AgentRunError, AgentTimeoutError
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    Compacted,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolRequest,
)
from voicecoder.domain.ports import AgentRunner

__all__ = ["AgentRunnerContract", "EventLog", "RecordingGate"]


class EventLog:
    """An EventSink that keeps the events and can wait for the first one."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []
        self._first = anyio.Event()

    async def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)
        self._first.set()

    async def wait_for_first(self) -> None:
        await self._first.wait()

    @property
    def session_id(self) -> str | None:
        return next((e.session_id for e in self.events if isinstance(e, SessionStarted)), None)


class RecordingGate:
    """A ToolGate that records each request, signals it, and answers *decision* (or waits until cancelled)."""

    def __init__(self, decision: ToolDecision | None = None) -> None:
        self.requests: list[ToolRequest] = []
        self.decision = decision
        self.asked = anyio.Event()
        self.cancelled = False

    async def __call__(self, request: ToolRequest) -> ToolDecision:
        self.requests.append(request)
        self.asked.set()
        if self.decision is not None:
            return self.decision
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        raise AssertionError("unreachable")  # pragma: no cover


class AgentRunnerContract:
    """What every AgentRunner must do. Not collected itself (no ``Test`` prefix)."""

    @pytest.fixture
    def runner(self) -> AgentRunner:
        raise NotImplementedError("provide a runner that answers prompts normally")

    @pytest.fixture
    def hanging_runner(self) -> AgentRunner:
        raise NotImplementedError("provide a runner whose next run never finishes on its own")

    @pytest.fixture
    def asking_runner(self) -> AgentRunner:
        raise NotImplementedError("provide a runner whose next run asks its ToolGate about one tool use")

    @pytest.fixture
    def missing_runner(self) -> AgentRunner:
        raise NotImplementedError("provide a runner whose agent is not installed")

    @pytest.fixture
    def slow_runner(self) -> AgentRunner:
        raise NotImplementedError("provide a runner whose next run exceeds its time limit")

    @pytest.fixture
    def crashing_runner(self) -> AgentRunner:
        raise NotImplementedError("provide a runner whose agent dies without a result")

    def assert_nothing_left(self, *, idle_agent_may_remain: bool = False) -> None:
        """Override: fail if a stopped run left anything running."""
        raise NotImplementedError(
            "override assert_nothing_left() to check that a stopped run left no process, thread or connection"
        )

    # --- runs -------------------------------------------------------------------------------

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

    async def test_end_session_then_resume(self, runner: AgentRunner) -> None:
        """After end_session (twice: harmless) the conversation can still be resumed."""
        first = await runner.run(AgentRequest("first", session_id=None, resume=False), EventLog())
        assert first.session_id is not None
        await runner.end_session(first.session_id)
        await runner.end_session(first.session_id)

        second = await runner.run(AgentRequest("second", session_id=first.session_id, resume=True), EventLog())

        assert (second.success, second.session_id) == (True, first.session_id)
        await runner.end_session(first.session_id)
        self.assert_nothing_left()

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
        """Cancelling the calling task ends a running turn and leaves nothing of it behind."""
        log = EventLog()

        async with anyio.create_task_group() as tg:
            tg.start_soon(hanging_runner.run, AgentRequest("never ends", session_id=None, resume=False), log)
            await log.wait_for_first()
            tg.cancel_scope.cancel()

        self.assert_nothing_left(idle_agent_may_remain=True)
        assert log.session_id is not None
        await hanging_runner.end_session(log.session_id)
        self.assert_nothing_left()

    # --- tools ------------------------------------------------------------------------------

    async def test_an_allowed_tool_runs(self, asking_runner: AgentRunner) -> None:
        """The tool use is passed to the gate once; allowed, it runs and the turn finishes."""
        gate = RecordingGate(ToolDecision.allowed())
        log = EventLog()

        result = await asking_runner.run(AgentRequest("use a tool", session_id=None, resume=False), log, gate)

        (request,) = gate.requests
        assert result.success is True
        finished = [e for e in log.events if isinstance(e, ToolFinished) and e.tool_use_id == request.tool_use_id]
        assert [e.ok for e in finished] == [True]
        assert result.permission_denials == ()

    async def test_a_denial_reaches_the_agent(self, asking_runner: AgentRunner) -> None:
        """A denied tool does not run; the agent gets the denial's message as the tool's outcome."""
        gate = RecordingGate(ToolDecision.denied("not now: contract says no"))
        log = EventLog()

        result = await asking_runner.run(AgentRequest("use a tool", session_id=None, resume=False), log, gate)

        (request,) = gate.requests
        finished = [e for e in log.events if isinstance(e, ToolFinished) and e.tool_use_id == request.tool_use_id]
        assert [e.ok for e in finished] == [False]
        assert "not now: contract says no" in finished[0].summary
        assert [d.tool_use_id for d in result.permission_denials] == [request.tool_use_id]

    async def test_without_a_gate_the_tool_is_refused(self, asking_runner: AgentRunner) -> None:
        """With nobody to ask, the tool use is refused and reported."""
        result = await asking_runner.run(AgentRequest("use a tool", session_id=None, resume=False), EventLog())

        assert len(result.permission_denials) == 1

    async def test_cancel_while_the_gate_waits(self, asking_runner: AgentRunner) -> None:
        """Cancelling while a question is open cancels the gate too and leaves nothing behind."""
        gate = RecordingGate()
        log = EventLog()

        async with anyio.create_task_group() as tg:
            tg.start_soon(asking_runner.run, AgentRequest("use a tool", session_id=None, resume=False), log, gate)
            await gate.asked.wait()
            tg.cancel_scope.cancel()

        assert gate.cancelled is True
        self.assert_nothing_left(idle_agent_may_remain=True)
        if log.session_id is not None:
            await asking_runner.end_session(log.session_id)
        self.assert_nothing_left()

    # --- Raises: ----------------------------------------------------------------------------

    async def test_missing_agent_raises_not_installed(self, missing_runner: AgentRunner) -> None:
        """Raises AgentNotInstalledError when the agent binary is missing."""
        with pytest.raises(AgentNotInstalledError):
            await missing_runner.run(AgentRequest("hi", session_id=None, resume=False), EventLog())

    async def test_time_limit_raises_timeout(self, slow_runner: AgentRunner) -> None:
        """Raises AgentTimeoutError when the run exceeds its limit, and stops it."""
        with pytest.raises(AgentTimeoutError):
            await slow_runner.run(AgentRequest("hi", session_id=None, resume=False), EventLog())

        self.assert_nothing_left(idle_agent_may_remain=True)

    async def test_crash_raises_run_error(self, crashing_runner: AgentRunner) -> None:
        """Raises AgentRunError when the agent produced no result."""
        with pytest.raises(AgentRunError):
            await crashing_runner.run(AgentRequest("hi", session_id=None, resume=False), EventLog())

        self.assert_nothing_left()

    async def test_failed_compaction_raises_run_error(self, crashing_runner: AgentRunner) -> None:
        """Compact raises AgentRunError when compaction fails."""
        with pytest.raises(AgentRunError):
            await crashing_runner.compact("0f0e0d0c-0b0a-4908-8706-050403020100", EventLog())

        self.assert_nothing_left()
