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
    QuestionId,
    ToolRequest,
    WorkspaceStatus,
)


class TurnOutcome(enum.Enum):
    """How a turn's run of the agent ended, for its status message."""

    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Decision(enum.Enum):
    """What became of a change that is no longer pending."""

    APPROVED = "approved"
    AUTO_APPROVED = "auto-approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


@attrs.frozen
class MessageRef:
    """A message that was sent, so it can be edited later."""

    chat_id: ChatId
    message_id: int


# Unique: two actions sharing a letter would make one an alias of the other, and its buttons do the other thing.
@enum.unique
class Action(enum.Enum):
    """What an inline button asks for (its value is the letter a callback carries)."""

    APPROVE = "a"
    APPROVE_WITH_MY_EDITS = "m"
    """Approve; files where Claude's edits overlap the developer's are committed with the developer's edits."""
    APPROVE_LEAVE_OUT = "o"
    """Approve; files where Claude's edits overlap the developer's are left out of the commit."""
    REJECT = "r"
    SHOW_DIFF = "d"
    GIT_STATUS = "s"
    CANCEL = "c"
    TOOL_ALLOW = "y"
    TOOL_ALLOW_SESSION = "w"
    TOOL_DENY = "n"
    CLEAR_PERMISSIONS = "p"
    RUN_AGAIN = "g"
    """Run a prompt that a restart cut off (`InterruptedPrompt`)."""
    CHOOSE_PROJECT = "j"
    """Work in the project the button names (`ProjectPicker`); runs a prompt held while the chat had none."""

    @property
    def choice(self) -> ApprovalChoice | None:
        """The overlap choice an approve button carries (None: plain Approve)."""
        return _CHOICES.get(self)


#: The answers to a tool question.
TOOL_ANSWERS = (Action.TOOL_ALLOW, Action.TOOL_ALLOW_SESSION, Action.TOOL_DENY)


_CHOICES = {
    Action.APPROVE_WITH_MY_EDITS: ApprovalChoice.WITH_MY_EDITS,
    Action.APPROVE_LEAVE_OUT: ApprovalChoice.LEAVE_OUT,
}
APPROVE_ACTIONS = (Action.APPROVE, Action.APPROVE_WITH_MY_EDITS, Action.APPROVE_LEAVE_OUT)


@attrs.frozen
class Button:
    """
    An inline button on a reply, or a button press coming back.

    Replies that carry buttons: `ChangeSummary` (Approve, Reject, Show Diff, Git Status; only Show Diff once
    decided), `DiffView` of a pending change (Approve, Reject), `ApprovalChoiceNeeded` (Commit with my edits,
    Leave out, Show Diff; these two also replace Approve wherever Claude's edits overlap the developer's), a tool
    question (Allow, Allow for this session, Deny) and a running `Working` status (Cancel). A messenger
    turns each into a chat button with `voicecoder.domain.callbacks.encode_callback`; a press comes back through
    `decode_callback` and goes to `VoiceCoder.press`. *change_id* names the change the button belongs to (None for
    Cancel). *fingerprint* is the first 16 characters of that change's diff fingerprint: Approve needs at least 8 of
    them to match the diff that is pending, so a button under an outdated diff cannot commit something the user
    never saw.
    """

    action: Action
    change_id: ChangeId | None = None
    fingerprint: str | None = None
    question: QuestionId | None = None
    label: str | None = attrs.field(default=None, eq=False)
    """
    Overrides the messenger's usual label for the action (e.g. a plural). Not part of equality: the callback data
    does not carry it, so a press decoded from a chat is the same button as the one that was sent.
    """
    project: str | None = None
    """
    The project the button belongs to, where a bot serves several (`voicecoder.domain.projects`): the router sends
    the press to that project's workspace, so a button never acts on another project's change.
    """


@attrs.frozen
class CallbackAnswer:
    """
    What a button press is acknowledged with: the toast (or, with *alert*, a dialog) text, or None for a silent ack.

    `VoiceCoder.press` sends it through `Messenger.answer_callback` unless told not to; an embedder whose framework
    answers callbacks itself passes ``answer=False`` and uses the returned value.
    """

    text: str | None = None
    alert: bool = False


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
            Button(Action.APPROVE_WITH_MY_EDITS, change_id, fingerprint, label="✅ Commit with my edits"),
            Button(
                Action.APPROVE_LEAVE_OUT,
                change_id,
                fingerprint,
                label="✅ Leave these files out" if plural else "✅ Leave this file out",
            ),
        )
    else:
        approve = (Button(Action.APPROVE, change_id, fingerprint),)
    return approve + tuple(Button(a, change_id, fingerprint) for a in rest)


@attrs.frozen
class Welcome:
    user_name: str | None
    workspace: str
    commands: tuple[tuple[str, str], ...] = ()


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
    outcome: TurnOutcome | None = None
    """How a finished turn ended (None while it runs)."""
    stop_reason: str | None = None
    """Why a cancelled turn was stopped when it was not the user's ⏹ (e.g. voicecoder restarting)."""


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
    """
    A change waiting for review, with Approve/Reject/Show Diff/Git Status buttons.

    Once decided (or replaced by a newer change) the summary is edited with `decision` set: it then says what
    happened and keeps only Show Diff.
    """

    change_id: ChangeId
    diff: Diff
    blocked_reasons: tuple[str, ...] = ()
    superseded_previous: bool = False
    decision: Decision | None = None
    decision_detail: str = ""
    """E.g. the commit's short sha for an approved change."""
    project: str = ""
    """The project the change is in, where the bot serves several (empty otherwise)."""

    @property
    def buttons(self) -> tuple[Button, ...]:
        if self.decision is not None:
            return (Button(Action.SHOW_DIFF, self.change_id, self.diff.fingerprint[:16]),)
        return approval_buttons(self.change_id, self.diff, rest=CHANGE_BUTTONS[1:])


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
    """
    The diff of a change, three ways apart (see `Diff`).

    That is Claude's change (what Approve commits), the developer's uncommitted edits in the same files, and
    late edits made after Claude finished. A decided change's diff is marked with its `decision` and has no buttons.
    """

    diff: Diff
    change_id: ChangeId | None = None
    blocked_reasons: tuple[str, ...] = ()
    refreshed: bool = False
    """The workspace changed since the change summary: this diff (and its buttons) replaces it."""
    decision: Decision | None = None
    decision_detail: str = ""

    @property
    def buttons(self) -> tuple[Button, ...]:
        if self.change_id is None or self.diff.is_empty or self.decision is not None:
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
    prompt: str = ""


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
    commits: tuple[str, ...] = ()
    """Short ids of the commits Claude made during the turn, taken off the branch (the reflog keeps them)."""
    branch: str = ""
    """The branch HEAD is back on, where Claude had switched to another (`left_branch`, which stays)."""
    left_branch: str = ""
    moved_from: str = ""
    """Where Claude had moved HEAD to (a reset, a switch to an existing branch), e.g. `main at 1a2b3c4`."""
    back_at: str = ""
    """Where HEAD is back, when `moved_from` is set: as the turn began."""


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
    user_name: str | None = None
    username: str | None = None
    project: str = ""
    """The project of this chat, where the bot serves several (empty otherwise)."""
    tool_mode: str | None = None
    tool_rules: tuple[str, ...] = ()
    operator_tool_rules: tuple[str, ...] = ()


@attrs.frozen
class InfoReport:
    diagnostics: tuple[Diagnostic, ...]
    project: str = ""
    """The project whose workspace was checked, where the bot serves several (empty otherwise)."""


@attrs.frozen
class ProjectPicker:
    """
    The projects this bot serves, as buttons (`Action.CHOOSE_PROJECT`): /project, or a chat that has chosen none.

    *current* is the chat's project (None: none chosen yet); *held* says a prompt waits for the choice and will run
    in the project picked.
    """

    projects: tuple[str, ...]
    current: str | None = None
    held: bool = False

    @property
    def buttons(self) -> tuple[Button, ...]:
        return tuple(
            Button(Action.CHOOSE_PROJECT, project=p, label=f"📁 {p}" + (" ✓" if p == self.current else ""))
            for p in self.projects
        )


@attrs.frozen
class ProjectChosen:
    """The chat (or forum topic) now works in *project*; *workspace* is its tree's path on the server."""

    project: str
    workspace: str
    running_held: int = 0
    """How many prompts held while no project was chosen now run in it."""


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
class InterruptedPrompt:
    """
    A prompt arrived again after voicecoder stopped while running it: it was not run a second time.

    What the cut-off run changed is settled as a change to review (sent next), and 🔁 runs the prompt again on the
    user's say-so: a run repeats its commands and costs money.
    """

    prompt: str
    voice: bool = False

    @property
    def buttons(self) -> tuple[Button, ...]:
        return (Button(Action.RUN_AGAIN),)


@attrs.frozen
class ErrorReply:
    """Something went wrong; *message* says what to do. *hint* is an addition from the host (e.g. a setting)."""

    message: str
    hint: str | None = None


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
    | ApprovalChoiceNeeded
    | GitStatusView
    | ChangeCommitted
    | ChangeDiscarded
    | ChangeReverted
    | StatusReport
    | InfoReport
    | ProjectPicker
    | ProjectChosen
    | SessionCleared
    | Compaction
    | Cancelled
    | SpeechCheck
    | StalePrompt
    | InterruptedPrompt
    | ErrorReply
)


def buttons_of(reply: Reply) -> tuple[Button, ...]:
    """
    The inline buttons a messenger must show under *reply* (and only these; every other reply has none).

    `ChangeSummary`: ✅ Approve ❌ Reject 📝 Show Diff 📊 Git Status, or only 📝 Show Diff once it is decided.
    `DiffView` of a pending change: ✅ ❌ (a decided change's diff has none). Where Claude's edits overlap the
    developer's, ✅ is the pair "Commit with my edits" / "Leave out" (also under `ApprovalChoiceNeeded`).
    `Working` while it runs: ⏹ Cancel;
    its final edit (``finished=True``) has none, so the keyboard goes away. `ToolQuestion`: ✅ Allow, 🔓 Allow for
    this session (when it offers a rule), ❌ Deny; its `ToolQuestionClosed` edit has none. `PermissionsView` with
    session rules: 🧹 clear them. `InterruptedPrompt`: 🔁 Run it again. `ProjectPicker`: one 📁 per project.
    """
    match reply:
        case ChangeSummary() | DiffView() | ApprovalChoiceNeeded() | ToolQuestion() | PermissionsView():
            return reply.buttons
        case InterruptedPrompt() | ProjectPicker():
            return reply.buttons
        case Working(cancellable=True, finished=False):
            return (Button(Action.CANCEL),)
    return ()
