"""
`MessengerContract`: what every `Messenger` must do, checked through what the *user* sees.

Subclass it, override `messenger` and `chat` (a `ChatView` over your fake chat backend). What a double cannot
simulate is declared by the view (`ChatView.splits_long_text`, `ChatView.sends_documents`), never skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import attrs
import pytest

from voicecoder.domain.callbacks import decode_callback
from voicecoder.domain.errors import DeliveryError
from voicecoder.domain.model import (
    AuditAction,
    AuditRecord,
    ChangeId,
    ChangeKind,
    ChatId,
    CommitInfo,
    Diagnostic,
    Diff,
    FileChange,
    Ownership,
    QuestionId,
    ToolKind,
    ToolRequest,
    UserId,
    WorkspaceStatus,
)
from voicecoder.domain.ports import Messenger
from voicecoder.domain.replies import (
    AgentAnswer,
    ApprovalChoiceNeeded,
    AutoApproved,
    Cancelled,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeReverted,
    ChangeSummary,
    Compaction,
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    InterruptedPrompt,
    MessageRef,
    NoChanges,
    PermissionsView,
    ProjectChosen,
    ProjectPicker,
    Queued,
    Reply,
    SessionCleared,
    SpeechCheck,
    StalePrompt,
    StatusReport,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
    Unauthorized,
    Welcome,
    Working,
    buttons_of,
)
from voicecoder.testing.replies import REPLY_TYPES

__all__ = ["ChatView", "MessengerContract", "SeenMessage", "sample_diff", "sample_question", "sample_replies"]

TEXT_LIMIT = 4096


@attrs.frozen
class SeenMessage:
    """A message as the user sees it: visible text (or caption), buttons' callback data, an attached file."""

    text: str
    buttons: tuple[str, ...] = ()
    document: tuple[str, bytes] | None = None


class ChatView(Protocol):
    """The user's side of the chat the messenger under test writes to."""

    chat: ChatId
    splits_long_text: bool
    """True if the messenger splits text over the platform limit into several messages."""
    sends_documents: bool
    """True if long diffs arrive as an attached file."""

    async def message(self, ref: MessageRef) -> SeenMessage:
        """The message *ref* as it is now."""
        ...

    async def messages(self) -> list[SeenMessage]:
        """Every message the bot sent to the chat, oldest first."""
        ...

    async def press(self, ref: MessageRef, data: str) -> str:
        """Tap the button with callback *data* under *ref*; the callback id the messenger must answer."""
        ...

    async def callback_answer(self, callback_id: str) -> tuple[str | None, bool] | None:
        """``(text, alert)`` the press was answered with, or None if it was not answered."""
        ...

    async def unreachable(self) -> ChatId:
        """A chat the next `send` cannot deliver to (unknown to the platform, or a failure set up)."""
        ...

    async def refuse_next_answer(self) -> bool:
        """
        Make the platform refuse the next callback answer for a reason other than a query too old to answer.

        Returns False when this chat cannot simulate that (the contract then skips that one case, saying so).
        """
        ...


def sample_diff(lines: int = 3) -> Diff:
    body = "".join(f"+line {i} <b>&amp;</b>\n" for i in range(lines))
    unified = f"diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -0,0 +1,{lines} @@\n{body}"
    return Diff(
        unified=unified,
        files=(FileChange("app.py", ChangeKind.MODIFIED, lines, 0),),
        fingerprint="0123456789abcdef" * 4,
    )


def sample_question() -> ToolQuestion:
    """A question about a shell command whose text needs escaping."""
    command = "pytest -q tests/ 2>&1 | grep '<FAIL>'"
    request = ToolRequest("r1", "Bash", ToolKind.SHELL, f"Bash: {command}", command=command, description="Run <tests>")
    return ToolQuestion(QuestionId("0a1b2c3d"), request, timeout_s=600, session_rule="Bash(pytest *)")


def sample_replies() -> list[Reply]:
    """One of every reply type, with text that needs escaping (``<``, ``&``)."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    change = ChangeId("0a1b2c3d")
    commit = CommitInfo("f" * 40, "Apply changes from Claude", "voicecoder <v@localhost>", now)
    status = WorkspaceStatus(branch="main", head="fffffff", unstaged=("a<b>.py",), path="/ws")
    diff = sample_diff()
    overlap = attrs.evolve(
        diff,
        files=(FileChange("app.py", ChangeKind.MODIFIED, 3, 0, owner=Ownership.OVERLAP),),
        yours="+my own <line>\n",
    )
    return [
        Welcome("Ada <3", "/ws"),
        HelpText((("help", "Commands & tips"),)),
        Unauthorized(9),
        Heard("add a <test>", 0.5, "en"),
        Queued(1),
        Working("fix <it>", ("🔧 Edit a.py",), 2.0),
        AgentAnswer("Done: `x < y` & **ok**", success=True, cost_usd=0.01, num_turns=1, duration_ms=900),
        ChangeSummary(change, diff),
        ChangeSummary(change, overlap),
        ApprovalChoiceNeeded(change, overlap),
        InterruptedPrompt("add a <test>", voice=True),
        StalePrompt(7200.0, 3600.0, prompt="fix <it>"),
        StalePrompt(7200.0, 3600.0, voice_duration_s=4.0),
        SpeechCheck("git log & <diff>", 3.7, 1.2, confidence=0.9),
        NoChanges(),
        AutoApproved(change, diff, commit, "docs/*"),
        DiffView(diff, change),
        GitStatusView(status),
        ChangeCommitted(change, commit, 1),
        ChangeDiscarded(change, ("a.py",)),
        ChangeReverted("e" * 40, commit),
        StatusReport(UserId(1).value, None, 0, 20, None, 0, 0, (), status, "/ws", running=False),
        InfoReport((Diagnostic("git <cli>", ok=False, detail="missing", fix="install & retry"),)),
        SessionCleared(kept_pending=True),
        Compaction(20, ok=True),
        Cancelled(was_running=True),
        ErrorReply("it broke <here>", hint="try again"),
        sample_question(),
        ToolQuestionClosed(sample_question(), ToolOutcome.DENIED, by="Ada <3", reason="use <make test>"),
        PermissionsView("auto-edits", 600, operator_rules=("Bash(make <x>)",), session_rules=("Bash(pytest *)",)),
        SessionCleared(kept_pending=False, cleared_rules=("Bash(pytest *)",)),
        Cancelled(was_running=True, reason="voicecoder is <restarting>"),
        StatusReport(1, "s" * 36, 3, 20, ChangeSummary(change, diff), 1, 2, (_record(now),), None, "/ws", running=True),
        ProjectPicker(("api", "web-2"), current="api", held=True),
        ProjectChosen("web-2", "/srv/<ws>", running_held=1),
        ChangeSummary(change, diff, project="api"),
        StatusReport(1, None, 0, 20, None, 0, 0, (), status, "/ws", running=False, project="web-2"),
        InfoReport((), project="api"),
    ]


def _record(at: datetime) -> AuditRecord:
    return AuditRecord(at=at, chat_id=ChatId(1), user_id=UserId(1), action=AuditAction.APPROVE, commit_sha="c" * 40)


class MessengerContract:
    """The contract of the `Messenger` port; subclass and provide `messenger` and `chat`."""

    @pytest.fixture
    def messenger(self) -> Messenger:
        raise NotImplementedError("override `messenger` with the Messenger under test")

    @pytest.fixture
    def chat(self) -> ChatView:
        raise NotImplementedError("override `chat` with a ChatView of the chat the messenger writes to")

    async def test_every_reply_type_renders(self, messenger: Messenger, chat: ChatView) -> None:
        """Each reply type arrives as a message with visible text, and with exactly the buttons it must carry."""
        samples = sample_replies()
        # A reply type added to the domain without a sample here would go untested on every messenger.
        assert {type(r) for r in samples} == set(REPLY_TYPES)
        for reply in samples:
            ref = await messenger.send(chat.chat, reply)

            seen = await chat.message(ref)
            assert seen.text.strip(), type(reply).__name__
            assert [decode_callback(b) for b in seen.buttons] == list(buttons_of(reply)), type(reply).__name__

    async def test_escapes_what_it_renders(self, messenger: Messenger, chat: ChatView) -> None:
        """Dynamic text is shown as written: ``<`` and ``&`` are text, not markup."""
        ref = await messenger.send(chat.chat, ErrorReply("x < y && <b>z</b>"))

        assert "x < y && <b>z</b>" in (await chat.message(ref)).text

    async def test_buttons_round_trip_through_the_codec(self, messenger: Messenger, chat: ChatView) -> None:
        """The callback data under a change decodes to the change's buttons, with a fingerprint Approve accepts."""
        summary = ChangeSummary(ChangeId("0a1b2c3d"), sample_diff())

        seen = await chat.message(await messenger.send(chat.chat, summary))

        buttons = [decode_callback(b) for b in seen.buttons]
        assert buttons == list(summary.buttons)
        assert all(summary.diff.fingerprint.startswith(b.fingerprint or "-") for b in buttons)
        assert all(len(b.fingerprint or "") >= 8 for b in buttons)

    async def test_edit_replaces_text_and_keyboard(self, messenger: Messenger, chat: ChatView) -> None:
        """The final edit of `Working` shows the finished text and removes the ⏹ Cancel button."""
        ref = await messenger.send(chat.chat, Working("fix it", (), 1.0))
        assert len((await chat.message(ref)).buttons) == 1

        await messenger.edit(ref, Working("fix it", ("🔧 Edit a.py",), 3.0, cancellable=False, finished=True))

        seen = await chat.message(ref)
        assert seen.buttons == ()
        assert "Edit a.py" in seen.text

    async def test_tool_question_shows_the_command_and_closes(self, messenger: Messenger, chat: ChatView) -> None:
        """A tool question shows the whole command and its three answers; closing it leaves the decision, no buttons."""
        question = sample_question()
        ref = await messenger.send(chat.chat, question)

        seen = await chat.message(ref)
        assert question.request.command is not None
        assert question.request.command in seen.text
        assert [decode_callback(b) for b in seen.buttons] == list(question.buttons)

        await messenger.edit(ref, ToolQuestionClosed(question, ToolOutcome.ALLOWED, by="Ada"))

        closed = await chat.message(ref)
        assert closed.buttons == ()
        assert "Ada" in closed.text
        assert question.request.command in closed.text

    async def test_edit_to_the_same_content_is_success(self, messenger: Messenger, chat: ChatView) -> None:
        """Editing a message to what it already shows raises nothing ("not modified" is success)."""
        working = Working("fix it", ("a",), 1.0)
        ref = await messenger.send(chat.chat, working)

        await messenger.edit(ref, working)
        await messenger.edit(ref, working)

        assert len((await chat.message(ref)).buttons) == 1

    async def test_long_text_is_split_and_nothing_is_lost(self, messenger: Messenger, chat: ChatView) -> None:
        """An answer over the platform limit arrives whole; parts fit the limit; the ref is the last part."""
        words = " ".join(f"w{i:05d}" for i in range(1800))
        before = len(await chat.messages())

        ref = await messenger.send(chat.chat, AgentAnswer(words, success=True))

        new = (await chat.messages())[before:]
        joined = " ".join(m.text for m in new)
        assert all(f"w{i:05d}" in joined for i in range(0, 1800, 97))
        assert "w01799" in (await chat.message(ref)).text
        if chat.splits_long_text:
            assert len(new) >= 3
            assert all(len(m.text.encode("utf-16-le")) // 2 <= TEXT_LIMIT for m in new)
        else:
            assert len(new) == 1

    async def test_long_diff_is_a_document(self, messenger: Messenger, chat: ChatView) -> None:
        """A diff too long for a message arrives as a file holding the whole diff, still with ✅ ❌."""
        diff = sample_diff(lines=400)
        view = DiffView(diff, ChangeId("0a1b2c3d"))

        seen = await chat.message(await messenger.send(chat.chat, view))

        assert [decode_callback(b) for b in seen.buttons] == list(buttons_of(view))
        if chat.sends_documents:
            assert seen.document is not None
            assert seen.document[0].endswith(".diff")
            assert seen.document[1].decode() == diff.unified
        else:
            assert seen.document is None

    async def test_answer_callback_once(self, messenger: Messenger, chat: ChatView) -> None:
        """A press is answered with the text and alert flag given; a second answer raises nothing."""
        ref = await messenger.send(chat.chat, Working("fix it", (), 1.0))
        callback_id = await chat.press(ref, (await chat.message(ref)).buttons[0])

        await messenger.answer_callback(callback_id, "⏹ Cancelling…", alert=True)
        await messenger.answer_callback(callback_id, "again")

        assert await chat.callback_answer(callback_id) == ("⏹ Cancelling…", True)

    async def test_typing_raises_nothing(self, messenger: Messenger, chat: ChatView) -> None:
        """The typing indicator is cosmetic: it never raises, even for a chat it cannot reach."""
        await messenger.typing(chat.chat)
        await messenger.typing(ChatId(424242))

    async def test_editing_a_message_the_chat_does_not_have_raises_delivery_error(
        self, messenger: Messenger, chat: ChatView
    ) -> None:
        """An edit the platform refuses (the message is not there) raises DeliveryError (nothing else)."""
        ref = await messenger.send(chat.chat, Working("fix it", (), 1.0))

        with pytest.raises(DeliveryError):
            await messenger.edit(MessageRef(chat.chat, ref.message_id + 10_000), HelpText((("help", "Commands"),)))

    async def test_a_refused_callback_answer_raises_delivery_error(self, messenger: Messenger, chat: ChatView) -> None:
        """An acknowledgement the platform refuses (not merely too late) raises DeliveryError."""
        ref = await messenger.send(chat.chat, Working("fix it", (), 1.0))
        callback_id = await chat.press(ref, (await chat.message(ref)).buttons[0])
        if not await chat.refuse_next_answer():
            pytest.skip("this chat cannot make the platform refuse a callback answer (declared by refuse_next_answer)")

        with pytest.raises(DeliveryError):
            await messenger.answer_callback(callback_id, "⏹ Cancelling…")

    async def test_undeliverable_send_raises_delivery_error(self, messenger: Messenger, chat: ChatView) -> None:
        """A reply that cannot be delivered raises DeliveryError (nothing else)."""
        with pytest.raises(DeliveryError):
            await messenger.send(await chat.unreachable(), HelpText((("help", "Commands"),)))
