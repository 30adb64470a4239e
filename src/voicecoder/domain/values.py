"""Values of the voicecoder domain: identifiers, prompts and speech, workspace states, diagnostics, audit records."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime

import attrs

# --- identifiers -------------------------------------------------------------


@attrs.frozen(order=True)
class UserId:
    """A Telegram (or embedder) user id."""

    value: int

    def __str__(self) -> str:
        return str(self.value)


@attrs.frozen(order=True)
class ChatId:
    """
    The chat a session belongs to; *thread* is a forum topic in it (Telegram's ``message_thread_id``), or None.

    A topic is a conversation of its own: replies go to it, and a bot with several projects lets each topic work in
    its own project. The state store keys sessions by *value* (and the workspace), so a session is the same whether
    a message came from a topic or not.
    """

    value: int
    thread: int | None = attrs.field(default=None, order=False)

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
    commits: tuple[str, ...] = ()
    """Short ids of commits made during the turn (the agent ran `git commit`), taken off the branch, newest first."""
    branch: str = ""
    """The branch HEAD names again, where the agent had switched to another one (`left_branch`), else empty."""
    left_branch: str = ""
    moved_from: str = ""
    """Where the agent had moved HEAD (`git reset`, a switch to an existing branch; `main at 1a2b3c4`), if it did."""
    back_at: str = ""
    """Where HEAD is back, when `moved_from` is set: as the turn began."""


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
    squashed: tuple[str, ...] = ()
    """Short ids of the commits Claude made during the turn, squashed into this one, newest first (not stored)."""

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


# --- diagnostics ---------------------------------------------------------------


@attrs.frozen
class Diagnostic:
    """One line of /info and `voicecoder doctor`: what was checked, whether it is fine, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False


# --- audit -------------------------------------------------------------------


class AuditAction(enum.StrEnum):
    """What an audit record records; the value is what a store keeps."""

    PROMPT = "prompt"
    TRANSCRIBED = "transcribed"
    TRANSCRIPTION_FAILED = "transcription-failed"
    SPEECH_CHECK = "speech-check"
    STALE_PROMPT = "stale-prompt"
    ANSWER = "answer"
    CHANGE = "change"
    REFRESH = "refresh"
    APPROVE = "approve"
    AUTO_APPROVE = "auto-approve"
    REJECT = "reject"
    UNDO = "undo"
    CLEAR = "clear"
    TOOL_ALLOW = "tool-allow"
    TOOL_DENY = "tool-deny"
    PERMISSIONS_CLEAR = "permissions-clear"
    INTERRUPTED = "interrupted"
    RERUN = "rerun"


DECISION_ACTIONS = frozenset({AuditAction.APPROVE, AuditAction.AUTO_APPROVE, AuditAction.REJECT})
"""The actions /status lists as the approval history."""


@attrs.frozen
class AuditRecord:
    """One link in the chain voice digest → transcript → prompt → agent session → diff fingerprint → commit."""

    at: datetime
    chat_id: ChatId
    user_id: UserId | None
    action: AuditAction
    change_id: ChangeId | None = None
    audio_digest: str | None = None
    transcript: str | None = None
    prompt: str | None = None
    agent_session_id: str | None = None
    diff_fingerprint: str | None = None
    commit_sha: str | None = None
    detail: str | None = None
