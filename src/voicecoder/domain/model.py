"""Values and entities of the voicecoder domain."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

import attrs

from voicecoder.domain.errors import (
    ApprovalBlockedError,
    ApprovalChoiceRequiredError,
    ChangeNotPendingError,
    NoPendingChangeError,
    StaleChangeError,
)

# --- identifiers -------------------------------------------------------------


@attrs.frozen(order=True)
class UserId:
    """A Telegram (or embedder) user id."""

    value: int

    def __str__(self) -> str:
        return str(self.value)


@attrs.frozen(order=True)
class ChatId:
    """The chat a session belongs to."""

    value: int

    def __str__(self) -> str:
        return str(self.value)


@attrs.frozen(order=True)
class ChangeId:
    """Identifies one pending change; short enough for Telegram callback_data."""

    value: str = attrs.field(validator=attrs.validators.matches_re(r"[0-9a-f]{8,32}"))

    def __str__(self) -> str:
        return self.value


@attrs.frozen(order=True)
class QuestionId:
    """Identifies one question to the user about a tool; short enough for Telegram callback_data."""

    value: str = attrs.field(validator=attrs.validators.matches_re(r"[0-9a-f]{8,32}"))

    def __str__(self) -> str:
        return self.value


@attrs.frozen(order=True)
class TurnId:
    """Identifies one agent turn; also names its checkpoint ref."""

    value: str = attrs.field(validator=attrs.validators.matches_re(r"[0-9a-zA-Z_-]{1,64}"))

    def __str__(self) -> str:
        return self.value


# --- prompts and speech -------------------------------------------------------


class PromptSource(enum.Enum):
    TYPED = "typed"
    VOICE = "voice"


@attrs.frozen
class Audio:
    """A recording as received; `declared_duration_s` is what the sender claimed."""

    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    mime_type: str = "audio/ogg"
    filename: str | None = None
    declared_duration_s: float | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


@attrs.frozen
class TranscriptionHints:
    """
    Vocabulary and language that help a recogniser with code words.

    *context* is a sample of how such requests read, for engines that take a text prompt (Whisper); engines that
    take a list of keyterms use *keyterms* only.
    """

    keyterms: tuple[str, ...] = ()
    language: str | None = None
    context: str | None = None


@attrs.frozen
class Word:
    text: str
    start_s: float
    end_s: float
    confidence: float | None = None


@attrs.frozen
class Transcript:
    text: str
    language: str | None = None
    confidence: float | None = None
    duration_s: float | None = None
    words: tuple[Word, ...] = ()


@attrs.frozen
class Prompt:
    """What the user asked for, typed or spoken."""

    text: str
    source: PromptSource = PromptSource.TYPED
    confidence: float | None = None
    audio_digest: str | None = None

    @classmethod
    def typed(cls, text: str) -> Prompt:
        return cls(text=text)

    @classmethod
    def from_transcript(cls, transcript: Transcript, audio: Audio) -> Prompt:
        return cls(
            text=transcript.text,
            source=PromptSource.VOICE,
            confidence=transcript.confidence,
            audio_digest=audio.digest,
        )


# --- workspace values --------------------------------------------------------


class ChangeKind(enum.Enum):
    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"
    MODE_CHANGED = "mode changed"


class Ownership(enum.Enum):
    """Whose edits a file of the agent's change holds, from the baseline, the turn-end snapshot and HEAD."""

    AGENT = "agent"
    """Only the agent changed the file since the last commit."""
    BOTH = "both"
    """The file also has the developer's uncommitted edits; they are apart from the agent's and stay uncommitted."""
    OVERLAP = "overlap"
    """The agent's edits overlap the developer's uncommitted ones: approving needs an `ApprovalChoice`."""


class ApprovalChoice(enum.Enum):
    """What Approve does with the files whose agent edits overlap the developer's uncommitted edits."""

    WITH_MY_EDITS = "with-my-edits"
    """Commit those files as the agent left them, the developer's edits in them included."""
    LEAVE_OUT = "leave-out"
    """Commit nothing of those files; they stay as they are in the working tree."""


@attrs.frozen
class FileChange:
    """One path the turn touched, with its diffstat."""

    path: str
    kind: ChangeKind
    additions: int = 0
    deletions: int = 0
    binary: bool = False
    old_mode: int | None = None
    new_mode: int | None = None
    owner: Ownership = Ownership.AGENT


@attrs.frozen
class Diff:
    """
    The changes of a turn, three ways apart, with a fingerprint of all of it.

    * `unified` / `files`: the agent's change, exactly what Approve commits onto HEAD. A file whose agent edits
      overlap the developer's (`Ownership.OVERLAP`) shows the agent's edits against the tree before the turn;
      what it commits then depends on the `ApprovalChoice`.
    * `yours`: the developer's own uncommitted edits in those same files (HEAD → before the turn): never
      committed, except with `ApprovalChoice.WITH_MY_EDITS` for overlapping files.
    * `late` / `late_unified`: edits made after the turn-end snapshot (by the developer, or by something the
      agent left running); neither committed nor reverted.
    """

    unified: str
    files: tuple[FileChange, ...] = ()
    fingerprint: str = ""
    yours: str = ""
    late: tuple[FileChange, ...] = ()
    late_unified: str = ""

    @property
    def overlapping(self) -> tuple[str, ...]:
        """The files whose agent edits overlap the developer's uncommitted edits."""
        return tuple(f.path for f in self.files if f.owner is Ownership.OVERLAP)

    @property
    def shared(self) -> tuple[str, ...]:
        """The files that also hold the developer's uncommitted edits (apart or overlapping)."""
        return tuple(f.path for f in self.files if f.owner is not Ownership.AGENT)

    @property
    def is_empty(self) -> bool:
        return not self.files

    @property
    def additions(self) -> int:
        return sum(f.additions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    def stat_line(self) -> str:
        n = len(self.files)
        return f"{n} file{'s' if n != 1 else ''} changed, +{self.additions} −{self.deletions}"

    @classmethod
    def empty(cls) -> Diff:
        return cls(unified="", files=(), fingerprint=hashlib.sha256(b"").hexdigest())


@attrs.frozen
class Baseline:
    """
    The checkpoints of one turn; both are adapter-defined (commit shas for git).

    `snapshot` is the working tree (and index) when the turn began. `turn_end` is what the agent left when it
    finished (None while it runs): together with the current tree it tells the agent's edits from the
    developer's later ones.
    """

    turn_id: TurnId
    snapshot: str
    turn_end: str | None = None


@attrs.frozen
class EndedTurn:
    """A turn once the agent finished: its checkpoints, and its diff at that moment (late edits come later)."""

    baseline: Baseline
    diff: Diff


@attrs.frozen
class Restored:
    """What Reject did, path by path."""

    restored: tuple[str, ...] = ()
    """The agent's paths put back as they were before the turn."""
    merged: tuple[str, ...] = ()
    """Of `restored`: files where only the agent's lines were taken out and the developer's later edits kept."""
    kept: tuple[str, ...] = ()
    """
    The agent's paths whose agent lines stay, because the developer's edits overlap them (undo by hand): left as
    they are, or, for lines an earlier prompt of an extended change wrote, put back as they were at the later
    prompt.
    """


@attrs.frozen
class CommitMessage:
    subject: str
    body: str = ""
    trailers: tuple[tuple[str, str], ...] = ()

    def render(self) -> str:
        parts = [self.subject]
        if self.body:
            parts.append(self.body)
        if self.trailers:
            parts.append("\n".join(f"{k}: {v}" for k, v in self.trailers))
        return "\n\n".join(parts) + "\n"


@attrs.frozen
class CommitInfo:
    sha: str
    message: str
    author: str
    committed_at: datetime

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0]


@attrs.frozen
class WorkspaceStatus:
    branch: str | None
    head: str | None
    staged: tuple[str, ...] = ()
    unstaged: tuple[str, ...] = ()
    untracked: tuple[str, ...] = ()
    tracked_files: int = 0
    latest_subject: str | None = None
    latest_time: datetime | None = None
    path: str = ""

    @property
    def is_clean(self) -> bool:
        return not (self.staged or self.unstaged or self.untracked)


@attrs.frozen
class SecretFinding:
    """A likely secret in an added line; never carries the secret itself."""

    path: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} at {self.path}:{self.line}"


# --- agent values ------------------------------------------------------------


@attrs.frozen
class AgentRequest:
    prompt: str
    session_id: str | None
    resume: bool


@attrs.frozen
class SessionStarted:
    session_id: str
    model: str | None = None


@attrs.frozen
class AssistantText:
    text: str


@attrs.frozen
class ToolStarted:
    tool_use_id: str
    name: str
    label: str


@attrs.frozen
class ToolFinished:
    tool_use_id: str
    ok: bool
    summary: str = ""


@attrs.frozen
class PermissionDenied:
    """A tool use that did not run; ``hint`` says how to let it run next time (filled in by the domain)."""

    tool: str
    label: str
    tool_use_id: str | None = attrs.field(default=None, eq=False)
    hint: str = attrs.field(default="", eq=False)


@attrs.frozen
class ApiRetry:
    attempt: int
    error: str
    delay_s: float | None = None


@attrs.frozen
class Compacted:
    trigger: str = "manual"
    pre_tokens: int | None = None


@attrs.frozen
class Notice:
    """Something the adapter wants the user to know (e.g. a fresh session replaced a lost one)."""

    text: str


AgentEvent = (
    SessionStarted | AssistantText | ToolStarted | ToolFinished | PermissionDenied | ApiRetry | Compacted | Notice
)


class ToolKind(enum.Enum):
    """What a tool the agent asks for does, as far as the ToolPolicy cares."""

    READ = "read"
    """Looks without changing anything (Read, Grep, Glob, …)."""
    EDIT = "edit"
    """Writes files (Write, Edit, MultiEdit, NotebookEdit)."""
    SHELL = "shell"
    """Runs a command line (Bash)."""
    FETCH = "fetch"
    """Reaches the network (WebFetch, WebSearch)."""
    MCP = "mcp"
    """A tool of an MCP server."""
    OTHER = "other"
    """Anything else, including tools this version does not know."""


@attrs.frozen
class ToolRequest:
    """
    The agent asks to use a tool; the AgentRunner waits for a `ToolDecision` (see `ToolGate`).

    Adapters fill in what the user needs to judge it: the full ``command`` (and its ``description``) for a
    shell command, the absolute ``paths`` a file tool touches (symlinks resolved), a short unified diff
    ``preview`` for an edit, the ``url`` for a fetch.
    """

    request_id: str
    tool: str
    kind: ToolKind
    label: str
    paths: tuple[str, ...] = ()
    command: str | None = None
    description: str | None = None
    url: str | None = None
    preview: str | None = None
    tool_use_id: str | None = None


@attrs.frozen
class ToolDecision:
    """The answer to a `ToolRequest`; a denial's ``message`` is what the agent reads as the reason."""

    allow: bool
    message: str = ""

    @classmethod
    def allowed(cls) -> ToolDecision:
        return cls(allow=True)

    @classmethod
    def denied(cls, message: str) -> ToolDecision:
        return cls(allow=False, message=message)


@attrs.frozen
class AgentResult:
    text: str
    success: bool
    session_id: str | None
    subtype: str = "success"
    errors: tuple[str, ...] = ()
    cost_usd: float | None = None
    num_turns: int | None = None
    duration_ms: int | None = None
    permission_denials: tuple[PermissionDenied, ...] = ()
    notices: tuple[str, ...] = ()


# --- diagnostics ---------------------------------------------------------------


@attrs.frozen
class Diagnostic:
    """One line of /info and `voicecoder doctor`: what was checked, whether it is fine, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False


# --- entities ----------------------------------------------------------------


class ChangeStatus(enum.Enum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    AUTO_APPROVED = "auto-approved"


@attrs.frozen
class ChangeApproved:
    change_id: ChangeId
    by: UserId
    commit: CommitInfo


@attrs.frozen
class ChangeRejected:
    change_id: ChangeId
    by: UserId


@attrs.frozen
class ChangeSuperseded:
    change_id: ChangeId
    by_change: ChangeId


ChangeEvent = ChangeApproved | ChangeRejected | ChangeSuperseded


@attrs.define
class PendingChange:
    """A turn's workspace changes awaiting the user's decision."""

    id: ChangeId
    turn_id: TurnId
    chat_id: ChatId
    prompt: Prompt
    baseline: Baseline
    diff: Diff
    created_at: datetime
    agent_session_id: str | None = None
    findings: tuple[SecretFinding, ...] = ()
    status: ChangeStatus = ChangeStatus.PENDING
    decided_at: datetime | None = None
    decided_by: UserId | None = None
    commit: CommitInfo | None = None
    message_ids: tuple[int, ...] = ()
    """Chat messages showing this change with its buttons (the summary first, then diff views): edited when decided."""
    events: list[ChangeEvent] = attrs.field(factory=list, eq=False, repr=False)

    @property
    def is_pending(self) -> bool:
        return self.status is ChangeStatus.PENDING

    def _require_pending(self) -> None:
        if self.status is not ChangeStatus.PENDING:
            raise ChangeNotPendingError(self.id.value, self.status.value)

    def check_approvable(self, fingerprint: str, choice: ApprovalChoice | None = None) -> None:
        """
        Raise unless this change can be approved by someone who saw *fingerprint* (a prefix is enough).

        A change whose agent edits overlap the developer's uncommitted ones needs an explicit *choice*.
        """
        self._require_pending()
        if len(fingerprint) < 8 or not self.diff.fingerprint.startswith(fingerprint):
            raise StaleChangeError("the buttons belong to an older diff")
        if self.findings:
            raise ApprovalBlockedError([f"possible secret: {f}" for f in self.findings])
        if choice is None and self.diff.overlapping:
            raise ApprovalChoiceRequiredError(self.diff.overlapping)

    def refresh(self, diff: Diff, findings: tuple[SecretFinding, ...]) -> None:
        """The workspace was looked at again (late edits appeared): the pending change now shows *diff*."""
        self._require_pending()
        self.diff = diff
        self.findings = findings

    def approve(self, by: UserId, commit: CommitInfo, *, now: datetime, auto: bool = False) -> None:
        self._require_pending()
        self.status = ChangeStatus.AUTO_APPROVED if auto else ChangeStatus.APPROVED
        self.decided_at = now
        self.decided_by = by
        self.commit = commit
        self.events.append(ChangeApproved(self.id, by, commit))

    def reject(self, by: UserId, *, now: datetime) -> None:
        self._require_pending()
        self.status = ChangeStatus.REJECTED
        self.decided_at = now
        self.decided_by = by
        self.events.append(ChangeRejected(self.id, by))

    def supersede(self, by_change: ChangeId, *, now: datetime) -> None:
        self._require_pending()
        self.status = ChangeStatus.SUPERSEDED
        self.decided_at = now
        self.events.append(ChangeSuperseded(self.id, by_change))


DEFAULT_COMPACTION_THRESHOLD = 20


@attrs.define
class Session:
    """One chat's conversation with the agent."""

    chat_id: ChatId
    agent_session_id: str | None = None
    turn_count: int = 0
    compaction_threshold: int = DEFAULT_COMPACTION_THRESHOLD
    approved_count: int = 0
    rejected_count: int = 0
    pending: PendingChange | None = None
    started_at: datetime | None = None
    last_activity: datetime | None = None
    open_turn: Baseline | None = None
    """The baseline of a turn that began and was never settled (the process died mid-turn)."""
    tool_rules: tuple[str, ...] = ()
    """Tool rules the user allowed "for this session" (e.g. ``Bash(pytest *)``); /clear and /permissions clear them."""

    @property
    def needs_compaction(self) -> bool:
        return self.agent_session_id is not None and self.turn_count >= self.compaction_threshold

    def record_turn(self, agent_session_id: str | None, *, now: datetime) -> None:
        if agent_session_id is not None:
            self.agent_session_id = agent_session_id
        if self.started_at is None:
            self.started_at = now
        self.turn_count += 1
        self.last_activity = now

    def compacted(self) -> None:
        self.turn_count = 0

    def attach(self, change: PendingChange, *, now: datetime) -> PendingChange | None:
        """Make *change* the pending one; a previous pending change is superseded and returned."""
        previous = self.pending if self.pending is not None and self.pending.is_pending else None
        if previous is not None:
            previous.supersede(change.id, now=now)
        self.pending = change
        return previous

    def pending_change(self, change_id: ChangeId | None = None) -> PendingChange:
        if self.pending is None or not self.pending.is_pending:
            if change_id is not None and self.pending is not None and self.pending.id == change_id:
                raise ChangeNotPendingError(change_id.value, self.pending.status.value)
            if change_id is not None:
                raise ChangeNotPendingError(change_id.value, "replaced")
            raise NoPendingChangeError
        if change_id is not None and self.pending.id != change_id:
            raise ChangeNotPendingError(change_id.value, "replaced")
        return self.pending

    def settle(self, change: PendingChange) -> None:
        if change.status in (ChangeStatus.APPROVED, ChangeStatus.AUTO_APPROVED):
            self.approved_count += 1
        elif change.status is ChangeStatus.REJECTED:
            self.rejected_count += 1

    def allow_tool(self, rule: str) -> bool:
        """Remember *rule* for this session; False if it was already there."""
        if rule in self.tool_rules:
            return False
        self.tool_rules = (*self.tool_rules, rule)
        return True

    def clear(self, *, now: datetime) -> None:
        """
        Forget the agent conversation and its session tool rules.

        A pending change stays pending (its files are still in the tree).
        """
        self.tool_rules = ()
        self.agent_session_id = None
        self.turn_count = 0
        self.started_at = now
        self.last_activity = now


@attrs.frozen
class AuditRecord:
    """One link in the chain voice digest → transcript → prompt → agent session → diff fingerprint → commit."""

    at: datetime
    chat_id: ChatId
    user_id: UserId | None
    action: str
    change_id: ChangeId | None = None
    audio_digest: str | None = None
    transcript: str | None = None
    prompt: str | None = None
    agent_session_id: str | None = None
    diff_fingerprint: str | None = None
    commit_sha: str | None = None
    detail: str | None = None
