"""Structured replies the use cases produce; messaging adapters render them (no chat formatting here)."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from voicecoder.domain.model import (
    ApprovalChoice,
    AuditRecord,
    ChangeId,
    ChatId,
    CommitInfo,
    Diagnostic,
    Diff,
    PermissionDenied,
    WorkspaceStatus,
)


@attrs.frozen
class MessageRef:
    """A message that was sent, so it can be edited later."""

    chat_id: ChatId
    message_id: int


class Action(enum.Enum):
    """What an inline button asks for."""

    APPROVE = "a"
    APPROVE_WITH_MY_EDITS = "w"
    """Approve; files where Claude's edits overlap the developer's are committed with the developer's edits."""
    APPROVE_LEAVE_OUT = "o"
    """Approve; files where Claude's edits overlap the developer's are left out of the commit."""
    REJECT = "r"
    SHOW_DIFF = "d"
    GIT_STATUS = "s"
    CANCEL = "c"

    @property
    def choice(self) -> ApprovalChoice | None:
        """The overlap choice an approve button carries (None: plain Approve)."""
        return _CHOICES.get(self)


_CHOICES = {
    Action.APPROVE_WITH_MY_EDITS: ApprovalChoice.WITH_MY_EDITS,
    Action.APPROVE_LEAVE_OUT: ApprovalChoice.LEAVE_OUT,
}
APPROVE_ACTIONS = (Action.APPROVE, Action.APPROVE_WITH_MY_EDITS, Action.APPROVE_LEAVE_OUT)


@attrs.frozen
class Button:
    action: Action
    change_id: ChangeId | None = None
    fingerprint: str | None = None
    label: str | None = None
    """Overrides the messenger's usual label for the action (e.g. a plural)."""


CHANGE_BUTTONS = (Action.APPROVE, Action.REJECT, Action.SHOW_DIFF, Action.GIT_STATUS)


def approval_buttons(change_id: ChangeId, diff: Diff, *, rest: tuple[Action, ...] = ()) -> tuple[Button, ...]:
    """
    The approve buttons for *diff*, then one button per action of *rest*.

    Where Claude's edits overlap the developer's uncommitted edits, plain Approve is replaced by the explicit
    choice: commit those files with the developer's edits, or leave them out.
    """
    fingerprint = diff.fingerprint[:16]
    approve: tuple[Button, ...]
    if diff.overlapping:
        plural = len(diff.overlapping) > 1
        approve = (
            Button(Action.APPROVE_WITH_MY_EDITS, change_id, fingerprint, "✅ Commit with my edits"),
            Button(
                Action.APPROVE_LEAVE_OUT,
                change_id,
                fingerprint,
                "✅ Leave these files out" if plural else "✅ Leave this file out",
            ),
        )
    else:
        approve = (Button(Action.APPROVE, change_id, fingerprint),)
    return approve + tuple(Button(a, change_id, fingerprint) for a in rest)


@attrs.frozen
class Welcome:
    user_name: str | None
    workspace: str


@attrs.frozen
class HelpText:
    commands: tuple[tuple[str, str], ...]


@attrs.frozen
class Unauthorized:
    user_id: int


@attrs.frozen
class Heard:
    text: str
    confidence: float | None = None
    language: str | None = None


@attrs.frozen
class Queued:
    ahead: int


@attrs.frozen
class Working:
    prompt: str
    steps: tuple[str, ...]
    elapsed_s: float
    cancellable: bool = True
    finished: bool = False


@attrs.frozen
class AgentAnswer:
    text: str
    success: bool
    cost_usd: float | None = None
    num_turns: int | None = None
    duration_ms: int | None = None
    permission_denials: tuple[PermissionDenied, ...] = ()
    notices: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@attrs.frozen
class ChangeSummary:
    change_id: ChangeId
    diff: Diff
    blocked_reasons: tuple[str, ...] = ()
    superseded_previous: bool = False

    @property
    def buttons(self) -> tuple[Button, ...]:
        return approval_buttons(self.change_id, self.diff, rest=CHANGE_BUTTONS[1:])


@attrs.frozen
class NoChanges:
    pass


@attrs.frozen
class AutoApproved:
    change_id: ChangeId
    diff: Diff
    commit: CommitInfo
    rule: str


@attrs.frozen
class DiffView:
    """
    The diff of a pending change, three ways apart (see `Diff`).

    That is Claude's change (what Approve commits), the developer's uncommitted edits in the same files, and
    late edits made after Claude finished.
    """

    diff: Diff
    change_id: ChangeId | None = None
    blocked_reasons: tuple[str, ...] = ()
    refreshed: bool = False
    """The workspace changed since the change summary: this diff (and its buttons) replaces it."""

    @property
    def buttons(self) -> tuple[Button, ...]:
        if self.change_id is None or self.diff.is_empty:
            return ()
        return approval_buttons(self.change_id, self.diff, rest=(Action.REJECT,))


@attrs.frozen
class ApprovalChoiceNeeded:
    """Approve was asked for a change whose Claude edits overlap the developer's: which way to commit them?"""

    change_id: ChangeId
    diff: Diff

    @property
    def buttons(self) -> tuple[Button, ...]:
        return approval_buttons(self.change_id, self.diff, rest=(Action.SHOW_DIFF,))


@attrs.frozen
class GitStatusView:
    status: WorkspaceStatus


@attrs.frozen
class ChangeCommitted:
    change_id: ChangeId
    commit: CommitInfo
    files: int
    left_out: tuple[str, ...] = ()
    """Files left out of the commit by choice (they stay as they are)."""
    kept_yours: tuple[str, ...] = ()
    """Committed files that also hold the developer's edits, which stay uncommitted."""


@attrs.frozen
class ChangeDiscarded:
    """Reject's outcome: what was put back, and what was kept."""

    change_id: ChangeId
    paths: tuple[str, ...]
    """Claude's paths restored to how they were before the turn."""
    merged: tuple[str, ...] = ()
    """Of `paths`: files where only Claude's lines were taken out and the developer's later edits kept."""
    kept: tuple[str, ...] = ()
    """Claude's paths whose Claude lines stay, because the developer's edits overlap them there."""


@attrs.frozen
class ChangeReverted:
    """An approved turn was undone with a new commit."""

    reverted_sha: str
    commit: CommitInfo


@attrs.frozen
class StatusReport:
    user_id: int
    agent_session_id: str | None
    turn_count: int
    compaction_threshold: int
    pending: ChangeSummary | None
    approved_count: int
    rejected_count: int
    history: tuple[AuditRecord, ...]
    workspace: WorkspaceStatus | None
    workspace_path: str
    running: bool
    session_started: datetime | None = None


@attrs.frozen
class InfoReport:
    diagnostics: tuple[Diagnostic, ...]


@attrs.frozen
class SessionCleared:
    kept_pending: bool


@attrs.frozen
class Compaction:
    turns_before: int
    ok: bool
    detail: str = ""


@attrs.frozen
class Cancelled:
    was_running: bool


@attrs.frozen
class ErrorReply:
    message: str


Reply = (
    Welcome
    | HelpText
    | Unauthorized
    | Heard
    | Queued
    | Working
    | AgentAnswer
    | ChangeSummary
    | NoChanges
    | AutoApproved
    | DiffView
    | ApprovalChoiceNeeded
    | GitStatusView
    | ChangeCommitted
    | ChangeDiscarded
    | ChangeReverted
    | StatusReport
    | InfoReport
    | SessionCleared
    | Compaction
    | Cancelled
    | ErrorReply
)
