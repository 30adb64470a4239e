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


@attrs.frozen
class Button:
    action: Action
    change_id: ChangeId | None = None
    fingerprint: str | None = None


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
class SpeechCheck:
    """What a voice note sent as a speech check (caption /selftest) was heard as, and how long that took."""

    text: str
    audio_s: float | None
    seconds: float
    confidence: float | None = None


@attrs.frozen
class StalePrompt:
    """A prompt that waited longer than the configured maximum (e.g. after an outage) and was not run."""

    age_s: float
    max_age_s: float
    prompt: str | None = None
    """The typed prompt; None for a voice note (it was not transcribed either)."""
    voice_duration_s: float | None = None


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
    | GitStatusView
    | ChangeCommitted
    | ChangeDiscarded
    | ChangeReverted
    | StatusReport
    | InfoReport
    | SessionCleared
    | Compaction
    | Cancelled
    | SpeechCheck
    | StalePrompt
    | ErrorReply
)
