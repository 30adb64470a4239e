"""
The buttons under voicecoder's messages: one press, acknowledged exactly once, then what the button does.

✅ Approve (and the two overlap choices), ❌ Reject, 📝 Show Diff, 📊 Git Status and ⏹ Cancel are `decisions` and
the running turn's; ✅ Allow, 🔓 Allow for this session, ❌ Deny and 🧹 are `tool_questions`'. A refusal the user can
act on is an alert answer; a git failure is a short answer plus an `ErrorReply`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from voicecoder.domain.context import AppContext
from voicecoder.domain.decisions import Decisions, committed
from voicecoder.domain.errors import ApprovalChoiceRequiredError, DomainError, WorkspaceError
from voicecoder.domain.model import AuditAction, ChatId, UserId
from voicecoder.domain.replies import Action, Button, CallbackAnswer, GitStatusView
from voicecoder.domain.tool_questions import ToolQuestions
from voicecoder.domain.turns import Turns

__all__ = ["Buttons"]


class Buttons:
    """Presses of an authorized user (`VoiceCoder.press` checks the user first)."""

    def __init__(self, context: AppContext, decisions: Decisions, tools: ToolQuestions, turns: Turns) -> None:
        self._c = context
        self._decisions = decisions
        self._tools = tools
        self._turns = turns

    def cancel(self, chat: ChatId) -> bool:
        """Stop the running turn of *chat*; True if one was running."""
        turn = self._c.running.get(chat)
        if turn is not None:
            turn.scope.cancel()
        return turn is not None

    async def press(
        self, chat: ChatId, user: UserId, callback_id: str, button: Button, *, answer: bool, user_name: str | None
    ) -> CallbackAnswer:
        c, decisions = self._c, self._decisions
        try:
            match button.action:
                case Action.APPROVE | Action.APPROVE_WITH_MY_EDITS | Action.APPROVE_LEAVE_OUT:
                    choice = button.action.choice
                    try:
                        decided = await decisions.approve(
                            chat, user, button.change_id, button.fingerprint or "", choice
                        )
                    except ApprovalChoiceRequiredError as exc:
                        ack = CallbackAnswer("Choose how to commit the overlapping files")
                        await self._ack(callback_id, ack, answer=answer)
                        await decisions.ask_choice(chat, button.change_id, exc)
                    else:
                        ack = CallbackAnswer(f"✅ Committed {committed(decided).short_sha}")
                        await self._ack(callback_id, ack, answer=answer)
                        await decisions.announce_commit(decided, choice, chat=chat)
                case Action.REJECT:
                    decided, restored = await decisions.reject(chat, user, button.change_id)
                    ack = CallbackAnswer("❌ Changes discarded")
                    await self._ack(callback_id, ack, answer=answer)
                    await decisions.announce_reject(decided, restored, chat=chat)
                case Action.SHOW_DIFF:
                    view, pending = await decisions.diff_view(chat, button.change_id)
                    ack = CallbackAnswer()
                    await self._ack(callback_id, ack, answer=answer)
                    ref = await c.ports.messenger.send(chat, view)
                    if pending is not None:
                        await c.remember_message(pending, ref)
                case Action.GIT_STATUS:
                    status = await c.ports.workspace.status()
                    ack = CallbackAnswer()
                    await self._ack(callback_id, ack, answer=answer)
                    await c.ports.messenger.send(chat, GitStatusView(status))
                case Action.CANCEL:
                    ack = CallbackAnswer("⏹ Cancelling…" if self.cancel(chat) else "Nothing is running.")
                    await self._ack(callback_id, ack, answer=answer)
                case Action.TOOL_ALLOW | Action.TOOL_ALLOW_SESSION | Action.TOOL_DENY:
                    ack = await self._tools.answer(
                        chat, user, button, user_name, acknowledge=self._acker(callback_id, answer)
                    )
                case Action.RUN_AGAIN:
                    # The turn runs in this press's handling: a transport routes 🔁 to the chat's message lane (a
                    # turn), so ⏹ and the questions it asks stay reachable on the callback lane.
                    again = await self._turns.take_rerun(chat)
                    ack = CallbackAnswer("🔁 Running it again" if again else "Nothing to run again.", alert=not again)
                    await self._ack(callback_id, ack, answer=answer)
                    if again is not None:
                        await c.audit(chat, user, AuditAction.RERUN, prompt=again[0].text)
                        await self._turns.run(chat, user, *again)
                case Action.CLEAR_PERMISSIONS:
                    ack = CallbackAnswer("🧹 Session rules cleared")
                    await self._ack(callback_id, ack, answer=answer)
                    await self._tools.permissions(chat, user, clear=True)
                case Action.CHOOSE_PROJECT:
                    # Only a bot with PROJECTS routes these; here it is a picker left over from when it had them.
                    ack = CallbackAnswer(
                        "This bot serves one workspace now: there is no project to choose.", alert=True
                    )
                    await self._ack(callback_id, ack, answer=answer)
        except DomainError as exc:
            ack = CallbackAnswer(str(exc)[:190], alert=True)
            await self._ack(callback_id, ack, answer=answer)
        except WorkspaceError as exc:
            ack = CallbackAnswer("⚠️ Git error")
            await self._ack(callback_id, ack, answer=answer)
            await c.ports.messenger.send(chat, c.error(exc))
        return ack

    async def _ack(self, callback_id: str, ack: CallbackAnswer, *, answer: bool) -> None:
        if answer:
            await self._c.ports.messenger.answer_callback(callback_id, ack.text, alert=ack.alert)

    def _acker(self, callback_id: str, answer: bool) -> Callable[[CallbackAnswer], Awaitable[None]]:
        async def acknowledge(ack: CallbackAnswer) -> None:
            await self._ack(callback_id, ack, answer=answer)

        return acknowledge
