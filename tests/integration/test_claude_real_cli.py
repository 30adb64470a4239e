"""
The REAL Claude Code CLI driven by ClaudeCliAgent against the fake Messages API on 127.0.0.1.

Each test gets an isolated HOME and CLAUDE_CONFIG_DIR in tmp_path (see tests/real_cli.py), ANTHROPIC_BASE_URL
pointing at `FakeAnthropicApi` and a real git repository as the workspace. Skipped only when the CLI is not
installed (`python3 dev.py test`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.agent_processes import Recorder, alive_with, describe, is_alive, roots
from tests.real_cli import (  # the fixtures are used by name
    CLAUDE,
    MARKER_VAR,
    PINNED,
    AgentFactory,
    api_fixture,  # noqa: F401
    git,
    make_agent_fixture,  # noqa: F401
    marker_fixture,  # noqa: F401
    needs_cli,
    repo_fixture,  # noqa: F401
)
from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.adapters.claude.events import NOT_LOGGED_IN
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.domain.errors import AgentTimeoutError
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    ApiRetry,
    ChangeKind,
    Compacted,
    Notice,
    PermissionDenied,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolRequest,
    ToolStarted,
    TurnId,
)
from voicecoder.domain.ports import AgentRunner
from voicecoder.simulators.anthropic import ApiError, FakeAnthropicApi, Reply, bash, write_file
from voicecoder.testing.contracts.agent_runner import AgentRunnerContract

pytestmark = needs_cli


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def allow_all(_request: ToolRequest) -> ToolDecision:
    return ToolDecision.allowed()


def first(events: list[AgentEvent], kind: type[Any]) -> Any:
    return next(e for e in events if isinstance(e, kind))


class TestRealClaudeCli:
    async def test_turn_writes_a_file_the_workspace_sees(
        self, make_agent: Any, api: FakeAnthropicApi, repo: Path
    ) -> None:
        """A Write turn creates exactly one file; git and DulwichWorkspace both see exactly that change."""
        workspace = DulwichWorkspace(repo, init_if_missing=False)
        await workspace.open()
        baseline = await workspace.begin_turn(TurnId("t1"))
        rec = Recorder()

        res = await make_agent().run(
            AgentRequest("create file hello.txt with Hello from voicecoder", session_id=None, resume=False),
            rec,
            allow_all,
        )

        assert res.success is True, res
        assert (repo / "hello.txt").read_text() == "Hello from voicecoder\n"
        assert git(repo, "status", "--porcelain") == "?? hello.txt\n"
        diff = await workspace.changes_since(baseline)
        assert [(f.path, f.kind) for f in diff.files] == [("hello.txt", ChangeKind.ADDED)]
        started = first(rec.events, SessionStarted)
        assert started.session_id == res.session_id
        assert rec.of(ToolStarted)[0].label == "Write hello.txt"
        assert [(e.ok, e.tool_use_id) for e in rec.of(ToolFinished)] == [(True, rec.of(ToolStarted)[0].tool_use_id)]
        assert res.text.startswith("I created hello.txt")
        assert res.num_turns == 2
        assert len(api.requests) == 2
        assert api.other_requests == []
        assert "keep answers brief" in str(api.requests[0].body)
        assert all(r.headers.get("x-api-key") == "***" for r in api.requests)

    async def test_resumed_turn_carries_the_history(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """The second turn resumes the session: its request holds the first prompt and the tool result."""
        agent = make_agent()
        one = await agent.run(
            AgentRequest("create file notes.txt with first note", session_id=None, resume=False), Recorder(), allow_all
        )
        before = len(api.requests)
        rec = Recorder()

        two = await agent.run(AgentRequest("what did you just do?", session_id=one.session_id, resume=True), rec)

        assert (one.success, two.success) == (True, True)
        assert two.session_id == one.session_id
        resumed = api.requests[before]
        assert resumed.prompt == "what did you just do?"
        assert "create file notes.txt with first note" in resumed.all_text
        assert "File created successfully" in resumed.all_text
        assert rec.of(Notice) == []
        assert two.text == "fake-model: what did you just do?"
        assert agent.spawned == 1  # the second turn ran on the warm process

    async def test_unknown_session_starts_fresh(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """Resuming a session the CLI does not know gives a fresh session and a notice, not an error."""
        lost = str(uuid.uuid4())
        rec = Recorder()

        res = await make_agent().run(AgentRequest("hello again", session_id=lost, resume=True), rec)

        assert res.success is True
        assert res.session_id not in (None, lost)
        assert len(res.notices) == 1
        assert rec.of(Notice) == [Notice(res.notices[0])]
        assert api.requests[-1].prompt == "hello again"

    async def test_api_error_is_an_unsuccessful_result(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """A persistent 500 is retried (max_retries=1) and ends as success=False with the API error text."""
        api.rule(lambda _r: True, ApiError.server_error("fake 500"))
        rec = Recorder()

        res = await make_agent().run(AgentRequest("hi", session_id=None, resume=False), rec)

        assert res.success is False
        assert "500" in res.text
        assert len(api.requests) == 2
        (retry,) = rec.of(ApiRetry)
        assert (retry.attempt, "500" in retry.error) == (1, True)

    async def test_rejected_key_is_an_unsuccessful_result(self, make_agent: Any) -> None:
        """A 401 from the API ends the turn (bounded retries) as success=False, without leaking the key."""
        async with FakeAnthropicApi(api_key="the-right-key") as strict:
            agent = make_agent({"ANTHROPIC_BASE_URL": strict.base_url})
            started = time.monotonic()

            res = await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert res.success is False
        assert "Invalid API key" in res.text
        assert "API error status 401" in res.errors
        assert "dummy-key" not in res.text
        assert time.monotonic() - started < 30
        assert strict.requests == []

    async def test_no_login_says_how_to_log_in(self, tmp_path: Path, repo: Path, api: FakeAnthropicApi) -> None:
        """
        With no login and no key the CLI answers "Not logged in · Please run /login" (meaningless on a phone): the
        result says how to log in on the server instead, once, and nothing reached the API.
        """
        home = tmp_path / "nobody"
        home.mkdir()
        agent = ClaudeCliAgent(
            ClaudeCliConfig(
                workdir=repo,
                binary=str(CLAUDE),
                config_dir=home / ".claude",
                timeout_s=60.0,
                extra_env={"HOME": str(home), "ANTHROPIC_BASE_URL": api.base_url},
            )
        )
        try:
            res = await agent.run(AgentRequest("say hi", session_id=None, resume=False), Recorder())
        finally:
            await agent.aclose()

        assert res.success is False
        assert res.text == NOT_LOGGED_IN
        assert res.errors == ()
        assert api.requests == []

    async def test_max_turns_is_an_unsuccessful_result(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """--max-turns 1 with a tool call ends as error_max_turns, reported with its error text."""
        api.script(Reply.tool(write_file("x.txt", "x\n")), Reply.text("never reached"))

        res = await make_agent(max_turns=1).run(AgentRequest("go", session_id=None, resume=False), Recorder())

        assert (res.success, res.subtype) == (False, "error_max_turns")
        assert "maximum number of turns" in res.text

    async def test_overloaded_once_then_answer(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """A 529 overloaded_error is retried and the turn still succeeds."""
        api.script(ApiError.overloaded(), Reply.text("Recovered."))
        rec = Recorder()

        res = await make_agent().run(AgentRequest("hi", session_id=None, resume=False), rec)

        assert (res.success, res.text) == (True, "Recovered.")
        assert len(rec.of(ApiRetry)) == 1

    async def test_without_a_gate_a_command_is_refused(
        self, make_agent: Any, api: FakeAnthropicApi, repo: Path
    ) -> None:
        """With nobody to ask, a Bash call is refused: reported with its label, and nothing ran."""
        api.script(Reply.tool(bash("touch denied.txt")), Reply.text("I was not allowed to."))
        rec = Recorder()

        res = await make_agent().run(AgentRequest("make the file", session_id=None, resume=False), rec)

        assert not (repo / "denied.txt").exists()
        assert res.permission_denials == (PermissionDenied("Bash", "Bash: touch denied.txt"),)
        assert [e.ok for e in rec.of(ToolFinished)] == [False]
        assert "nobody to ask" in api.requests[-1].tool_results[0][1]
        assert res.success is True

    async def test_background_job_of_a_turn_is_killed(self, make_agent: Any, api: FakeAnthropicApi, repo: Path) -> None:
        """A process the agent leaves running in the background (via Bash) does not outlive the turn."""
        api.script(Reply.tool(bash("tail -f /dev/null > /dev/null 2>&1 & echo $! > bg.pid")), Reply.text("Started."))
        rec = Recorder()

        res = await make_agent(allowed_tools=["Bash"]).run(
            AgentRequest("start a background job", session_id=None, resume=False), rec
        )

        assert res.success is True
        assert [e.ok for e in rec.of(ToolFinished)] == [True], rec.events
        pid = int((repo / "bg.pid").read_text())
        assert not is_alive(pid)

    async def test_compact(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """/compact on a resumed session sends a compaction request and reports a Compacted event."""
        agent = make_agent()
        one = await agent.run(
            AgentRequest("create file a.txt with A", session_id=None, resume=False), Recorder(), allow_all
        )
        assert one.session_id is not None
        rec = Recorder()

        res = await agent.compact(one.session_id, rec)

        assert res.success is True, res
        assert res.session_id == one.session_id
        (compacted,) = rec.of(Compacted)
        assert compacted.trigger == "manual"
        assert api.requests[-1].is_compaction
        assert "compacted" in res.text.lower()

    async def test_cancel_mid_turn_interrupts_and_keeps_the_process(
        self, make_agent: Any, api: FakeAnthropicApi, marker: str
    ) -> None:
        """Cancelling while the model is 'thinking' interrupts the turn; only the idle CLI stays, and it still works."""
        api.script(Reply.text("too late", delay_s=60), Reply.text("Back again."))
        agent = make_agent()
        rec = Recorder()

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, AgentRequest("slow one", session_id=None, resume=False), rec)
            await api.wait_for_requests(1)
            tg.cancel_scope.cancel()

        assert len(alive_with(MARKER_VAR, marker)) == 1
        (session_id,) = agent.warm_sessions
        again = await agent.run(AgentRequest("are you there?", session_id=session_id, resume=True), Recorder())
        assert (again.text, agent.spawned) == ("Back again.", 1)

    async def test_timeout(self, make_agent: Any, api: FakeAnthropicApi, marker: str) -> None:
        """A model that never finishes streaming hits the adapter's timeout; nothing survives."""
        api.script(Reply.text("never", stall_s=60))

        agent = make_agent(timeout_s=4.0)

        with pytest.raises(AgentTimeoutError):
            await agent.run(AgentRequest("hang", session_id=None, resume=False), Recorder())

        assert len(alive_with(MARKER_VAR, marker)) <= len(agent.warm_sessions)

    async def test_version_and_diagnose(self, make_agent: Any) -> None:
        """The installed CLI is the pinned version and diagnoses green."""
        agent = make_agent()

        version = await agent.version()
        diagnostics = await agent.diagnose()

        assert version == PINNED
        assert [(d.ok, d.warning) for d in diagnostics] == [(True, False)] * 3


class TestFakeAnthropicDefaults:
    async def test_scripted_write_with_relative_path(self, make_agent: Any, api: FakeAnthropicApi, repo: Path) -> None:
        """A scripted Write with a relative path lands in the workspace the CLI announced."""
        api.script(Reply.tool(write_file("pkg/mod.py", "X = 1\n"), "Writing."), Reply.text("Done."))

        res = await make_agent().run(AgentRequest("add a module", session_id=None, resume=False), Recorder(), allow_all)

        assert (repo / "pkg" / "mod.py").read_text() == "X = 1\n"
        assert res.text == "Done."
        assert api.requests[0].cwd == str(repo)


class TestRealCliContract(AgentRunnerContract):
    """The contract on the real CLI; the error cases use stand-ins, the real CLI cannot be made to crash."""

    @pytest.fixture(autouse=True)
    def _marker_of(self, marker: str, make_agent: AgentFactory) -> None:
        self.marker = marker
        self.make = make_agent

    @pytest.fixture
    def runner(self, make_agent: AgentFactory) -> AgentRunner:
        return make_agent()

    @pytest.fixture
    def hanging_runner(self, make_agent: AgentFactory, api: FakeAnthropicApi) -> AgentRunner:
        api.rule(lambda _r: True, Reply.text("never", delay_s=120))
        return make_agent()

    @pytest.fixture
    def asking_runner(self, make_agent: AgentFactory, api: FakeAnthropicApi) -> AgentRunner:
        api.script(Reply.tool(bash("echo asked > asked.txt")), Reply.text("Done."))
        return make_agent()

    @pytest.fixture
    def missing_runner(self, make_agent: AgentFactory, tmp_path: Path) -> AgentRunner:
        return make_agent(binary=str(tmp_path / "not-installed" / "claude"))

    @pytest.fixture
    def slow_runner(self, make_agent: AgentFactory, api: FakeAnthropicApi) -> AgentRunner:
        api.rule(lambda _r: True, Reply.text("never", stall_s=120))
        return make_agent(timeout_s=2.0)

    @pytest.fixture
    def crashing_runner(self, make_agent: AgentFactory, tmp_path: Path) -> AgentRunner:
        crash = tmp_path / "crashing-claude"
        crash.write_text("#!/bin/sh\necho 'claude: internal error' >&2\nexit 3\n")
        crash.chmod(0o755)
        return make_agent(binary=str(crash))

    def assert_nothing_left(self, *, idle_agent_may_remain: bool = False) -> None:
        alive = alive_with(MARKER_VAR, self.marker)
        if idle_agent_may_remain:
            # The idle CLI may still be finishing its own start-up helpers (it runs git for its context).
            assert len(roots(alive)) <= 1, describe(alive)
        else:
            assert alive == [], describe(alive)
