"""
ClaudeCliAgent against a fake ``claude`` executable (tests/fakes/fake_claude.py) that speaks the persistent
stream-json protocol: real subprocesses, real signals, real pipes; the fake plays scripted turns.
"""

from __future__ import annotations

import logging
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.agent_processes import Recorder, alive_with
from tests.unit.adapters.claude.fake_cli import (
    FAKE_CLAUDE,
    FULL_TURN_EVENTS,
    SID,
    assistant,
    flag,
    full_turn_script,
    init,
    result,
    turns,
    write_script,
)
from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.domain.errors import AgentNotInstalledError, AgentRunError
from voicecoder.domain.model import (
    AgentRequest,
    AssistantText,
    Compacted,
    Notice,
    PermissionDenied,
    SessionStarted,
)


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
