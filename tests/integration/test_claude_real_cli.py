"""
The REAL Claude Code CLI driven by ClaudeCliAgent against the fake Messages API on 127.0.0.1.

Each test gets an isolated HOME and CLAUDE_CONFIG_DIR in tmp_path, the quiet env vars (set by the
adapter), ANTHROPIC_BASE_URL pointing at `FakeAnthropicApi` and a dummy key, and a real git
repository as the workspace. Skipped only when the CLI is not installed (`python3 dev.py test`).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from voicecoder.adapters.claude_cli_agent import ClaudeCliAgent, ClaudeCliConfig

from tests.agent_processes import Recorder, alive_with, is_alive
from voicecoder.adapters.dulwich_workspace import DulwichWorkspace
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
    ToolFinished,
    ToolStarted,
    TurnId,
)
from voicecoder.domain.ports import AgentRunner
from voicecoder.testing.contracts.agent_runner import AgentRunnerContract
from voicecoder.testing.fake_anthropic import ApiError, FakeAnthropicApi, Reply, bash, write_file

REPO = Path(__file__).resolve().parents[2]


def _find_claude() -> Path | None:
    candidates = [Path(p) for p in [os.environ.get("VOICECODER_CLAUDE_BIN")] if p]
    candidates.append(REPO / ".tools" / "claude" / "node_modules" / ".bin" / "claude")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CLAUDE = _find_claude()
PINNED = (REPO / "requirements" / "claude-code-version.txt").read_text().strip()

pytestmark = [
    pytest.mark.real_cli,
    pytest.mark.skipif(
        CLAUDE is None,
        reason="Claude Code CLI not installed: run `python3 dev.py test` or set VOICECODER_CLAUDE_BIN",
    ),
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("# demo\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "init")
    return repo


@pytest.fixture(name="api")
async def _api() -> AsyncIterator[FakeAnthropicApi]:
    async with FakeAnthropicApi() as api:
        yield api


@pytest.fixture(name="marker")
def _marker() -> str:
    return uuid.uuid4().hex


@pytest.fixture(name="make_agent")
def _make_agent(tmp_path: Path, repo: Path, api: FakeAnthropicApi, marker: str) -> Iterator[Any]:
    """An agent on the real CLI, isolated from the user's ~/.claude; afterwards no process may be left."""
    home = tmp_path / "home"
    home.mkdir()
    assert CLAUDE is not None

    def make(env: dict[str, str] | None = None, **config: Any) -> ClaudeCliAgent:
        options: dict[str, Any] = {"timeout_s": 90.0, "max_retries": 1, "grace_s": 1.0}
        options.update(config)
        cfg = ClaudeCliConfig(
            workdir=repo,
            binary=str(CLAUDE),
            config_dir=home / ".claude",
            extra_env={
                "HOME": str(home),
                "XDG_CONFIG_HOME": str(home / ".config"),
                "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_DATA_HOME": str(home / ".local" / "share"),
                "ANTHROPIC_BASE_URL": api.base_url,
                "ANTHROPIC_API_KEY": "dummy-key",
                "VOICECODER_TEST_RUN": marker,
                **(env or {}),
            },
            **options,
        )
        return ClaudeCliAgent(cfg)

    yield make
    assert alive_with("VOICECODER_TEST_RUN", marker) == []


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
            AgentRequest("create file hello.txt with Hello from voicecoder", session_id=None, resume=False), rec
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
        assert res.text.startswith("fake-model: tool finished (ok)")
        assert res.num_turns == 2
        assert len(api.requests) == 2
        assert api.other_requests == []
        assert "keep answers brief" in str(api.requests[0].body)
        assert all(r.headers.get("x-api-key") == "***" for r in api.requests)

    async def test_resumed_turn_carries_the_history(self, make_agent: Any, api: FakeAnthropicApi) -> None:
        """The second turn resumes the session: its request holds the first prompt and the tool result."""
        agent = make_agent()
        one = await agent.run(
            AgentRequest("create file notes.txt with first note", session_id=None, resume=False), Recorder()
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

    async def test_permission_denial_is_reported(self, make_agent: Any, api: FakeAnthropicApi, repo: Path) -> None:
        """In the default permission mode a Bash call is refused headless: reported, and nothing ran."""
        api.script(Reply.tool(bash("touch denied.txt")), Reply.text("I was not allowed to."))
        rec = Recorder()

        res = await make_agent(permission_mode="default").run(
            AgentRequest("make the file", session_id=None, resume=False), rec
        )

        assert not (repo / "denied.txt").exists()
        assert rec.of(PermissionDenied)[0] == PermissionDenied("Bash", "Bash: touch denied.txt")
        assert res.permission_denials == (PermissionDenied("Bash", "Bash: touch denied.txt"),)
        assert [e.ok for e in rec.of(ToolFinished)] == [False]
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
        one = await agent.run(AgentRequest("create file a.txt with A", session_id=None, resume=False), Recorder())
        assert one.session_id is not None
        rec = Recorder()

        res = await agent.compact(one.session_id, rec)

        assert res.success is True, res
        assert res.session_id == one.session_id
        (compacted,) = rec.of(Compacted)
        assert compacted.trigger == "manual"
        assert api.requests[-1].is_compaction
        assert "compacted" in res.text.lower()

    async def test_cancel_mid_turn_leaves_no_process(self, make_agent: Any, api: FakeAnthropicApi, marker: str) -> None:
        """Cancelling while the model is 'thinking' stops the CLI quickly and leaves no process behind."""
        api.script(Reply.text("too late", delay_s=60))
        agent = make_agent()

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, AgentRequest("slow one", session_id=None, resume=False), Recorder())
            await api.wait_for_requests(1)
            assert alive_with("VOICECODER_TEST_RUN", marker) != []
            started = time.monotonic()
            tg.cancel_scope.cancel()

        assert time.monotonic() - started < 5
        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_timeout(self, make_agent: Any, api: FakeAnthropicApi, marker: str) -> None:
        """A model that never finishes streaming hits the adapter's timeout; nothing survives."""
        api.script(Reply.text("never", stall_s=60))

        with pytest.raises(AgentTimeoutError):
            await make_agent(timeout_s=4.0).run(AgentRequest("hang", session_id=None, resume=False), Recorder())

        assert alive_with("VOICECODER_TEST_RUN", marker) == []

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

        res = await make_agent().run(AgentRequest("add a module", session_id=None, resume=False), Recorder())

        assert (repo / "pkg" / "mod.py").read_text() == "X = 1\n"
        assert res.text == "Done."
        assert api.requests[0].cwd == str(repo)


class TestRealCliContract(AgentRunnerContract):
    @pytest.fixture
    def runner(self, make_agent: Any) -> AgentRunner:
        return make_agent()  # type: ignore[no-any-return]

    @pytest.fixture
    def hanging_runner(self, make_agent: Any, api: FakeAnthropicApi) -> AgentRunner:
        api.rule(lambda _r: True, Reply.text("never", delay_s=120))
        return make_agent()  # type: ignore[no-any-return]
