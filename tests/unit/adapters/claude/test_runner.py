"""
ClaudeCliAgent against a fake ``claude`` executable (tests/fakes/fake_claude.py) that speaks the persistent
stream-json protocol: real subprocesses, real signals, real pipes; the fake plays scripted turns.
"""

from __future__ import annotations

import json
import logging
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.agent_processes import Recorder, alive_with, is_alive
from voicecoder.adapters.claude import QUIET_ENV, ClaudeCliAgent, ClaudeCliConfig
from voicecoder.domain.errors import AgentNotInstalledError, AgentRunError, AgentTimeoutError
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    ApiRetry,
    AssistantText,
    Compacted,
    Notice,
    PermissionDenied,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolKind,
    ToolRequest,
    ToolStarted,
)

FAKE_CLAUDE = Path(__file__).resolve().parents[3] / "fakes" / "fake_claude.py"
SID = "11111111-2222-4333-8444-555555555555"


def write_script(path: Path, *objs: Mapping[str, Any]) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def init(model: str = "claude-opus-5-5") -> dict[str, Any]:
    return {
        "type": "system",
        "subtype": "init",
        "session_id": "@SESSION_ID@",
        "model": model,
        "cwd": "/somewhere",
        "tools": ["Bash", "Edit", "Write"],
        "claude_code_version": "2.1.330",
        "future_field": {"ignored": True},
    }


def result(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Done.",
        "session_id": "@SESSION_ID@",
        "num_turns": 2,
        "duration_ms": 620,
        "total_cost_usd": 0.024244,
        "permission_denials": [],
    }
    base.update(fields)
    return base


def assistant(*blocks: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {
        "type": "assistant",
        "message": {"id": "msg_1", "role": "assistant", "content": list(blocks), "stop_reason": None},
        "parent_tool_use_id": parent,
        "session_id": "@SESSION_ID@",
    }


def tool_result(tool_use_id: str, content: Any, *, is_error: bool | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if is_error is not None:
        block["is_error"] = is_error
    return {"type": "user", "message": {"role": "user", "content": [block]}, "session_id": "@SESSION_ID@"}


def ask(tool_name: str, tool_input: dict[str, Any], tool_use_id: str = "toolu_q1") -> dict[str, Any]:
    return {"@ask": {"tool_name": tool_name, "input": tool_input, "tool_use_id": tool_use_id}}


HANG = {"@hang": True}


@pytest.fixture(name="workdir")
def _workdir(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture(name="marker")
def _marker() -> str:
    return uuid.uuid4().hex


@pytest.fixture(name="record")
def _record(tmp_path: Path) -> Path:
    return tmp_path / "record.jsonl"


@pytest.fixture(name="make_agent")
async def _make_agent(workdir: Path, marker: str, record: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """Builds agents on the fake CLI; afterwards they are closed and no process of any of them may be left."""
    made: list[ClaudeCliAgent] = []

    def make(env: Mapping[str, str] | None = None, **config: Any) -> ClaudeCliAgent:
        extra = {"VOICECODER_TEST_RUN": marker, "FAKE_CLAUDE_RECORD": str(record), **(env or {})}
        options: dict[str, Any] = {
            "binary": str(FAKE_CLAUDE),
            "grace_s": 0.5,
            "timeout_s": 30.0,
            "interrupt_grace_s": 5.0,
            "max_line_bytes": 1024 * 1024,
            "config_dir": tmp_path / "claude-config",
        }
        options.update(config)
        cfg = ClaudeCliConfig(workdir=workdir, extra_env=extra, **options)
        agent = ClaudeCliAgent(cfg, new_session_id=lambda: SID)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        await agent.aclose()
    assert alive_with("VOICECODER_TEST_RUN", marker) == []


def recorded(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


def turns(record: Path) -> list[dict[str, Any]]:
    return [r for r in recorded(record) if "argv" in r]


def answers(record: Path) -> list[dict[str, Any]]:
    return [r["answer"] for r in recorded(record) if "answer" in r]


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


class Gate:
    """A ToolGate that records requests and answers with *decide* (default: allow)."""

    def __init__(self, decision: ToolDecision | None = None, *, hold: anyio.Event | None = None) -> None:
        self.requests: list[ToolRequest] = []
        self.decision = decision or ToolDecision.allowed()
        self.hold = hold
        self.waiting = anyio.Event()
        self.cancelled = 0

    async def __call__(self, request: ToolRequest) -> ToolDecision:
        self.requests.append(request)
        self.waiting.set()
        if self.hold is not None:
            try:
                await self.hold.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled += 1
                raise
        return self.decision


FULL_TURN = (
    init(),
    {"type": "system", "subtype": "status", "status": "requesting"},
    assistant({"type": "text", "text": "I'll fix it."}),
    assistant({"type": "tool_use", "id": "t1", "name": "Edit", "input": {"file_path": "@WS@/src/app.py"}}),
    tool_result("t1", "The file src/app.py has been updated."),
    assistant({"type": "tool_use", "id": "t2", "name": "Bash", "input": {"command": "pytest -q", "timeout": 5}}),
    tool_result("t2", [{"type": "text", "text": "\n1 failed\nmore"}], is_error=True),
    {"type": "stream_event", "event": {"type": "content_block_delta"}},
    {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 1,
        "max_retries": 2,
        "retry_delay_ms": 524,
        "error_status": 529,
        "error": "overloaded",
    },
    assistant({"type": "tool_use", "id": "t3", "name": "Write", "input": {"file_path": "/etc/passwd"}}),
    {
        "type": "system",
        "subtype": "permission_denied",
        "tool_name": "Write",
        "tool_use_id": "t3",
        "message": "Claude requested permissions to write to /etc/passwd, but you haven't granted it yet.",
    },
    tool_result("t3", "Claude requested permissions", is_error=True),
    assistant({"type": "tool_use", "id": "t4", "name": "Grep", "input": {"pattern": "foo"}}),
    tool_result("t4", "src/app.py:1:foo"),
    assistant({"type": "text", "text": "nested agent chatter"}, parent="t9"),
    {
        "type": "system",
        "subtype": "compact_boundary",
        "compact_metadata": {"trigger": "auto", "pre_tokens": 2929, "post_tokens": 2668},
    },
    assistant({"type": "text", "text": "Fixed; one test still fails."}),
    result(
        result="Fixed; one test still fails.",
        permission_denials=[
            {"tool_name": "Write", "tool_use_id": "t3", "tool_input": {"file_path": "/etc/passwd"}},
            {"tool_name": "Bash", "tool_use_id": "t5", "tool_input": {"command": "rm -rf build"}},
        ],
    ),
)

FULL_TURN_EVENTS: list[AgentEvent] = [
    SessionStarted(SID, "claude-opus-5-5"),
    AssistantText("I'll fix it."),
    ToolStarted("t1", "Edit", "Edit src/app.py"),
    ToolFinished("t1", ok=True, summary="The file src/app.py has been updated."),
    ToolStarted("t2", "Bash", "Bash: pytest -q"),
    ToolFinished("t2", ok=False, summary="1 failed"),
    ApiRetry(attempt=1, error="overloaded (HTTP 529)", delay_s=0.524),
    ToolStarted("t3", "Write", "Write /etc/passwd"),
    PermissionDenied("Write", "Write /etc/passwd"),
    ToolFinished("t3", ok=False, summary="Claude requested permissions"),
    ToolStarted("t4", "Grep", 'Grep "foo"'),
    ToolFinished("t4", ok=True, summary="src/app.py:1:foo"),
    Compacted(trigger="auto", pre_tokens=2929),
    AssistantText("Fixed; one test still fails."),
    PermissionDenied("Bash", "Bash: rm -rf build"),
]


def full_turn_script(path: Path, workdir: Path) -> Path:
    text = "".join(json.dumps(o) + "\n" for o in FULL_TURN)
    path.write_text(text.replace("@WS@", str(workdir.resolve())))
    return path


class TestTurns:
    async def test_first_turn_flags_and_prompt_as_a_message(self, make_agent: Any, record: Path) -> None:
        """A first turn starts the persistent stream-json CLI with a new --session-id; the prompt is a message."""
        agent = make_agent(
            model="sonnet", max_turns=7, allowed_tools=["Bash(git *)", "Edit"], disallowed_tools="WebFetch"
        )

        res = await agent.run(AgentRequest("--help me; rm -rf /", session_id=None, resume=False), Recorder())

        (call,) = turns(record)
        argv = call["argv"]
        assert argv[:6] == ["-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose"]
        assert flag(argv, "--permission-mode") == "default"
        assert flag(argv, "--permission-prompt-tool") == "stdio"
        assert flag(argv, "--session-id") == SID
        assert "--resume" not in argv
        assert flag(argv, "--model") == "sonnet"
        assert flag(argv, "--max-turns") == "7"
        assert argv[argv.index("--allowedTools") + 1 : argv.index("--allowedTools") + 3] == ["Bash(git *)", "Edit"]
        assert flag(argv, "--disallowedTools") == "WebFetch"
        assert "keep answers brief" in flag(argv, "--append-system-prompt")
        assert not any("rm -rf" in a for a in argv)
        assert call["stdin"] == "--help me; rm -rf /"
        assert (res.success, res.session_id, res.text) == (True, SID, "Echo: --help me; rm -rf /")

    async def test_without_tool_questions_the_old_mode_is_kept(self, make_agent: Any, record: Path) -> None:
        """ask_tools=False (TOOL_APPROVAL=off) runs without the prompt tool, in acceptEdits by default."""
        await make_agent(ask_tools=False).run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        argv = turns(record)[0]["argv"]
        assert flag(argv, "--permission-mode") == "acceptEdits"
        assert "--permission-prompt-tool" not in argv

    async def test_resume_turn_passes_resume_and_the_flags(self, make_agent: Any, record: Path) -> None:
        """A session without a live process is started with --resume and every flag again."""
        res = await make_agent(permission_mode="plan").run(
            AgentRequest("go on", session_id="abc-123", resume=True), Recorder()
        )

        argv = turns(record)[0]["argv"]
        assert flag(argv, "--resume") == "abc-123"
        assert "--session-id" not in argv
        assert flag(argv, "--permission-mode") == "plan"
        assert (res.session_id, res.notices) == ("abc-123", ())

    async def test_given_session_id_without_resume_is_used(self, make_agent: Any, record: Path) -> None:
        """A caller-chosen id on a first turn becomes the --session-id."""
        await make_agent().run(AgentRequest("hi", session_id="chosen-id", resume=False), Recorder())

        assert flag(turns(record)[0]["argv"], "--session-id") == "chosen-id"

    async def test_every_event_type_is_mapped(self, make_agent: Any, workdir: Path, tmp_path: Path) -> None:
        """init, text, tool_use/result, api_retry, permission_denied, compact_boundary and result map to events."""
        script = full_turn_script(tmp_path / "turn.jsonl", workdir)
        rec = Recorder()

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("fix it", session_id=None, resume=False), rec
        )

        assert rec.events == FULL_TURN_EVENTS
        assert res.text == "Fixed; one test still fails."
        assert res.success is True
        assert (res.subtype, res.num_turns, res.duration_ms, res.cost_usd) == ("success", 2, 620, 0.024244)
        assert res.permission_denials == (
            PermissionDenied("Write", "Write /etc/passwd"),
            PermissionDenied("Bash", "Bash: rm -rf build"),
        )
        assert [d.tool_use_id for d in res.permission_denials] == ["t3", "t5"]

    async def test_garbage_lines_are_ignored(self, make_agent: Any, workdir: Path, tmp_path: Path) -> None:
        """Non-JSON, arrays, binary junk and mistyped fields between the real lines change nothing."""
        script = full_turn_script(tmp_path / "turn.jsonl", workdir)
        rec = Recorder()

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_GARBAGE": "1"}).run(
            AgentRequest("fix it", session_id=None, resume=False), rec
        )

        assert rec.events == FULL_TURN_EVENTS
        assert res.text == "Fixed; one test still fails."

    async def test_api_error_result_is_an_unsuccessful_result(self, make_agent: Any, tmp_path: Path) -> None:
        """subtype success + is_error true (an API failure) is success=False, not an exception."""
        script = write_script(
            tmp_path / "s.jsonl",
            init(),
            result(
                is_error=True,
                result="API Error: 500 fake 500.",
                api_error_status=500,
                terminal_reason="api_error",
                num_turns=1,
            ),
        )

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("hi", session_id=None, resume=False), Recorder()
        )

        assert (res.success, res.subtype, res.text) == (False, "success", "API Error: 500 fake 500.")
        assert res.errors == ("API error status 500",)

    async def test_error_subtype_without_text_reports_errors(self, make_agent: Any, tmp_path: Path) -> None:
        """error_max_turns has no result text; the errors become the text."""
        script = write_script(
            tmp_path / "s.jsonl",
            init(),
            result(
                subtype="error_max_turns", is_error=True, result=None, errors=["Reached maximum number of turns (1)"]
            ),
        )

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("hi", session_id=None, resume=False), Recorder()
        )

        assert (res.success, res.subtype) == (False, "error_max_turns")
        assert res.text == "Reached maximum number of turns (1)"

    async def test_huge_line_is_skipped_in_bounded_memory(
        self, make_agent: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A 48 MB line is dropped with a warning while Python memory stays far below its size."""
        script = write_script(tmp_path / "s.jsonl", init(), assistant({"type": "text", "text": "after"}), result())
        agent = make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_HUGE_BYTES": str(48 * 1024 * 1024)})
        rec = Recorder()
        caplog.set_level(logging.WARNING, logger="voicecoder.adapters.claude")

        tracemalloc.start()
        try:
            res = await agent.run(AgentRequest("hi", session_id=None, resume=False), rec)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert peak < 8 * 1024 * 1024
        assert [e.text for e in rec.of(AssistantText)] == ["after"]
        assert res.success is True
        assert any("oversize" in r.getMessage() for r in caplog.records)

    async def test_crash_without_result_raises_with_redacted_stderr(self, make_agent: Any, tmp_path: Path) -> None:
        """No result line → AgentRunError carrying the stderr tail, with keys redacted."""
        script = write_script(tmp_path / "s.jsonl", init())
        agent = make_agent(
            {
                "FAKE_CLAUDE_SCRIPT": str(script),
                "FAKE_CLAUDE_EXIT": "1",
                "FAKE_CLAUDE_STDERR": "boom: bad key sk-ant-api03-abcdefghijklmnop and hunter2hunter2",
                "ANTHROPIC_API_KEY": "hunter2hunter2",
            }
        )
        rec = Recorder()

        with pytest.raises(AgentRunError) as info:
            await agent.run(AgentRequest("hi", session_id=None, resume=False), rec)

        message = str(info.value)
        assert "code 1" in message
        assert "boom: bad key" in message
        assert "sk-ant" not in message
        assert "hunter2" not in message
        assert rec.events == [SessionStarted(SID, "claude-opus-5-5")]
        assert agent.warm_sessions == ()

    async def test_a_cli_that_refuses_its_flags_is_reported(self, make_agent: Any, tmp_path: Path) -> None:
        """A CLI too old for stream-json input fails at start; the error carries its own words."""
        old = tmp_path / "old-claude"
        old.write_text("#!/bin/sh\necho \"error: unknown option '--input-format'\" >&2\nexit 1\n")
        old.chmod(0o755)

        with pytest.raises(AgentRunError, match="unknown option '--input-format'"):
            await make_agent(binary=str(old)).run(AgentRequest("hi", session_id=None, resume=False), Recorder())

    async def test_relative_binary_path_is_resolved_before_changing_directory(
        self, make_agent: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A binary given relative to the current directory still runs although the CLI's cwd is the workspace."""
        monkeypatch.chdir(FAKE_CLAUDE.parent)

        res = await make_agent(binary=f"./{FAKE_CLAUDE.name}").run(
            AgentRequest("hi", session_id=None, resume=False), Recorder()
        )

        assert res.text == "Echo: hi"

    async def test_missing_binary_raises_not_installed(self, workdir: Path, tmp_path: Path) -> None:
        """A path that does not exist, or a name not on PATH, is AgentNotInstalledError."""
        for binary in (str(tmp_path / "nope" / "claude"), f"claude-missing-{uuid.uuid4().hex}"):
            agent = ClaudeCliAgent(ClaudeCliConfig(workdir=workdir, binary=binary))

            with pytest.raises(AgentNotInstalledError):
                await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

    async def test_non_executable_binary_raises_not_installed(self, workdir: Path, tmp_path: Path) -> None:
        """A file without the execute bit is not an installed CLI."""
        binary = tmp_path / "claude"
        binary.write_text("#!/bin/sh\n")
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=workdir, binary=str(binary)))

        with pytest.raises(AgentNotInstalledError):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

    async def test_missing_workdir_is_a_run_error(self, tmp_path: Path) -> None:
        """A workspace that does not exist is reported as such, not as a missing CLI."""
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=tmp_path / "absent", binary=str(FAKE_CLAUDE)))

        with pytest.raises(AgentRunError, match="does not exist"):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

    async def test_config_dir_inside_the_workspace_is_refused(self, make_agent: Any, workdir: Path) -> None:
        """The CLI's own state must never land in the workspace: such a config dir is an error, nothing runs."""
        agent = make_agent(config_dir=workdir / ".claude")

        with pytest.raises(AgentRunError, match="inside the workspace"):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert not (workdir / ".claude").exists()

    def test_repr_hides_env_values(self, workdir: Path) -> None:
        """The config repr names extra env vars but never shows their values."""
        cfg = ClaudeCliConfig(workdir=workdir, extra_env={"ANTHROPIC_API_KEY": "sk-ant-secret-value"})

        assert "ANTHROPIC_API_KEY" in repr(cfg)
        assert "secret-value" not in repr(cfg)


class TestSessions:
    async def test_the_next_turn_of_a_session_reuses_the_warm_process(self, make_agent: Any, record: Path) -> None:
        """Turn two goes to the same process (no new start, no --resume); both turns are answered."""
        agent = make_agent()
        one = await agent.run(AgentRequest("one", session_id=None, resume=False), Recorder())

        two = await agent.run(AgentRequest("two", session_id=one.session_id, resume=True), Recorder())

        assert (one.text, two.text) == ("Echo: one", "Echo: two")
        assert agent.spawned == 1
        first, second = turns(record)
        assert first["argv"] == second["argv"]
        assert agent.warm_sessions == (SID,)

    async def test_a_dead_warm_process_is_resumed(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """A process that died between turns is replaced by one started with --resume."""
        agent = make_agent({"FAKE_CLAUDE_EXIT": "0", "FAKE_CLAUDE_SESSIONS": str(tmp_path / "sessions")})
        one = await agent.run(AgentRequest("one", session_id=None, resume=False), Recorder())

        two = await agent.run(AgentRequest("two", session_id=one.session_id, resume=True), Recorder())

        assert two.text == "Echo: two"
        assert agent.spawned == 2
        assert flag(turns(record)[1]["argv"], "--resume") == SID

    async def test_keep_warm_zero_starts_a_process_per_turn(self, make_agent: Any) -> None:
        """keep_warm_s=0 closes the process after each turn."""
        agent = make_agent(keep_warm_s=0)
        one = await agent.run(AgentRequest("one", session_id=None, resume=False), Recorder())

        await agent.run(AgentRequest("two", session_id=one.session_id, resume=True), Recorder())

        assert agent.spawned == 2
        assert agent.warm_sessions == ()

    async def test_least_recently_used_process_is_closed_beyond_max_warm(self, make_agent: Any, marker: str) -> None:
        """With max_warm=1 a second session's process replaces the first one's."""
        agent = make_agent(max_warm=1)
        await agent.run(AgentRequest("a", session_id="session-a", resume=False), Recorder())

        await agent.run(AgentRequest("b", session_id="session-b", resume=False), Recorder())

        assert agent.warm_sessions == ("session-b",)
        assert len(alive_with("VOICECODER_TEST_RUN", marker)) == 1

    async def test_idle_processes_are_reaped(self, make_agent: Any, marker: str) -> None:
        """reap_idle closes a process idle for longer than keep_warm_s, and end_session closes one at once."""
        agent = make_agent(keep_warm_s=1e-6)
        await agent.run(AgentRequest("a", session_id="session-a", resume=False), Recorder())
        assert alive_with("VOICECODER_TEST_RUN", marker) != []

        await agent.reap_idle()

        assert agent.warm_sessions == ()
        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_end_session_closes_the_process(self, make_agent: Any, marker: str) -> None:
        """end_session lets go of the warm process (and calling it twice is harmless)."""
        agent = make_agent()
        res = await agent.run(AgentRequest("a", session_id=None, resume=False), Recorder())
        assert res.session_id is not None

        await agent.end_session(res.session_id)
        await agent.end_session(res.session_id)

        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_resume_not_found_starts_a_fresh_session(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """A lost session is replaced by a new one, and the user is told (event + result notice)."""
        agent = make_agent({"FAKE_CLAUDE_SESSIONS": str(tmp_path / "sessions")})
        rec = Recorder()

        res = await agent.run(AgentRequest("continue", session_id="gone-session", resume=True), rec)

        (fresh,) = turns(record)
        assert flag(fresh["argv"], "--session-id") == SID
        assert fresh["stdin"] == "continue"
        assert (res.success, res.session_id, res.text) == (True, SID, "Echo: continue")
        (notice,) = rec.of(Notice)
        assert "no longer exists" in notice.text
        assert res.notices == (notice.text,)

    async def test_permission_denials_from_the_result_only(self, make_agent: Any, tmp_path: Path) -> None:
        """Denials listed only in the result (no system event, as in older CLIs) still become events."""
        script = write_script(
            tmp_path / "s.jsonl",
            init(),
            result(
                permission_denials=[
                    {"tool_name": "Write", "tool_use_id": "w1", "tool_input": {"file_path": "/tmp/x/notes.txt"}}
                ]
            ),
        )
        rec = Recorder()

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).run(
            AgentRequest("hi", session_id=None, resume=False), rec
        )

        assert rec.of(PermissionDenied) == [PermissionDenied("Write", "Write /tmp/x/notes.txt")]
        assert res.permission_denials == (PermissionDenied("Write", "Write /tmp/x/notes.txt"),)
        assert res.success is True

    async def test_compact_reports_the_compaction(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """compact() sends /compact to the session and reports the compact_boundary."""
        script = write_script(
            tmp_path / "s.jsonl",
            {"type": "system", "subtype": "status", "status": "compacting"},
            {"type": "system", "subtype": "status", "status": None, "compact_result": "success"},
            init(),
            {
                "type": "system",
                "subtype": "compact_boundary",
                "compact_metadata": {"trigger": "manual", "pre_tokens": 2929, "post_tokens": 2668},
            },
            {"type": "user", "message": {"role": "user", "content": "This session is being continued…"}},
            result(result="", num_turns=0),
        )
        rec = Recorder()

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).compact("sess-9", rec)

        (call,) = turns(record)
        assert flag(call["argv"], "--resume") == "sess-9"
        assert call["stdin"] == "/compact"
        assert rec.of(Compacted) == [Compacted(trigger="manual", pre_tokens=2929)]
        assert res.success is True
        assert res.session_id == "sess-9"
        assert res.text == "Conversation compacted: 2929 → 2668 tokens."

    async def test_compact_without_boundary_is_unsuccessful(self, make_agent: Any, tmp_path: Path) -> None:
        """'No messages to compact' ends with is_error false, but nothing was compacted."""
        script = write_script(
            tmp_path / "s.jsonl",
            init(),
            assistant({"type": "text", "text": "Error: No messages to compact"}),
            result(result="", num_turns=0),
        )

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).compact("sess-9", Recorder())

        assert res.success is False
        assert res.text == "Error: No messages to compact"


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
