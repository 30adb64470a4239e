"""Structured replies the use cases produce; messaging adapters render them (no chat formatting here)."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from voicecoder.domain.model import (
    AuditRecord,
    ChangeId,
    ChatId,
    CommitInfo,
    Diagnostic,
    Diff,
    PermissionDenied,
    QuestionId,
    ToolRequest,
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
    REJECT = "r"
    SHOW_DIFF = "d"
    GIT_STATUS = "s"
    CANCEL = "c"
    TOOL_ALLOW = "y"
    TOOL_ALLOW_SESSION = "w"
    TOOL_DENY = "n"
    CLEAR_PERMISSIONS = "p"


#: The answers to a tool question.
TOOL_ANSWERS = (Action.TOOL_ALLOW, Action.TOOL_ALLOW_SESSION, Action.TOOL_DENY)


@attrs.frozen
class Button:
    action: Action
    change_id: ChangeId | None = None
    fingerprint: str | None = None
    question: QuestionId | None = None


CHANGE_BUTTONS = (Action.APPROVE, Action.REJECT, Action.SHOW_DIFF, Action.GIT_STATUS)


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
    stopped: str | None = None
    """Why the turn was stopped before it finished (cancelled, voicecoder restarting), if it was."""


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
        return tuple(Button(a, self.change_id, self.diff.fingerprint[:16]) for a in CHANGE_BUTTONS)


@attrs.frozen
class NoChanges:
    pass


@attrs.frozen
class ToolQuestion:
    """
    The agent wants to use a tool and the ToolPolicy asks the user first.

    ``session_rule`` is the rule "🔓 Allow for this session" adds (no such button when None); ``flagged`` says why
    a command always asks (the destructive-command gate); ``uncovered`` why the session's rules did not cover it.
    """

    question_id: QuestionId
    request: ToolRequest
    timeout_s: float
    session_rule: str | None = None
    flagged: str | None = None
    uncovered: str | None = None

    @property
    def buttons(self) -> tuple[Button, ...]:
        actions = [a for a in TOOL_ANSWERS if a is not Action.TOOL_ALLOW_SESSION or self.session_rule]
        return tuple(Button(a, question=self.question_id) for a in actions)


class ToolOutcome(enum.Enum):
    ALLOWED = "allowed"
    ALLOWED_FOR_SESSION = "allowed for this session"
    DENIED = "denied"
    TIMED_OUT = "timed out"
    CANCELLED = "cancelled"
    RESTARTED = "restarted"


@attrs.frozen
class ToolQuestionClosed:
    """A tool question after its answer (it replaces the question): what was decided, by whom, and why."""

    question: ToolQuestion
    outcome: ToolOutcome
    by: str | None = None
    reason: str = ""


@attrs.frozen
class PermissionsView:
    """/permissions: how tools are approved, the operator's rules and this session's rules."""

    mode: str
    timeout_s: float
    operator_rules: tuple[str, ...] = ()
    session_rules: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()

    @property
    def buttons(self) -> tuple[Button, ...]:
        return (Button(Action.CLEAR_PERMISSIONS),) if self.session_rules else ()


@attrs.frozen
class AutoApproved:
    change_id: ChangeId
    diff: Diff
    commit: CommitInfo
    rule: str


@attrs.frozen
class DiffView:
    diff: Diff
    change_id: ChangeId | None = None


@attrs.frozen
class GitStatusView:
    status: WorkspaceStatus


@attrs.frozen
class ChangeCommitted:
    change_id: ChangeId
    commit: CommitInfo
    files: int


@attrs.frozen
class ChangeDiscarded:
    change_id: ChangeId
    paths: tuple[str, ...]


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
    tool_mode: str | None = None
    tool_rules: tuple[str, ...] = ()
    operator_tool_rules: tuple[str, ...] = ()


@attrs.frozen
class InfoReport:
    diagnostics: tuple[Diagnostic, ...]


@attrs.frozen
class SessionCleared:
    kept_pending: bool
    cleared_rules: tuple[str, ...] = ()


@attrs.frozen
class Compaction:
    turns_before: int
    ok: bool
    detail: str = ""


@attrs.frozen
class Cancelled:
    was_running: bool
    reason: str | None = None
    """Why the turn was stopped when it was not the user's ⏹ Cancel (e.g. voicecoder restarting)."""


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
    | ToolQuestion
    | ToolQuestionClosed
    | PermissionsView
    | AutoApproved
    | DiffView
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
