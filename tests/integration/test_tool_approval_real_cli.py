"""
Tool approval end to end: the use cases, the REAL Claude Code CLI and a real git workspace, with a scripted
model on the fake Messages API (which records what the model is sent, so a test sees the reason it reads).

The phone is a RecordingMessenger: questions are answered by pressing their buttons or replying to them
through the same use cases Telegram's router calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent_processes import Recorder, alive_with
from tests.questions import answer_first_question, button, closed, questions
from tests.real_cli import (  # the fixtures are used by name
    MARKER_VAR,
    AgentFactory,
    api_fixture,  # noqa: F401
    git,
    make_agent_fixture,  # noqa: F401
    marker_fixture,  # noqa: F401
    needs_cli,
    repo_fixture,  # noqa: F401
)
from voicecoder.adapters.claude import ClaudeCliAgent
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.domain.model import AgentRequest, ChatId, Session, UserId
from voicecoder.domain.policy import ToolPolicy
from voicecoder.domain.replies import (
    Action,
    AgentAnswer,
    Button,
    Cancelled,
    ChangeSummary,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
)
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.simulators.anthropic import FakeAnthropicApi, Reply, bash, write_file
from voicecoder.testing.fakes import FakePorts, build_voicecoder

pytestmark = needs_cli

CHAT = ChatId(7)
ALICE = UserId(1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


Wire = Callable[..., Awaitable[tuple[VoiceCoder, FakePorts, ClaudeCliAgent]]]


@pytest.fixture(name="wire")
def _wire(repo: Path, make_agent: AgentFactory) -> Wire:
    async def wire(**settings: Any) -> tuple[VoiceCoder, FakePorts, ClaudeCliAgent]:
        workspace = DulwichWorkspace(repo, init_if_missing=False)
        await workspace.open()
        agent = make_agent(**settings.pop("agent", {}))
        options: dict[str, Any] = {
            "allowed_users": frozenset({ALICE}),
            "workspace_path": str(repo),
            "tools": ToolPolicy(workspace=str(repo.resolve())),
            "tool_timeout_s": 600.0,
        }
        options.update(settings)
        app, fakes = build_voicecoder(settings=Settings(**options), agent=agent, workspace=workspace)
        return app, fakes, agent

    return wire


async def asking(
    app: VoiceCoder, fakes: FakePorts, answer: Callable[[ToolQuestion], Awaitable[None]], prompt: str
) -> None:
    await answer_first_question(app, fakes.messenger, CHAT, ALICE, prompt, answer)


def last_tool_result(api: FakeAnthropicApi) -> str:
    """What the model was told about its last tool call."""
    request = next(r for r in reversed(api.requests) if r.tool_results)
    return request.tool_results[-1][1]


class TestToolApprovalThroughTheRealCli:
    async def test_allow_once_runs_the_command(self, wire: Wire, api: FakeAnthropicApi, repo: Path) -> None:
        """The question shows the exact command; ✅ Allow runs it and the change is offered for approval."""
        app, fakes, _ = await wire()
        api.script(Reply.tool(bash("echo ran > ran.txt", "Write a marker")), Reply.text("It ran."))

        async def allow(question: ToolQuestion) -> None:
            await app.press(CHAT, ALICE, "cb", button(question, Action.TOOL_ALLOW), user_name="Alice")

        await asking(app, fakes, allow, "make the marker")

        (question,) = questions(fakes)
        assert (question.request.command, question.request.description) == ("echo ran > ran.txt", "Write a marker")
        assert (repo / "ran.txt").read_text() == "ran\n"
        assert closed(fakes) == [ToolQuestionClosed(question, ToolOutcome.ALLOWED, "Alice")]
        assert fakes.messenger.of_type(AgentAnswer)[0].text == "It ran."
        assert [f.path for f in fakes.messenger.of_type(ChangeSummary)[0].diff.files] == ["ran.txt"]

    async def test_allow_for_the_session_is_not_asked_again(
        self, wire: Wire, api: FakeAnthropicApi, repo: Path
    ) -> None:
        """🔓 adds Bash(echo *); the next turn's echo runs without a question, on the same warm process."""
        app, fakes, agent = await wire()
        api.script(
            Reply.tool(bash("echo one > one.txt")),
            Reply.text("First."),
            Reply.tool(bash("echo two > two.txt")),
            Reply.text("Second."),
        )

        async def allow_session(question: ToolQuestion) -> None:
            await app.press(CHAT, ALICE, "cb", button(question, Action.TOOL_ALLOW_SESSION))

        await asking(app, fakes, allow_session, "first")
        await app.prompt(CHAT, ALICE, "second")

        assert len(questions(fakes)) == 1
        assert questions(fakes)[0].session_rule == "Bash(echo *)"
        assert ((repo / "one.txt").read_text(), (repo / "two.txt").read_text()) == ("one\n", "two\n")
        assert agent.spawned == 1

    async def test_deny_with_a_reason_reaches_the_model(self, wire: Wire, api: FakeAnthropicApi, repo: Path) -> None:
        """A reply to the question denies it; the model's next request carries the user's reason."""
        app, fakes, _ = await wire()
        api.script(Reply.tool(bash("rm README.md")), Reply.text("Understood."))

        async def reply(question: ToolQuestion) -> None:
            ref = next(s.ref for s in fakes.messenger.sent if s.reply is question)
            await app.prompt(CHAT, ALICE, "keep the README, it is documented", reply_to=ref.message_id)

        await asking(app, fakes, reply, "tidy up")

        assert (repo / "README.md").exists()
        assert "keep the README, it is documented" in last_tool_result(api)
        (denial,) = fakes.messenger.of_type(AgentAnswer)[0].permission_denials
        assert denial.label == "Bash: rm README.md"
        assert "tap ✅ Allow" in denial.hint

    async def test_no_answer_in_time_is_a_denial_the_model_reads(self, wire: Wire, api: FakeAnthropicApi) -> None:
        """An unanswered question times out as a denial with that reason."""
        app, fakes, _ = await wire(tool_timeout_s=1.0)
        api.script(Reply.tool(bash("touch later.txt")), Reply.text("Nobody answered."))

        await app.prompt(CHAT, ALICE, "wait for me")

        assert closed(fakes)[0].outcome is ToolOutcome.TIMED_OUT
        assert "Nobody answered on the phone" in last_tool_result(api)

    async def test_write_outside_the_workspace_is_refused(
        self, wire: Wire, api: FakeAnthropicApi, tmp_path: Path
    ) -> None:
        """A Write outside the workspace is denied without a question; the model reads why."""
        app, fakes, _ = await wire()
        outside = tmp_path / "outside.txt"
        api.script(Reply.tool(write_file(str(outside), "no\n")), Reply.text("I stayed inside."))

        await app.prompt(CHAT, ALICE, "write outside")

        assert not outside.exists()
        assert questions(fakes) == []
        assert "outside the workspace" in last_tool_result(api)

    async def test_a_destructive_command_asks_despite_a_rule(self, wire: Wire, api: FakeAnthropicApi) -> None:
        """With Bash(rm *) allowed, rm -rf still asks, flagged, without the session button."""
        app, fakes, _ = await wire()
        await fakes.store.save_session(Session(chat_id=CHAT, tool_rules=("Bash(rm *)",)))
        api.script(Reply.tool(bash("rm -rf build")), Reply.text("Kept it."))

        async def deny(question: ToolQuestion) -> None:
            await app.press(CHAT, ALICE, "cb", button(question, Action.TOOL_DENY))

        await asking(app, fakes, deny, "clean the build")

        (question,) = questions(fakes)
        assert question.flagged is not None
        assert "rm -r" in question.flagged
        assert question.session_rule is None

    async def test_cancel_while_a_question_waits(self, wire: Wire, api: FakeAnthropicApi, marker: str) -> None:
        """⏹ Cancel during a question ends the turn; only the idle CLI is left."""
        app, fakes, agent = await wire()
        api.script(Reply.tool(bash("touch never.txt")), Reply.text("unreachable"))

        async def cancel(_: ToolQuestion) -> None:
            await app.press(CHAT, ALICE, "cancel", Button(Action.CANCEL))

        await asking(app, fakes, cancel, "start and stop")

        assert closed(fakes)[0].outcome is ToolOutcome.CANCELLED
        assert fakes.messenger.of_type(Cancelled) == [Cancelled(was_running=True)]
        assert len(alive_with(MARKER_VAR, marker)) <= len(agent.warm_sessions)

    async def test_restart_while_a_question_waits(self, wire: Wire, api: FakeAnthropicApi, marker: str) -> None:
        """shutdown() during a question ends the turn cleanly and tells the user; closing leaves nothing."""
        app, fakes, agent = await wire()
        api.script(Reply.tool(bash("touch never.txt")), Reply.text("unreachable"))

        async def restart(_: ToolQuestion) -> None:
            await app.shutdown()

        await asking(app, fakes, restart, "start and restart")
        await agent.aclose()

        assert closed(fakes)[0].outcome is ToolOutcome.RESTARTED
        (stopped,) = fakes.messenger.of_type(Cancelled)
        assert stopped.reason is not None
        assert alive_with(MARKER_VAR, marker) == []

    async def test_the_agent_sees_none_of_voicecoders_secrets(
        self, wire: Wire, api: FakeAnthropicApi, repo: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`env` run by the agent shows no voicecoder setting, whatever voicecoder's own environment holds."""
        secrets = {
            "TELEGRAM_TOKEN": "123456789:AAbbccddeeffgghhiijjkkllmmnnooppqqr",
            "WEBHOOK_SECRET": "webhook-secret-for-the-env-test",
            "WEBHOOK_PATH": "/telegram/webhook-path-for-the-env-test",
            "DEEPGRAM_API_KEY": "deepgram-key-for-the-env-test",
            "ASSEMBLYAI_API_KEY": "assemblyai-key-for-the-env-test",
            "DATA_DIR": "/srv/voicecoder-data-for-the-env-test",
        }
        for name, value in secrets.items():
            monkeypatch.setenv(name, value)
        app, fakes, _ = await wire()
        api.script(Reply.tool(bash("env > env.txt")), Reply.text("Saved."))

        async def allow(question: ToolQuestion) -> None:
            await app.press(CHAT, ALICE, "cb", button(question, Action.TOOL_ALLOW))

        await asking(app, fakes, allow, "save the environment")

        dumped = (repo / "env.txt").read_text()
        assert "PATH=" in dumped
        assert [name for name in secrets if name in dumped] == []
        assert [value for value in secrets.values() if value in dumped] == []


class TestConfigDir:
    async def test_an_empty_config_dir_means_unset_and_the_workspace_stays_clean(
        self, make_agent: AgentFactory, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CLAUDE_CONFIG_DIR= in the environment is unset: the CLI uses $HOME/.claude, never the workspace."""
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")
        agent = make_agent(config_dir=None)

        res = await agent.run(AgentRequest("say hi", session_id=None, resume=False), Recorder())

        assert res.success is True
        assert git(repo, "status", "--porcelain", "--ignored") == ""
        assert (tmp_path / "home" / ".claude").is_dir()
