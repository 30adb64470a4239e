"""
ClaudeCliAgent against a fake ``claude`` executable (tests/fakes/fake_claude.py): real subprocesses,
real signals, real pipes; the fake plays scripted stream-json turns.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import time
import tracemalloc
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.agent_processes import Recorder, alive_with, is_alive
from voicecoder.adapters.claude_cli_agent import (
    QUIET_ENV,
    ClaudeCliAgent,
    ClaudeCliConfig,
    LineSplitter,
    StreamParser,
    leader_is_ours,
    redact,
    tool_label,
)
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
    ToolFinished,
    ToolStarted,
)

FAKE_CLAUDE = Path(__file__).resolve().parents[2] / "fakes" / "fake_claude.py"
SID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
def _make_agent(workdir: Path, marker: str, record: Path) -> Iterator[Any]:
    """Builds an agent on the fake CLI; afterwards no process of any run may be left."""

    def make(env: Mapping[str, str] | None = None, **config: Any) -> ClaudeCliAgent:
        extra = {"VOICECODER_TEST_RUN": marker, "FAKE_CLAUDE_RECORD": str(record), **(env or {})}
        options: dict[str, Any] = {"grace_s": 0.5, "timeout_s": 30.0, "max_line_bytes": 1024 * 1024}
        options.update(config)
        cfg = ClaudeCliConfig(workdir=workdir, binary=str(FAKE_CLAUDE), extra_env=extra, **options)
        return ClaudeCliAgent(cfg, new_session_id=lambda: SID)

    yield make
    assert alive_with("VOICECODER_TEST_RUN", marker) == []


def recorded(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


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


class TestClaudeCliAgent:
    async def test_first_turn_flags_env_and_prompt_on_stdin(
        self, make_agent: Any, record: Path, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A first turn passes the headless flags and a new --session-id; the prompt goes on stdin only."""
        monkeypatch.setenv("TG_BOT_TOKEN", "123:telegram-secret")
        agent = make_agent(
            model="sonnet",
            max_turns=7,
            allowed_tools=["Bash(git *)", "Edit"],
            disallowed_tools="WebFetch",
            config_dir=tmp_path / "cfg",
        )

        res = await agent.run(AgentRequest("--help me; rm -rf /", session_id=None, resume=False), Recorder())

        (call,) = recorded(record)
        argv = call["argv"]
        assert argv[:4] == ["-p", "--output-format", "stream-json", "--verbose"]
        assert argv[argv.index("--permission-mode") + 1] == "acceptEdits"
        assert argv[argv.index("--session-id") + 1] == SID
        assert "--resume" not in argv
        assert argv[argv.index("--model") + 1] == "sonnet"
        assert argv[argv.index("--max-turns") + 1] == "7"
        assert argv[argv.index("--allowedTools") + 1 : argv.index("--allowedTools") + 3] == ["Bash(git *)", "Edit"]
        assert argv[argv.index("--disallowedTools") + 1] == "WebFetch"
        assert "keep answers brief" in argv[argv.index("--append-system-prompt") + 1]
        assert not any("rm -rf" in a for a in argv)
        assert call["stdin"] == "--help me; rm -rf /"
        env = call["env"]
        assert {k: env[k] for k in QUIET_ENV} == dict(QUIET_ENV)
        assert env["CLAUDE_CODE_MAX_RETRIES"] == "2"
        assert env["CLAUDE_CONFIG_DIR"] == str(tmp_path / "cfg")
        assert "TG_BOT_TOKEN" not in env
        assert (res.success, res.session_id, res.text) == (True, SID, "Echo: --help me; rm -rf /")

    async def test_resume_turn_passes_resume(self, make_agent: Any, record: Path) -> None:
        """A later turn resumes the given session and still passes the permission mode."""
        agent = make_agent(permission_mode="plan")

        res = await agent.run(AgentRequest("go on", session_id="abc-123", resume=True), Recorder())

        argv = recorded(record)[0]["argv"]
        assert argv[argv.index("--resume") + 1] == "abc-123"
        assert "--session-id" not in argv
        assert argv[argv.index("--permission-mode") + 1] == "plan"
        assert (res.session_id, res.notices) == ("abc-123", ())

    async def test_given_session_id_without_resume_is_used(self, make_agent: Any, record: Path) -> None:
        """A caller-chosen id on a first turn becomes the --session-id."""
        await make_agent().run(AgentRequest("hi", session_id="chosen-id", resume=False), Recorder())

        argv = recorded(record)[0]["argv"]
        assert argv[argv.index("--session-id") + 1] == "chosen-id"

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
        """subtype success + is_error true (an API failure, rc 1) is success=False, not an exception."""
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

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_EXIT": "1"}).run(
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
                subtype="error_max_turns",
                is_error=True,
                result=None,
                errors=["Reached maximum number of turns (1)"],
            ),
        )

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_EXIT": "1"}).run(
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
        caplog.set_level(logging.WARNING, logger="voicecoder.adapters.claude_cli_agent")

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

    async def test_usage_error_is_reported(self, make_agent: Any) -> None:
        """An empty prompt makes the CLI fail on stderr only; the error says so."""
        with pytest.raises(AgentRunError, match="Input must be provided"):
            await make_agent().run(AgentRequest("", session_id=None, resume=False), Recorder())

    async def test_relative_binary_path_is_resolved_before_changing_directory(
        self, workdir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A binary given relative to the current directory still runs although the CLI's cwd is the workspace."""
        monkeypatch.chdir(FAKE_CLAUDE.parent)
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=workdir, binary=f"./{FAKE_CLAUDE.name}"))

        res = await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

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

    async def test_timeout_stops_the_cli_and_its_children(self, make_agent: Any, tmp_path: Path) -> None:
        """A hanging CLI raises AgentTimeoutError; it and both its children (in and out of its group) are gone."""
        pidfile = tmp_path / "pids"
        script = write_script(tmp_path / "s.jsonl", init())
        agent = make_agent(
            {"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_HANG": "1", "FAKE_CLAUDE_GRANDCHILD": str(pidfile)},
            timeout_s=1.5,
        )
        started = time.monotonic()

        with pytest.raises(AgentTimeoutError):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert time.monotonic() - started < 6
        pids = [int(p) for p in pidfile.read_text().split()]
        assert len(pids) == 2
        assert [p for p in pids if is_alive(p)] == []

    async def test_timeout_escalates_to_sigkill(self, make_agent: Any, marker: str, tmp_path: Path) -> None:
        """A CLI that ignores SIGINT and SIGTERM is killed after the two graces."""
        script = write_script(tmp_path / "s.jsonl", init())
        agent = make_agent(
            {"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_HANG": "1", "FAKE_CLAUDE_IGNORE": "INT,TERM"},
            timeout_s=1.0,
            grace_s=0.3,
        )
        started = time.monotonic()

        with pytest.raises(AgentTimeoutError):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert 1.5 < time.monotonic() - started < 5
        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_cancel_mid_run_leaves_no_process(self, make_agent: Any, marker: str, tmp_path: Path) -> None:
        """Cancelling the calling task stops the CLI and its grandchildren; nothing with the run's env survives."""
        pidfile = tmp_path / "pids"
        script = write_script(tmp_path / "s.jsonl", init())
        agent = make_agent(
            {"FAKE_CLAUDE_SCRIPT": str(script), "FAKE_CLAUDE_HANG": "1", "FAKE_CLAUDE_GRANDCHILD": str(pidfile)}
        )
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

    async def test_background_children_are_swept_after_a_normal_turn(self, make_agent: Any, tmp_path: Path) -> None:
        """Processes the CLI leaves running after a successful turn are killed too."""
        pidfile = tmp_path / "pids"

        res = await make_agent({"FAKE_CLAUDE_GRANDCHILD": str(pidfile)}).run(
            AgentRequest("hi", session_id=None, resume=False), Recorder()
        )

        assert res.success is True
        assert [p for p in (int(x) for x in pidfile.read_text().split()) if is_alive(p)] == []

    async def test_result_then_lingering_cli_returns_the_result(self, make_agent: Any, marker: str) -> None:
        """A CLI that prints its result but does not exit is stopped after a short grace; the result counts."""
        agent = make_agent({"FAKE_CLAUDE_HANG": "1"}, timeout_s=0.5, result_grace_s=1.0, grace_s=0.3)
        started = time.monotonic()

        res = await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

        assert (res.success, res.text) == (True, "Echo: hi")
        assert time.monotonic() - started >= 1.0
        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_failing_callback_propagates_and_stops_the_cli(self, make_agent: Any, marker: str) -> None:
        """An exception from on_event reaches the caller unchanged and the CLI is stopped."""

        async def explode(event: AgentEvent) -> None:
            raise LookupError(type(event).__name__)

        agent = make_agent({"FAKE_CLAUDE_HANG": "1"})

        with pytest.raises(LookupError, match="SessionStarted"):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), explode)

        assert alive_with("VOICECODER_TEST_RUN", marker) == []

    async def test_resume_not_found_starts_a_fresh_session(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """A lost session is replaced by a new one, and the user is told (event + result notice)."""
        agent = make_agent({"FAKE_CLAUDE_SESSIONS": str(tmp_path / "sessions")})
        rec = Recorder()

        res = await agent.run(AgentRequest("continue", session_id="gone-session", resume=True), rec)

        first, second = recorded(record)
        assert first["argv"][first["argv"].index("--resume") + 1] == "gone-session"
        assert second["argv"][second["argv"].index("--session-id") + 1] == SID
        assert second["stdin"] == "continue"
        assert (res.success, res.session_id, res.text) == (True, SID, "Echo: continue")
        (notice,) = rec.of(Notice)
        assert "no longer exists" in notice.text
        assert res.notices == (notice.text,)

    async def test_resume_of_known_session_continues(self, make_agent: Any, record: Path, tmp_path: Path) -> None:
        """A session created by a first turn is resumed without a notice."""
        agent = make_agent({"FAKE_CLAUDE_SESSIONS": str(tmp_path / "sessions")})
        first = await agent.run(AgentRequest("one", session_id=None, resume=False), Recorder())
        rec = Recorder()

        second = await agent.run(AgentRequest("two", session_id=first.session_id, resume=True), rec)

        assert second.session_id == first.session_id == SID
        assert rec.of(Notice) == []
        assert len(recorded(record)) == 2

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
        """compact() resumes the session with /compact and reports the compact_boundary."""
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

        (call,) = recorded(record)
        assert call["argv"][call["argv"].index("--resume") + 1] == "sess-9"
        assert call["stdin"] == "/compact"
        assert rec.of(Compacted) == [Compacted(trigger="manual", pre_tokens=2929)]
        assert res.success is True
        assert res.session_id == "sess-9"
        assert res.text == "Conversation compacted: 2929 → 2668 tokens."

    async def test_compact_without_boundary_is_unsuccessful(self, make_agent: Any, tmp_path: Path) -> None:
        """'No messages to compact' exits 0 with is_error false, but nothing was compacted."""
        script = write_script(
            tmp_path / "s.jsonl",
            init(),
            assistant({"type": "text", "text": "Error: No messages to compact"}),
            result(result="", num_turns=0),
        )

        res = await make_agent({"FAKE_CLAUDE_SCRIPT": str(script)}).compact("sess-9", Recorder())

        assert res.success is False
        assert res.text == "Error: No messages to compact"

    async def test_missing_workdir_is_a_run_error(self, tmp_path: Path) -> None:
        """A workspace that does not exist is reported as such, not as a missing CLI."""
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=tmp_path / "absent", binary=str(FAKE_CLAUDE)))

        with pytest.raises(AgentRunError, match="does not exist"):
            await agent.run(AgentRequest("hi", session_id=None, resume=False), Recorder())

    def test_repr_hides_env_values(self, workdir: Path) -> None:
        """The config repr names extra env vars but never shows their values."""
        cfg = ClaudeCliConfig(workdir=workdir, extra_env={"ANTHROPIC_API_KEY": "sk-ant-secret-value"})

        assert "ANTHROPIC_API_KEY" in repr(cfg)
        assert "secret-value" not in repr(cfg)


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


class TestLeaderIsOurs:
    def test_only_the_marked_process_is_ours(self, marker: str) -> None:
        """A live process with the run's marker is ours; this test process and a vanished pid are not."""
        child = subprocess.Popen(["sleep", "30"], env={**os.environ, "VOICECODER_AGENT_RUN": marker})
        try:
            # Until exec completes, /proc/<pid>/environ still shows the parent's environment.
            deadline = time.monotonic() + 5
            while Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert leader_is_ours(child.pid, marker) is True
            assert leader_is_ours(os.getpid(), marker) is False
        finally:
            child.kill()
            child.wait()

        assert leader_is_ours(child.pid, marker) is False


class TestLineSplitter:
    def test_lines_across_chunks(self) -> None:
        """Lines split over chunk boundaries are reassembled."""
        splitter = LineSplitter(100)

        lines = splitter.feed(b'{"a":') + splitter.feed(b"1}\n{") + splitter.feed(b'"b":2}\nta')

        assert lines == [b'{"a":1}', b'{"b":2}']
        assert splitter.finish() == b"ta"

    def test_oversize_line_is_dropped(self) -> None:
        """A line over the limit is skipped; the next line is intact."""
        splitter = LineSplitter(10)

        lines = splitter.feed(b"short\n" + b"x" * 8) + splitter.feed(b"y" * 50) + splitter.feed(b"zz\nok\n")

        assert lines == [b"short", b"ok"]
        assert splitter.dropped_lines == 1

    @given(
        lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
        cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    )
    def test_any_chunking_gives_the_short_lines(self, lines: list[bytes], cuts: list[int]) -> None:
        """However the stream is chunked, exactly the lines within the limit come out, in order."""
        data = b"".join(line + b"\n" for line in lines)
        bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        splitter = LineSplitter(20)

        out: list[bytes] = []
        for start, end in itertools.pairwise(bounds):
            out += splitter.feed(data[start:end])

        assert out == [line for line in lines if len(line) <= 20]
        assert splitter.finish() is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["type", "subtype", "message", "content", "text", "id", "name", "input", "is_error", "errors", "result"]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


class TestStreamParser:
    @given(
        objs=st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["system", "assistant", "user", "result", "other"])},
                optional={
                    "subtype": st.sampled_from(["init", "permission_denied", "api_retry", "compact_boundary"])
                    | json_values,
                    "message": json_values,
                    "session_id": json_values,
                    "permission_denials": json_values,
                    "compact_metadata": json_values,
                    "attempt": json_values,
                    "is_error": json_values,
                    "errors": json_values,
                    "result": json_values,
                },
            ),
            max_size=8,
        )
    )
    def test_never_crashes_on_malformed_fields(self, objs: list[dict[str, Any]]) -> None:
        """Any shape of known and unknown fields yields events or nothing, and a result can always be built."""
        parser = StreamParser(workdir=PurePath("/ws"))

        for obj in objs:
            parser.feed(obj)
        res = parser.agent_result()

        assert isinstance(res.success, bool)

    def test_subagent_text_is_not_reported(self) -> None:
        """Text from a nested agent (parent_tool_use_id set) is not the assistant's answer."""
        parser = StreamParser()

        events = parser.feed(assistant({"type": "text", "text": "inner"}, parent="toolu_1"))

        assert events == []

    def test_second_init_is_not_a_new_session(self) -> None:
        """/compact emits init after status lines; only the first init announces the session."""
        parser = StreamParser()

        first = parser.feed({"type": "system", "subtype": "init", "session_id": "s1"})
        second = parser.feed({"type": "system", "subtype": "init", "session_id": "s1"})

        assert (first, second) == ([SessionStarted("s1", None)], [])


class TestToolLabel:
    @pytest.mark.parametrize(
        ("name", "tool_input", "expected"),
        [
            ("Edit", {"file_path": "/ws/src/app.py", "old_string": "a"}, "Edit src/app.py"),
            ("Write", {"file_path": "/ws/notes.txt", "content": "x"}, "Write notes.txt"),
            ("Read", {"file_path": "/elsewhere/README.md"}, "Read /elsewhere/README.md"),
            ("Bash", {"command": "pytest -q", "description": "run tests"}, "Bash: pytest -q"),
            ("Bash", {"command": "echo a\n  echo b"}, "Bash: echo a echo b"),
            ("Grep", {"pattern": "foo"}, 'Grep "foo"'),
            ("Grep", {"pattern": "foo", "path": "/ws/src"}, 'Grep "foo" in src'),
            ("Glob", {"pattern": "**/*.py"}, 'Glob "**/*.py"'),
            ("WebFetch", {"url": "https://example.org", "prompt": "x"}, "WebFetch https://example.org"),
            ("Task", {"description": "explore", "prompt": "..."}, "Task: explore"),
            ("NotebookEdit", {"notebook_path": "/ws/a.ipynb"}, "NotebookEdit a.ipynb"),
            ("TodoWrite", {"todos": []}, "TodoWrite"),
            ("Mystery", None, "Mystery"),
        ],
    )
    def test_labels(self, name: str, tool_input: dict[str, Any] | None, expected: str) -> None:
        """Each tool gets a short label naming what it touches."""
        assert tool_label(name, tool_input, PurePath("/ws")) == expected

    def test_any_spelling_of_the_workspace(self) -> None:
        """With several roots (symlinked and resolved), a path under either is shown relative."""
        roots = (PurePath("/home/u/ws"), PurePath("/data/ws"))

        labels = [tool_label("Read", {"file_path": p}, roots) for p in ("/home/u/ws/a.py", "/data/ws/b.py")]

        assert labels == ["Read a.py", "Read b.py"]

    def test_long_command_is_shortened(self) -> None:
        """Labels stay short enough for a chat progress line."""
        label = tool_label("Bash", {"command": "x" * 500})

        assert len(label) == 80
        assert label.endswith("…")


class TestRedact:
    def test_keys_and_literals(self) -> None:
        """Anthropic keys, key=value pairs, long tokens and given literals are masked."""
        text = "key sk-ant-api03-abc_DEF-123 x-api-key: abcdef123 token=zzzzzzzz " + "a" * 45 + " hello mysecret"

        out = redact(text, ["mysecret"])

        assert "sk-ant" not in out
        assert "abcdef123" not in out
        assert "zzzzzzzz" not in out
        assert "a" * 45 not in out
        assert "mysecret" not in out
        assert "hello" in out
