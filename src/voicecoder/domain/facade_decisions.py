"""
The decisions of `VoiceCoder`'s facade: Approve, Reject, Show Diff, Git Status, Cancel and button presses.

A part of the `VoiceCoder` class (a base it inherits), kept apart so that each module stays one readable size;
the use cases themselves are in `decisions` and `buttons`.
"""

from __future__ import annotations

from voicecoder.domain.boundary import use_case as _use_case
from voicecoder.domain.buttons import Buttons
from voicecoder.domain.context import AppContext
from voicecoder.domain.decisions import Decisions
from voicecoder.domain.decisions import change_id as _change_id
from voicecoder.domain.errors import (
    ApprovalChoiceRequiredError,
    DomainError,
    NoPendingChangeError,
    WorkspaceError,
)
from voicecoder.domain.model import ApprovalChoice, ChangeId, ChatId, CommitInfo, Diff, UserId, WorkspaceStatus
from voicecoder.domain.replies import Button, CallbackAnswer, GitStatusView

__all__ = ["DecisionUseCases"]


class DecisionUseCases:
    """Approve, Reject, Show Diff, Git Status, Cancel and presses; `VoiceCoder` sets the attributes below."""

    _c: AppContext
    _decisions: Decisions
    _buttons: Buttons

    def is_authorized(self, user: UserId) -> bool:
        raise NotImplementedError

    async def unauthorized(self, chat: ChatId, user: UserId) -> None:
        raise NotImplementedError

    async def _guard(self, chat: ChatId, user: UserId) -> bool:
        raise NotImplementedError

    # --- decisions (buttons, or direct calls from a bot without buttons) ------------------------

    @_use_case
    async def approve(
        self,
        chat: ChatId,
        user: UserId,
        *,
        change_id: ChangeId | str | None = None,
        fingerprint: str | None = None,
        choice: ApprovalChoice | None = None,
    ) -> CommitInfo | None:
        """
        Commit the pending change of *chat*: what ✅ Approve does, for a bot without buttons.

        *change_id* defaults to the chat's pending change. *fingerprint* defaults to the diff voicecoder last
        showed; pass the (≥ 8 character prefix of the) fingerprint your own UI showed to be sure the user approves
        exactly what they saw. The chat gets `ChangeCommitted`, or an `ErrorReply` when there is nothing pending,
        the workspace changed since (`StaleChangeError`), a secret blocks it, a turn is running, or git failed.
        Where Claude's edits overlap the developer's uncommitted edits in a file (`Diff.overlapping`), *choice*
        says how to commit those files (`ApprovalChoice.WITH_MY_EDITS` or `LEAVE_OUT`); without one, the chat gets
        `ApprovalChoiceNeeded` (the two choices as buttons) and nothing is committed.

        Returns the commit, or None when nothing was committed.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return None
        try:
            decided = await self._decisions.approve(chat, user, _change_id(change_id), fingerprint, choice)
        except ApprovalChoiceRequiredError as exc:
            await self._decisions.ask_choice(chat, _change_id(change_id), exc)
            return None
        except (DomainError, WorkspaceError) as exc:
            await self._c.ports.messenger.send(chat, self._c.error(exc))
            return None
        return await self._decisions.announce_commit(decided, choice, chat=chat)

    @_use_case
    async def reject(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> bool:
        """
        Put back exactly what the pending change of *chat* changed: what ❌ Reject does, for a bot without buttons.

        The chat gets `ChangeDiscarded`, or an `ErrorReply` (nothing pending, a turn running, git failed).
        Returns True when the change was discarded.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return False
        try:
            decided, restored = await self._decisions.reject(chat, user, _change_id(change_id))
        except (DomainError, WorkspaceError) as exc:
            await self._c.ports.messenger.send(chat, self._c.error(exc))
            return False
        await self._decisions.announce_reject(decided, restored, chat=chat)
        return True

    @_use_case
    async def show_diff(self, chat: ChatId, user: UserId, *, change_id: ChangeId | str | None = None) -> Diff | None:
        """
        Send a change's diff (`DiffView`): what 📝 Show Diff does.

        The pending change's diff comes with ✅ ❌ buttons; *change_id* may also name a decided change, whose diff
        is sent marked with its decision. Returns the diff, or None (and an `ErrorReply`) when there is none.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return None
        try:
            view, pending = await self._decisions.diff_view(chat, _change_id(change_id))
        except (DomainError, WorkspaceError) as exc:
            await self._c.ports.messenger.send(chat, self._c.error(exc))
            return None
        ref = await self._c.ports.messenger.send(chat, view)
        if pending is not None:
            await self._c.remember_message(pending, ref)
        return view.diff

    @_use_case
    async def git_status(self, chat: ChatId, user: UserId) -> WorkspaceStatus | None:
        """
        Send the workspace's git status (`GitStatusView`): what 📊 Git Status does.

        Returns the status, or None (and an `ErrorReply`) when the workspace cannot be read.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not await self._guard(chat, user):
            return None
        try:
            status = await self._c.ports.workspace.status()
        except WorkspaceError as exc:
            await self._c.ports.messenger.send(chat, self._c.error(exc))
            return None
        await self._c.ports.messenger.send(chat, GitStatusView(status))
        return status

    @_use_case
    async def cancel(self, chat: ChatId, user: UserId) -> bool:
        """
        Stop the running turn of *chat* (what ⏹ Cancel does); True if one was running.

        An unauthorized user cannot cancel (False, nothing is sent). The turn itself then reports `Cancelled`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        return self.is_authorized(user) and self._buttons.cancel(chat)

    @_use_case
    async def press(
        self,
        chat: ChatId,
        user: UserId,
        callback_id: str,
        button: Button,
        *,
        answer: bool = True,
        user_name: str | None = None,
    ) -> CallbackAnswer:
        """
        Handle a press of one of voicecoder's buttons (decoded with `voicecoder.domain.callbacks.decode_callback`).

        ✅ Approve, ❌ Reject, 📝 Show Diff, 📊 Git Status and ⏹ Cancel do what `approve`, `reject`, `show_diff`,
        `git_status` and `cancel` do. ✅ Allow, 🔓 Allow for this session and ❌ Deny answer a tool question (the
        question is then edited to show the answer and who gave it: *user_name*, else the user id); 🧹 clears the
        session's tool rules. The press is acknowledged exactly once: with *answer* True (the default)
        through `Messenger.answer_callback(callback_id, …)`, before the resulting message is sent. If your bot
        framework acknowledges callbacks itself (aiogram's ``CallbackQuery.answer``, Telethon's ``event.answer``),
        pass ``answer=False`` and show the returned `CallbackAnswer` instead: answering twice is an error on
        Telegram. A refusal (not authorized, stale or already decided change, a running turn) is an alert answer,
        not an exception; a git failure is a short answer plus an `ErrorReply`.

        Raises:
            DeliveryError: A reply could not be delivered.
            StateStoreError: The session store failed.
            UnexpectedAdapterError: An adapter failed outside its contract.
        """
        if not self.is_authorized(user):
            ack = CallbackAnswer("⛔ Not authorized", alert=True)
            if answer:
                await self._c.ports.messenger.answer_callback(callback_id, ack.text, alert=ack.alert)
            await self.unauthorized(chat, user)
            return ack
        return await self._buttons.press(chat, user, callback_id, button, answer=answer, user_name=user_name)

    @_use_case
    async def pending_diff(self, chat: ChatId) -> Diff:
        """
        The diff of the pending change, without sending anything.

        Raises:
            NoPendingChangeError: Nothing is pending in *chat*.
            StateStoreError: The session store could not be read.
        """
        pending = (await self._c.sessions.read(chat)).pending
        if pending is None:
            raise NoPendingChangeError
        return pending.diff
