"""
The decisions on a change: ✅ Approve (commit it), ❌ Reject (take it back), 📝 Show Diff, 📊 Git Status.

Approve and Reject run under the workspace lock and refuse while a turn runs (`TurnInProgressError`); each is one
unit of work: the session is loaded, the git step taken and the decision saved together, so the stored decision
and the tree never disagree about which change was decided.
"""

from __future__ import annotations

import logging

from voicecoder.domain.context import AppContext, blocked
from voicecoder.domain.errors import (
    ApprovalChoiceRequiredError,
    ChangeNotPendingError,
    MalformedUpdateError,
    NoPendingChangeError,
    TurnInProgressError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    ApprovalChoice,
    AuditAction,
    ChangeId,
    ChatId,
    CommitInfo,
    CommitMessage,
    Ownership,
    PendingChange,
    Restored,
    UserId,
)
from voicecoder.domain.replies import ApprovalChoiceNeeded, ChangeCommitted, ChangeDiscarded, DiffView

__all__ = ["COMMIT_SUBJECT", "Decisions", "change_id", "committed"]

logger = logging.getLogger(__name__)

COMMIT_SUBJECT = "Apply changes from Claude"


def committed(change: PendingChange) -> CommitInfo:
    """The commit of an approved *change*."""
    if change.commit is None:  # pragma: no cover - approve() always records the commit
        raise WorkspaceError(f"change {change.id} was approved without a commit")
    return change.commit


def change_id(value: ChangeId | str | None) -> ChangeId | None:
    """*value* as a change id (None stays None); raises MalformedUpdateError for a string that is not one."""
    if value is None or isinstance(value, ChangeId):
        return value
    try:
        return ChangeId(value)
    except ValueError:
        raise MalformedUpdateError(f"{value[:40]!r} is not a change id") from None


class Decisions:
    """Approve, reject and look at a chat's changes."""

    def __init__(self, context: AppContext) -> None:
        self._c = context

    async def approve(
        self,
        chat: ChatId,
        user: UserId,
        change: ChangeId | None,
        fingerprint: str | None,
        choice: ApprovalChoice | None = None,
    ) -> PendingChange:
        """
        Commit the pending change; returns it as stored, approved, with its commit.

        Raises TurnInProgressError, the change's refusals (`PendingChange.check_approvable`, including
        ApprovalChoiceRequiredError when Claude's edits overlap the developer's and *choice* is None) and
        WorkspaceError.
        """
        if self._c.workspace_lock.locked():
            raise TurnInProgressError
        async with self._c.workspace_lock:
            return await self.commit(chat, user, change, fingerprint, choice=choice)

    async def commit(
        self,
        chat: ChatId,
        user: UserId,
        change: ChangeId | None,
        fingerprint: str | None,
        *,
        auto: bool = False,
        choice: ApprovalChoice | None = None,
    ) -> PendingChange:
        """Commit the pending change (the caller holds the workspace lock); returns it approved, with its commit."""
        c = self._c
        now = c.ports.clock.now()
        async with c.sessions.update(chat) as session:
            pending = session.pending_change(change)
            pending.check_approvable(pending.diff.fingerprint if fingerprint is None else fingerprint, choice)
            commit = await c.ports.workspace.commit_turn(
                pending.baseline,
                fingerprint=pending.diff.fingerprint,
                message=_commit_message(pending, now.isoformat(timespec="seconds")),
                author=c.settings.commit_author,
                choice=choice,
            )
            pending.approve(user, commit, now=now, auto=auto)
            session.settle(pending)
        await c.release(pending.baseline)
        await c.audit(
            chat,
            user,
            AuditAction.AUTO_APPROVE if auto else AuditAction.APPROVE,
            change_id=pending.id,
            prompt=pending.prompt.text,
            audio_digest=pending.prompt.audio_digest,
            agent_session_id=pending.agent_session_id,
            diff_fingerprint=pending.diff.fingerprint,
            commit_sha=commit.sha,
            detail=choice.value if choice is not None else None,
        )
        return pending

    async def ask_choice(self, chat: ChatId, change: ChangeId | None, why: ApprovalChoiceRequiredError) -> None:
        """Approve met overlapping edits without a choice: offer the two ways to commit them."""
        pending = (await self._c.sessions.read(chat)).pending_change(change)
        logger.info("approve of %s needs a choice: %s", pending.id, why)
        await self._c.ports.messenger.send(chat, ApprovalChoiceNeeded(pending.id, pending.diff))

    async def reject(self, chat: ChatId, user: UserId, change: ChangeId | None) -> tuple[PendingChange, Restored]:
        """Take Claude's change back; returns it as stored, rejected, and what the workspace restored and kept."""
        c = self._c
        if c.workspace_lock.locked():
            raise TurnInProgressError
        async with c.workspace_lock:
            async with c.sessions.update(chat) as session:
                pending = session.pending_change(change)
                restored = await c.ports.workspace.restore_turn(pending.baseline)
                pending.reject(user, now=c.ports.clock.now())
                session.settle(pending)
            await c.release(pending.baseline)
        await c.audit(
            chat,
            user,
            AuditAction.REJECT,
            change_id=pending.id,
            prompt=pending.prompt.text,
            diff_fingerprint=pending.diff.fingerprint,
        )
        return pending, restored

    async def announce_commit(
        self, decided: PendingChange, choice: ApprovalChoice | None = None, *, chat: ChatId | None = None
    ) -> CommitInfo:
        """
        After Approve: the change's messages say it is committed, and `ChangeCommitted` tells the chat.

        *chat* is where the decision was made (a forum topic is part of it; a stored change knows only the chat).
        """
        commit = committed(decided)
        await self._c.mark_decided(decided)
        diff = decided.diff
        left_out = diff.overlapping if choice is ApprovalChoice.LEAVE_OUT else ()
        kept_yours = tuple(f.path for f in diff.files if f.owner is Ownership.BOTH)
        await self._c.ports.messenger.send(
            chat or decided.chat_id,
            ChangeCommitted(
                decided.id,
                commit,
                len(diff.files) - len(left_out),
                left_out=left_out,
                kept_yours=kept_yours,
                prompt=decided.prompt.text,
            ),
        )
        return commit

    async def announce_reject(self, decided: PendingChange, restored: Restored, *, chat: ChatId | None = None) -> None:
        await self._c.mark_decided(decided)
        await self._c.ports.messenger.send(
            chat or decided.chat_id,
            ChangeDiscarded(
                decided.id,
                restored.restored,
                restored.merged,
                restored.kept,
                restored.commits,
                restored.branch,
                restored.left_branch,
                restored.moved_from,
                restored.back_at,
            ),
        )

    async def diff_view(self, chat: ChatId, change: ChangeId | None) -> tuple[DiffView, PendingChange | None]:
        """
        The diff a Show Diff button refers to.

        For the pending change, the change comes back too (its buttons go under the diff), and the diff is the
        workspace's now: late edits since the summary are listed, and the change's fingerprint moves with them, so
        older buttons stop working (while a turn runs, the stored diff is shown: the tree is still changing). A
        decided change's diff is marked with its decision.
        """
        pending = (await self._c.sessions.read(chat)).pending
        if pending is not None and change in (None, pending.id):
            return await self._current_diff(pending)
        if change is None:
            raise NoPendingChangeError
        stored = await self._c.ports.store.load_change(chat, change)
        if stored is None:
            raise ChangeNotPendingError(change.value, "removed")
        return self._c.decided_diff(stored), None

    async def _current_diff(self, change: PendingChange) -> tuple[DiffView, PendingChange]:
        c = self._c
        if c.workspace_lock.locked():
            return DiffView(change.diff, change.id, blocked(change.findings)), change
        diff = await c.ports.workspace.changes_since(change.baseline)
        if diff.fingerprint == change.diff.fingerprint:
            return DiffView(diff, change.id, blocked(change.findings)), change
        findings = tuple(await c.ports.scanner.scan(diff)) if not diff.is_empty else ()
        async with c.sessions.update(change.chat_id) as session:
            stored = session.pending_change(change.id)
            stored.refresh(diff, findings)
        await c.audit(
            change.chat_id,
            None,
            AuditAction.REFRESH,
            change_id=change.id,
            diff_fingerprint=diff.fingerprint,
            detail="late edits",
        )
        return DiffView(diff, change.id, blocked(findings), refreshed=True), stored


def _commit_message(change: PendingChange, time: str) -> CommitMessage:
    trailers: list[tuple[str, str]] = [("Voicecoder-Change", change.id.value)]
    if change.agent_session_id:
        trailers.append(("Claude-Session", change.agent_session_id))
    if change.prompt.audio_digest:
        trailers.append(("Voice-Note-SHA256", change.prompt.audio_digest))
    trailers.append(("Diff-Fingerprint", change.diff.fingerprint))
    return CommitMessage(
        subject=COMMIT_SUBJECT,
        body=f"Prompt: {change.prompt.text}\n\nTime: {time}",
        trailers=tuple(trailers),
    )
