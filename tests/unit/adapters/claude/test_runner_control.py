"""
ClaudeCliAgent stopping, asking about tools, its environment and its version guard,
against a fake ``claude`` executable (tests/fakes/fake_claude.py) that speaks the persistent
stream-json protocol: real subprocesses, real signals, real pipes; the fake plays scripted turns.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.agent_processes import Recorder, alive_with, is_alive
from tests.unit.adapters.claude.fake_cli import (
    HANG,
    SID,
    Gate,
    answers,
    ask,
    init,
    result,
    turns,
    write_script,
)
from voicecoder.adapters.claude import QUIET_ENV, ClaudeCliAgent, ClaudeCliConfig
from voicecoder.domain.errors import AgentTimeoutError
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolKind,
)


class TestStopping:
    async def test_timeout_interrupts_and_leaves_nothing(self, make_agent: Any, tmp_path: Path, marker: str) -> None:
        """A turn that never ends raises AgentTimeoutError; its tool and its background job are gone."""
        pidfile = tmp_path / "pids"
        script = write_script(tmp_path / "s.jsonl", init(), HANG)
        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_GRANDCHILD": str(pidfile)}, timeout_s=1.0)

        with pytest.raises(AgentTimeoutError):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        pids = [int(p) for p in pidfile.read_text().split()]
        assert len(pids) == 2
        assert [p for p in pids if is_alive(p)] == []
        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_a_deaf_cli_is_killed_after_the_interrupt_grace(
        self, make_agent: Any, marker: str, tmp_path: Path
    ) -> None:
        """A CLI that ignores the interrupt, SIGINT and SIGTERM is killed through its process group."""
        script = write_script(tmp_path / "s.jsonl", init(), HANG)
        agent = make_agent(
            {"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_DEAF": "1", "FAKE_CLAUDE_IGNORE": "INT,TERM"},
            timeout_s=0.5,
            grace_s=0.3,
            interrupt_grace_s=0.3,
        )

        with pytest.raises(AgentTimeoutError):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert alive_with("VOICECODER_TEST_RUN", marker) == []
        assert agent.warm_sessions == ()

    async def test_cancel_mid_turn_stops_the_tool_and_its_background_job(
        self, make_agent: Any, marker: str, tmp_path: Path
    ) -> None:
        """Cancelling the caller interrupts the turn; the tool, the orphaned job and (as a job was left) the CLI go."""
        pidfile = tmp_path / "pids"
        script = write_script(tmp_path / "s.jsonl", init(), HANG)
        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_GRANDCHILD": str(pidfile)})
        rec = Recorder()

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, AgentRequest("hi", session_id=None, resume=False), rec)
            with anyio.fail_after(10):
                while not (rec.events and pidfile.exists() and pidfile.read_text().count("\n") == 2):
                    await anyio.sleep(0.02)
            assert len(alive_with("VOICECODER_TEST_RUN", marker)) == 3
            tg.cancel_scope.cancel()

        pids = [int(p) for p in pidfile.read_text().split()]
        assert [p for p in pids if is_alive(p)] == []
        assert alive_with("VOICECODER_TEST_RUN", marker) == []
        assert rec.events == [SessionStarted(SID, "claude-opus-5-5")]

    async def test_cancel_keeps_a_clean_process_warm(self, make_agent: Any, marker: str, tmp_path: Path) -> None:
        """An interrupted turn that left nothing behind keeps its process for the next turn."""
        script = write_script(tmp_path / "s.jsonl", init(), HANG)
        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script)})
        rec = Recorder()

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, AgentRequest("hi", session_id=None, resume=False), rec)
            with anyio.fail_after(10):
                while not rec.events:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()

        assert agent.warm_sessions == (SID,)
        assert len(alive_with("VOICECODER_TEST_RUN", marker)) == 1

    async def test_background_jobs_are_swept_after_a_normal_turn(self, make_agent: Any, tmp_path: Path) -> None:
        """A process a turn left running outside the CLI's tree is killed; the CLI itself stays warm."""
        pidfile = tmp_path / "pids"
        agent = make_agent({"FAKE_CLAUDE_GRANDCHILD": str(pidfile)})

        res = await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert res.success is True
        assert [p for p in (int(x) for x in pidfile.read_text().split()) if is_alive(p)] == []
        assert agent.warm_sessions == (SID,)

    async def test_failing_callback_propagates_and_ends_the_turn(self, make_agent: Any, tmp_path: Path) -> None:
        """An exception from on_event reaches the caller unchanged; the turn is interrupted, the next one works."""
        script = write_script(tmp_path / "s.jsonl", init(), HANG)

        async def explode(event: AgentEvent) -> None:
            raise LookupError(type(event).__name__)

        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script)})

        with pytest.raises(LookupError, match="SessionStarted"):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), explode)

        assert agent.warm_sessions == (SID,)


class TestToolQuestions:
    async def test_an_allowed_tool_runs_with_its_input(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """A can_use_tool request reaches the gate as a ToolRequest; an allow goes back with the input unchanged."""
        command = {"command": "pytest -q", "description": "Run the tests"}
        script = write_script(tmp_path / "s.jsonl", init(), ask("Bash", command), result(result="ran them"))
        gate = Gate()
        rec = Recorder()

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("run the tests", session_id=None, resume=False), rec, gate
        )

        (request,) = gate.requests
        assert (request.tool, request.kind, request.command, request.description) == (
            "Bash",
            ToolKind.SHELL,
            "pytest -q",
            "Run the tests",
        )
        assert (request.label, request.tool_use_id) == ("Bash: pytest -q", "toolu_q1")
        assert answers(record) == [{"behavior": "allow", "updatedInput": command}]
        assert rec.of(ToolFinished) == [ToolFinished("toolu_q1", ok=True, summary="ran")]
        assert res.text == "ran them"

    async def test_a_denial_reaches_the_agent_with_its_reason(
        self, make_agent: Any, record: Path, tmp_path: Path
    ) -> None:
        """A deny answer carries the message the agent reads as the tool's error."""
        script = write_script(tmp_path / "s.jsonl", init(), ask("Bash", {"command": "make deploy"}), result())
        gate = Gate(ToolDecision.denied("not on Fridays"))
        rec = Recorder()

        await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("ship it", session_id=None, resume=False), rec, gate
        )

        assert answers(record) == [{"behavior": "deny", "message": "not on Fridays"}]
        assert rec.of(ToolFinished) == [ToolFinished("toolu_q1", ok=False, summary="not on Fridays")]

    async def test_without_a_gate_tools_are_refused(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """With nobody to ask the runner refuses and says so to the agent."""
        script = write_script(tmp_path / "s.jsonl", init(), ask("Bash", {"command": "ls"}), result())

        await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("list", session_id=None, resume=False), Recorder()
        )

        (answer,) = answers(record)
        assert answer["behavior"] == "deny"
        assert "nobody to ask" in answer["message"]

    async def test_time_waiting_for_an_answer_is_not_the_agents_time(
        self, make_agent: Any, record: Path, tmp_path: Path
    ) -> None:
        """A question answered after the agent's time limit would have passed still lets the turn finish."""
        script = write_script(tmp_path / "s.jsonl", init(), ask("Bash", {"command": "ls"}), result(result="ok"))
        answered = anyio.Event()
        gate = Gate(hold=answered)
        # The limit covers the fake CLI's start-up even on a loaded machine; the answer takes longer than it.
        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}, timeout_s=2.0)

        async def answer_late() -> None:
            await gate.waiting.wait()
            await anyio.sleep(2.5)  # longer than the agent's whole limit, spent waiting for the person
            answered.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_late)
            res = await agent.run(AgentRequest("list", session_id=None, resume=False), Recorder(), gate)

        assert (res.success, res.text) == (True, "ok")
        assert answers(record)[0]["behavior"] == "allow"

    async def test_cancel_while_a_question_waits(self, make_agent: Any, marker: str, tmp_path: Path) -> None:
        """Cancelling during a question cancels the gate, interrupts the turn and leaves no tool behind."""
        pidfile = tmp_path / "pids"
        script = write_script(tmp_path / "s.jsonl", init(), ask("Bash", {"command": "sleep 1000"}), result())
        gate = Gate(hold=anyio.Event())
        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_GRANDCHILD": str(pidfile)})

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run, AgentRequest("wait", session_id=None, resume=False), Recorder(), gate)
            await gate.waiting.wait()
            tg.cancel_scope.cancel()

        assert gate.cancelled == 1
        assert [p for p in (int(x) for x in pidfile.read_text().split()) if is_alive(p)] == []
        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_paths_are_absolute_and_resolved(self, make_agent: Any, workdir: Path, tmp_path: Path) -> None:
        """A relative path is taken in the workspace and a symlink is judged by where it points."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (workdir / "link").symlink_to(outside)
        script = write_script(
            tmp_path / "s.jsonl",
            init(),
            ask("Write", {"file_path": "link/x.txt", "content": "new\n"}, "w1"),
            ask("Edit", {"file_path": "a.py", "old_string": "a = 1", "new_string": "a = 2"}, "e1"),
            result(),
        )
        gate = Gate()

        await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("write", session_id=None, resume=False), Recorder(), gate
        )

        write, edit = gate.requests
        assert write.paths == (str((outside / "x.txt").resolve()),)
        assert write.kind is ToolKind.EDIT
        assert write.preview == "@@ -0,0 +1 @@\n+new"
        assert edit.paths == (str((workdir / "a.py").resolve()),)
        assert edit.preview == "@@ -1 +1 @@\n-a = 1\n+a = 2"


class TestEnvironment:
    async def test_the_agent_sees_an_allow_list_only(
        self, make_agent: Any, record: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """voicecoder's settings never reach the agent; the CLI's own variables and the passthrough names do."""
        secrets = {
            "TELEGRAM_TOKEN": "123456:telegram-secret-aaaaaaaaaaaaaaaaaaaaaaaaa",
            "WEBHOOK_SECRET": "webhook-secret-value",
            "WEBHOOK_PATH": "/telegram/secret-path",
            "DEEPGRAM_API_KEY": "dg-secret",
            "ASSEMBLYAI_API_KEY": "aai-secret",
            "DATA_DIR": "/srv/voicecoder/data",
            "SOME_OTHER_SECRET": "some-other-secret-value",
        }
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("LANG", "C.UTF-8")
        monkeypatch.setenv("ANTHROPIC_MODEL", "claude-test")
        monkeypatch.setenv("MY_TOOL_HOME", "/opt/tool")
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")
        agent = make_agent(passthrough=("MY_TOOL_HOME",), config_dir=None)

        await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        env = turns(record)[0]["env"]
        assert not set(secrets) & set(env)
        assert not any(v in "".join(env.values()) for v in secrets.values())
        assert os.environ["PATH"] in env["PATH"]  # (pyenv's python3 shim prepends its own directories)
        assert env["LANG"] == "C.UTF-8"
        assert env["ANTHROPIC_MODEL"] == "claude-test"
        assert env["MY_TOOL_HOME"] == "/opt/tool"
        assert "CLAUDE_CONFIG_DIR" not in env
        assert {k: env[k] for k in QUIET_ENV} == dict(QUIET_ENV)
        assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"

    async def test_a_configured_config_dir_is_passed(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """config_dir becomes CLAUDE_CONFIG_DIR."""
        await make_agent(config_dir=tmp_path / "cfg").run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert turns(record)[0]["env"]["CLAUDE_CONFIG_DIR"] == str(tmp_path / "cfg")


class TestCompatibilityGuard:
    async def test_version(self, make_agent: Any) -> None:
        """version() reads `claude --version`."""
        assert await make_agent().version() == "2.1.330"

    async def test_version_of_missing_binary_is_none(self, workdir: Path) -> None:
        """A missing binary has no version."""
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=workdir, binary=f"no-such-claude-{uuid.uuid4().hex}"))

        assert await agent.version() is None

    async def test_diagnose_in_range_and_authenticated(self, make_agent: Any) -> None:
        """A pinned version with an API key set is all green."""
        diagnostics = await make_agent({"ANTHROPIC_API_KEY": "dummy"}).diagnose()

        assert [(d.name, d.ok, d.warning) for d in diagnostics] == [
            ("Claude Code CLI", True, False),
            ("Claude Code version", True, False),
            ("Claude authentication", True, False),
        ]
        assert "2.1.330" in diagnostics[1].detail

    async def test_diagnose_untested_version_warns(self, make_agent: Any) -> None:
        """A version outside the tested range is a warning with a fix, not a failure."""
        diagnostics = await make_agent({"FAKE_CLAUDE_VERSION": "3.0.1 (Claude Code)"}).diagnose()

        version = diagnostics[1]
        assert (version.ok, version.warning) == (True, True)
        assert "3.0.1" in version.detail
        assert version.fix is not None

    async def test_diagnose_unauthenticated_then_logged_in(
        self, make_agent: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without key, gateway or credentials file auth fails with a fix; a credentials file fixes it."""
        for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_USE_BEDROCK"):
            monkeypatch.delenv(var, raising=False)
        config_dir = tmp_path / "cfg"
        config_dir.mkdir()
        agent = make_agent(config_dir=config_dir)

        before = (await agent.diagnose())[-1]
        (config_dir / ".credentials.json").write_text("{}")
        after = (await agent.diagnose())[-1]

        assert (before.ok, before.fix is not None) == (False, True)
        assert after.ok is True

    async def test_diagnose_missing_binary(self, workdir: Path) -> None:
        """A missing CLI is one failed check with an install hint."""
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=workdir, binary="/nonexistent/claude"))

        (only,) = await agent.diagnose()

        assert only.ok is False
        assert only.fix is not None
        assert "npm install -g @anthropic-ai/claude-code@" in only.fix
