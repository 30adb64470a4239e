from __future__ import annotations

import anyio

from tests.unit.domain.restart import fakes_ports
from tests.unit.domain.scenario import ALICE, CHAT, MALLORY, OGG
from tests.unit.domain.scenario import button as _press
from tests.unit.domain.scenario import change as _change
from voicecoder.domain.app import COMMANDS
from voicecoder.domain.model import (
    AgentRequest,
    AgentResult,
    Audio,
    ChatId,
    PermissionDenied,
)
from voicecoder.domain.ports import EventSink, ToolGate
from voicecoder.domain.replies import (
    Action,
    AgentAnswer,
    Button,
    Cancelled,
    ChangeSummary,
    Compaction,
    ErrorReply,
    Heard,
    HelpText,
    InfoReport,
    NoChanges,
    Queued,
    SessionCleared,
    StatusReport,
    TurnOutcome,
    Unauthorized,
    Welcome,
    Working,
)
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.testing.fakes import AgentScript, FakePorts, build_voicecoder


class TestAccess:
    async def test_unauthorized_user_gets_refusal_and_nothing_runs(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A user outside ALLOWED_USER_IDS gets ⛔ and the agent never runs.
        """
        await app.prompt(CHAT, MALLORY, "rm -rf /")
        await app.voice(CHAT, MALLORY, Audio(OGG))

        assert fakes.messenger.replies() == [Unauthorized(666), Unauthorized(666)]
        assert fakes.agent.requests == []
        assert fakes.transcriber.calls == []

    async def test_unauthorized_button_press_is_refused(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Buttons pressed by a stranger are answered with a refusal and change nothing.
        """
        summary = await _change(app, fakes, {"a.txt": b"x\n"})

        await app.press(CHAT, MALLORY, "cb1", _press(summary, Action.APPROVE))

        assert fakes.workspace.commits == []
        assert fakes.messenger.callbacks[-1] == ("cb1", "⛔ Not authorized")


class TestSimpleCommands:
    async def test_start_and_help(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        /start welcomes with the workspace path; /help lists the commands.
        """
        await app.start(CHAT, ALICE, "Alice")
        await app.help(CHAT, ALICE)

        welcome, help_text = fakes.messenger.replies()
        assert welcome == Welcome("Alice", fakes.workspace.path, COMMANDS)
        assert isinstance(help_text, HelpText)
        assert [c for c, _ in help_text.commands] == ["start", "help", "status", "clear", "info", "undo", "permissions"]

    async def test_info_collects_every_diagnostic(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        /info reports one line per dependency.
        """
        await app.info(CHAT, ALICE)

        (report,) = fakes.messenger.of_type(InfoReport)
        assert [d.name for d in report.diagnostics] == ["workspace", "agent", "speech to text"]

    async def test_status_reports_session_pending_and_history(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        /status shows turns x/20, the pending change, approval history, branch and latest commit.
        """
        summary = await _change(app, fakes, {"a.txt": b"1\n"})
        await app.press(CHAT, ALICE, "cb", _press(summary, Action.APPROVE))
        await _change(app, fakes, {"b.txt": b"2\n"})

        await app.status(CHAT, ALICE)

        (report,) = fakes.messenger.of_type(StatusReport)
        assert (report.turn_count, report.compaction_threshold) == (2, 20)
        assert report.pending is not None
        assert report.pending.diff.paths == ("b.txt",)
        assert report.approved_count == 1
        assert [r.action for r in report.history] == ["approve"]
        assert report.workspace is not None
        assert report.workspace.branch == "main"
        assert report.workspace.latest_subject == "Apply changes from Claude"
        assert report.user_id == ALICE.value

    async def test_status_names_the_user(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        /status shows the user's name and @username when the transport knows them, and the workspace file count.
        """
        await app.status(CHAT, ALICE, user_name="Alice Liddell", username="alice")

        (report,) = fakes.messenger.of_type(StatusReport)
        assert (report.user_name, report.username) == ("Alice Liddell", "alice")
        assert report.workspace is not None
        assert report.workspace.tracked_files == len(fakes.workspace.head)

    async def test_clear_after_a_decision_says_nothing_is_pending(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        /clear after Approve or Reject does not claim a change is still waiting.
        """
        approved = await _change(app, fakes, {"a.txt": b"1\n"})
        await app.press(CHAT, ALICE, "a", _press(approved, Action.APPROVE))
        await app.clear(CHAT, ALICE)
        rejected = await _change(app, fakes, {"b.txt": b"2\n"})
        await app.press(CHAT, ALICE, "r", _press(rejected, Action.REJECT))
        await app.clear(CHAT, ALICE)
        await _change(app, fakes, {"c.txt": b"3\n"})
        await app.clear(CHAT, ALICE)

        assert fakes.messenger.of_type(SessionCleared) == [
            SessionCleared(kept_pending=False),
            SessionCleared(kept_pending=False),
            SessionCleared(kept_pending=True),
        ]


class TestPrompt:
    async def test_answer_without_changes_says_so(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A turn that changes nothing answers and reports "no git changes", with nothing pending.
        """
        await app.prompt(CHAT, ALICE, "what is in README?")

        replies = fakes.messenger.replies()
        assert isinstance(replies[0], Working)
        assert replies[1] == AgentAnswer(
            "Echo: what is in README?", success=True, cost_usd=0.0, num_turns=1, duration_ms=1
        )
        assert replies[2] == NoChanges()
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert session.pending is None
        assert session.turn_count == 1

    async def test_progress_message_is_edited_and_finished(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        The status message ends with the tool steps and no Cancel button.
        """
        await _change(app, fakes, {"src/app.py": b"print(1)\n"})

        _, final = fakes.messenger.edits[-1]
        assert isinstance(final, Working)
        assert final.finished
        assert not final.cancellable
        assert final.steps == ("🔧 Write src/app.py",)

    async def test_empty_prompt_is_refused(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Whitespace is not a prompt.
        """
        await app.prompt(CHAT, ALICE, "   ")

        assert isinstance(fakes.messenger.replies()[0], ErrorReply)
        assert fakes.agent.requests == []

    async def test_second_turn_resumes_the_session(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        The first turn starts a session; the next resumes it.
        """
        await app.prompt(CHAT, ALICE, "one")
        await app.prompt(CHAT, ALICE, "two")

        first, second = fakes.agent.requests
        assert (first.session_id, first.resume) == (None, False)
        assert second.resume
        assert second.session_id is not None

    async def test_clear_starts_a_fresh_session(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        After /clear the next turn does not resume.
        """
        await app.prompt(CHAT, ALICE, "one")
        await app.clear(CHAT, ALICE)
        await app.prompt(CHAT, ALICE, "two")

        assert fakes.messenger.of_type(SessionCleared) == [SessionCleared(kept_pending=False)]
        assert fakes.agent.requests[-1].resume is False

    async def test_compaction_at_threshold(self, fakes: FakePorts) -> None:
        """
        When the turn count reaches the threshold the session is compacted before the next turn.
        """
        app, fakes = build_voicecoder(
            settings=Settings(allowed_users=frozenset({ALICE}), compaction_threshold=3),
        )
        for i in range(4):
            await app.prompt(CHAT, ALICE, f"p{i}")

        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert len(fakes.agent.compactions) == 1
        assert fakes.messenger.of_type(Compaction)[0].turns_before == 3
        assert session.turn_count == 1

    async def test_failed_run_without_changes_is_one_clear_reply(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A run that fails and changes nothing ends with the failure (status "stopped"), not "finished" + "no changes".
        """

        class NotLoggedIn:
            async def run(
                self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None
            ) -> AgentResult:
                return AgentResult("Not logged in", success=False, session_id="s", errors=("Not logged in",))

            async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
                raise NotImplementedError

            async def end_session(self, session_id: str, /) -> None:
                pass

        app, fakes = build_voicecoder(allowed_users=[1], agent=NotLoggedIn())

        await app.prompt(CHAT, ALICE, "say hi")

        _, final = fakes.messenger.edits[-1]
        assert isinstance(final, Working)
        assert final.outcome is TurnOutcome.FAILED
        assert [type(r) for r in fakes.messenger.replies()] == [Working, AgentAnswer]

    async def test_agent_crash_still_detects_changes(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A crashing agent gives an error reply, and files it wrote before crashing still await a decision.
        """
        fakes.agent.script(AgentScript(writes={"half.py": b"x = 1\n"}, error="Claude crashed (exit 1)."))

        await app.prompt(CHAT, ALICE, "go")

        assert fakes.messenger.of_type(ErrorReply) == [ErrorReply("Claude crashed (exit 1).")]
        (summary,) = fakes.messenger.of_type(ChangeSummary)
        assert summary.diff.paths == ("half.py",)

    async def test_permission_denials_reach_the_user(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Denials in the agent result are in the answer, never dropped.
        """

        class Denying:
            async def run(
                self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None
            ) -> AgentResult:
                return AgentResult(
                    "Could not run it.",
                    success=True,
                    session_id="s",
                    permission_denials=(PermissionDenied("Bash", "Bash: rm -rf build"),),
                )

            async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
                raise NotImplementedError

            async def end_session(self, session_id: str, /) -> None:
                return None

        app, fakes = build_voicecoder(allowed_users=[1], agent=Denying())

        await app.prompt(CHAT, ALICE, "clean")

        (answer,) = fakes.messenger.of_type(AgentAnswer)
        assert answer.permission_denials == (PermissionDenied("Bash", "Bash: rm -rf build"),)
        # A denial is no dead end: with TOOL_APPROVAL off the user learns how to be asked instead.
        assert "turn it on (auto-edits)" in answer.permission_denials[0].hint


class TestVoice:
    async def test_voice_is_heard_then_run(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A voice note is transcribed, echoed as "Heard", and runs as the prompt with code vocabulary hints.
        """
        audio = Audio(OGG + b"create")
        fakes.transcriber.learn(audio, "create a file called test dot txt")

        await app.voice(CHAT, ALICE, audio)

        assert fakes.messenger.replies()[0] == Heard("create a file called test dot txt", 0.99, "en")
        assert fakes.agent.requests[0].prompt == "create a file called test dot txt"
        (_, hints) = fakes.transcriber.calls[0]
        assert hints is not None
        assert hints.keyterms == ("README.md",)
        assert any(r.action == "transcribed" and r.audio_digest == audio.digest for r in fakes.store.audit)

    async def test_unreadable_audio_is_explained_and_nothing_runs(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Non-audio gets a clear error and no agent turn.
        """
        await app.voice(CHAT, ALICE, Audio(b"this is not audio at all"))

        (error,) = fakes.messenger.of_type(ErrorReply)
        assert "not audio" in error.message
        assert fakes.agent.requests == []

    async def test_silence_is_no_speech(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Silence gives a "heard no speech" reply instead of an empty prompt.
        """
        await app.voice(CHAT, ALICE, Audio(OGG))

        (error,) = fakes.messenger.of_type(ErrorReply)
        assert "no speech" in error.message
        assert fakes.agent.requests == []


class TestConcurrency:
    async def test_cancel_stops_the_running_turn(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        ⏹ Cancel stops the agent; the user is told and the turn's files still get buttons.
        """
        fakes.agent.gate = anyio.Event()
        fakes.agent.script(AgentScript(writes={"partial.txt": b"p\n"}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(app.prompt, CHAT, ALICE, "long task")
            await anyio.wait_all_tasks_blocked()
            await app.press(CHAT, ALICE, "cancel", Button(Action.CANCEL))

        assert fakes.agent.cancelled == 1
        assert fakes.messenger.of_type(Cancelled) == [Cancelled(was_running=True)]
        assert fakes.messenger.of_type(ChangeSummary)[0].diff.paths == ("partial.txt",)
        _, final = next(e for e in fakes.messenger.edits if isinstance(e[1], Working) and e[1].finished)
        assert isinstance(final, Working)
        assert final.outcome is TurnOutcome.CANCELLED

    async def test_second_prompt_is_queued(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        While a turn runs, another prompt waits with a "queued" reply and runs afterwards.
        """
        gate = anyio.Event()
        fakes.agent.gate = gate

        async with anyio.create_task_group() as tg:
            tg.start_soon(app.prompt, CHAT, ALICE, "first")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(app.prompt, ChatId(200), ALICE, "second")
            await anyio.wait_all_tasks_blocked()
            assert fakes.messenger.of_type(Queued) == [Queued(ahead=1)]
            gate.set()

        assert [r.prompt for r in fakes.agent.requests] == ["first", "second"]

    async def test_approve_during_a_turn_is_refused(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Approving while the agent is writing would commit half a turn: it is refused.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        fakes.agent.gate = anyio.Event()

        async with anyio.create_task_group() as tg:
            tg.start_soon(app.prompt, CHAT, ALICE, "more")
            await anyio.wait_all_tasks_blocked()
            await app.press(CHAT, ALICE, "cb", _press(summary, Action.APPROVE))
            fakes.agent.gate.set()

        assert fakes.workspace.commits == []
        assert "still working" in (fakes.messenger.callbacks[0][1] or "")


class TestRestartMidTurn:
    async def test_edits_of_an_interrupted_turn_still_need_approval(self) -> None:
        """
        A turn cut off by a restart leaves its baseline in the session: the next turn's diff includes its edits.
        """
        app, fakes = build_voicecoder(allowed_users=[ALICE.value])
        fakes.agent.gate = anyio.Event()
        fakes.agent.script(AgentScript(writes={"half.py": b"x = 1\n"}))
        async with anyio.create_task_group() as tg:
            tg.start_soon(app.prompt, CHAT, ALICE, "big refactor")
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()  # the process dies mid-turn
        restarted = VoiceCoder(fakes_ports(fakes), app.settings)
        fakes.agent.gate = None

        await restarted.prompt(CHAT, ALICE, "carry on")

        summary = fakes.messenger.of_type(ChangeSummary)[-1]
        assert summary.diff.paths == ("half.py",)
        final = [r for _, r in fakes.messenger.edits if isinstance(r, Working) and r.finished][-1]
        assert final.steps[0].startswith("↩️")
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert session.open_turn is None
