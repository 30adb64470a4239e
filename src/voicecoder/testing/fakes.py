"""
In-memory fakes of every port. They record what happened so tests assert on state, not on calls.

Embedders use them too: `build_voicecoder()` wires a complete `VoiceCoder` on fakes.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import anyio
import attrs

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio, sniff_format
from voicecoder.domain.errors import (
    AgentRunError,
    DeliveryError,
    NoSpeechError,
    StaleChangeError,
    TranscriptionError,
    VoicecoderError,
    WorkspaceError,
)
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    AssistantText,
    Audio,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeKind,
    ChangeStatus,
    ChatId,
    CommitInfo,
    CommitMessage,
    Compacted,
    Diagnostic,
    Diff,
    FileChange,
    PendingChange,
    PermissionDenied,
    SecretFinding,
    Session,
    SessionStarted,
    ToolDecision,
    ToolFinished,
    ToolRequest,
    ToolStarted,
    Transcript,
    TranscriptionHints,
    TurnId,
    UserId,
    WorkspaceStatus,
)
from voicecoder.domain.ports import (
    AgentRunner,
    Clock,
    EventSink,
    Messenger,
    SecretScanner,
    StateStore,
    ToolGate,
    Transcriber,
    VocabularySource,
    Workspace,
)
from voicecoder.domain.replies import MessageRef, Reply
from voicecoder.domain.services import Settings, VoiceCoder

_R = TypeVar("_R")

REGULAR = 0o100644
EXECUTABLE = 0o100755

# --- clock ----------------------------------------------------------------------


@attrs.define
class FakeClock:
    """A clock that only moves when told to."""

    current: datetime = attrs.field(factory=lambda: datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    mono: float = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.mono += seconds


# --- workspace ------------------------------------------------------------------

Tree = dict[str, tuple[bytes, int]]


def _fingerprint(changes: Sequence[tuple[str, tuple[bytes, int] | None]]) -> str:
    digest = hashlib.sha256()
    for path, entry in sorted(changes, key=lambda c: c[0]):
        digest.update(path.encode() + b"\0")
        if entry is None:
            digest.update(b"deleted\0")
        else:
            digest.update(f"{entry[1]:o}\0".encode() + hashlib.sha256(entry[0]).digest())
    return digest.hexdigest()


def _is_binary(data: bytes) -> bool:
    return b"\0" in data[:8000]


def _unified(path: str, old: tuple[bytes, int] | None, new: tuple[bytes, int] | None) -> tuple[str, int, int, bool]:
    header = [f"diff --git a/{path} b/{path}"]
    if old is None and new is not None:
        header.append(f"new file mode {new[1]:o}")
    elif new is None and old is not None:
        header.append(f"deleted file mode {old[1]:o}")
    elif old is not None and new is not None and old[1] != new[1]:
        header += [f"old mode {old[1]:o}", f"new mode {new[1]:o}"]
    old_data = old[0] if old else b""
    new_data = new[0] if new else b""
    if old_data == new_data:
        return "\n".join(header) + "\n", 0, 0, False
    if _is_binary(old_data) or _is_binary(new_data):
        a = f"a/{path}" if old else "/dev/null"
        b = f"b/{path}" if new else "/dev/null"
        header.append(f"Binary files {a} and {b} differ")
        return "\n".join(header) + "\n", 0, 0, True
    old_lines = old_data.decode("utf-8", "replace").splitlines(keepends=True)
    new_lines = new_data.decode("utf-8", "replace").splitlines(keepends=True)
    body = list(
        difflib.unified_diff(
            old_lines,
            new_lines,
            fromfile=f"a/{path}" if old else "/dev/null",
            tofile=f"b/{path}" if new else "/dev/null",
            lineterm="\n",
        )
    )
    added = sum(1 for line in body[2:] if line.startswith("+"))
    removed = sum(1 for line in body[2:] if line.startswith("-"))
    text = "\n".join(header) + "\n" + "".join(ln if ln.endswith("\n") else ln + "\n" for ln in body)
    return text, added, removed, False


@attrs.define
class FakeWorkspace:
    """
    A working tree and a linear history held in memory.

    `files` is the working tree, `head` the last commit's tree; tests edit `files` through `write`/`delete`.
    """

    files: Tree = attrs.field(factory=dict)
    head: Tree = attrs.field(factory=dict)
    commits: list[CommitInfo] = attrs.field(factory=list)
    snapshots: dict[str, Tree] = attrs.field(factory=dict)
    trees: dict[str, Tree] = attrs.field(factory=dict)
    branch: str = "main"
    clock: FakeClock = attrs.field(factory=FakeClock)
    path: str = "/fake/workspace"

    # test-side helpers
    def write(self, path: str, data: bytes | str, *, executable: bool = False) -> None:
        raw = data.encode() if isinstance(data, str) else data
        self.files[path] = (raw, EXECUTABLE if executable else REGULAR)

    def delete(self, path: str) -> None:
        self.files.pop(path, None)

    def chmod(self, path: str, *, executable: bool) -> None:
        data, _ = self.files[path]
        self.files[path] = (data, EXECUTABLE if executable else REGULAR)

    def read(self, path: str) -> bytes:
        return self.files[path][0]

    # port
    async def begin_turn(self, turn_id: TurnId, /) -> Baseline:
        snapshot = f"snap-{len(self.snapshots) + 1}-{turn_id.value}"
        self.snapshots[snapshot] = dict(self.files)
        return Baseline(turn_id, snapshot)

    def _baseline_tree(self, baseline: Baseline) -> Tree:
        try:
            return self.snapshots[baseline.snapshot]
        except KeyError:
            raise WorkspaceError(f"Unknown baseline {baseline.snapshot}; it may predate a reset.") from None

    def _turn_changes(self, baseline: Baseline) -> list[tuple[str, tuple[bytes, int] | None]]:
        before = self._baseline_tree(baseline)
        paths = sorted(set(before) | set(self.files))
        return [(p, self.files.get(p)) for p in paths if before.get(p) != self.files.get(p)]

    async def changes_since(self, baseline: Baseline, /) -> Diff:
        before = self._baseline_tree(baseline)
        changes = self._turn_changes(baseline)
        if not changes:
            return Diff.empty()
        parts: list[str] = []
        stats: list[FileChange] = []
        for path, new in changes:
            # Like git: the diff shows what Approve commits (the path against HEAD), unless HEAD already equals
            # the result, in which case the turn's own change is shown (Reject can still undo it).
            old = self.head.get(path) if self.head.get(path) != new else before.get(path)
            text, added, removed, binary = _unified(path, old, new)
            parts.append(text)
            if old is None:
                kind = ChangeKind.ADDED
            elif new is None:
                kind = ChangeKind.DELETED
            elif old[0] == new[0]:
                kind = ChangeKind.MODE_CHANGED
            else:
                kind = ChangeKind.MODIFIED
            stats.append(
                FileChange(
                    path=path,
                    kind=kind,
                    additions=added,
                    deletions=removed,
                    binary=binary,
                    old_mode=old[1] if old else None,
                    new_mode=new[1] if new else None,
                )
            )
        return Diff(unified="".join(parts), files=tuple(stats), fingerprint=_fingerprint(changes))

    async def commit_turn(
        self, baseline: Baseline, /, *, fingerprint: str, message: CommitMessage, author: str | None = None
    ) -> CommitInfo:
        changes = self._turn_changes(baseline)
        if not changes:
            raise WorkspaceError("Nothing to commit: the turn's changes are already gone.")
        if not _fingerprint(changes).startswith(fingerprint):
            raise StaleChangeError
        head = dict(self.head)
        for path, entry in changes:
            if entry is None:
                head.pop(path, None)
            else:
                head[path] = entry
        if head == self.head:
            raise WorkspaceError("Nothing to commit: the turn leaves the last commit as it is.")
        self.head = head
        return self._record_commit(message, author)

    def _record_commit(self, message: CommitMessage, author: str | None) -> CommitInfo:
        rendered = message.render()
        sha = hashlib.sha1(  # noqa: S324 - an id like git's, not security
            f"{len(self.commits)}\0{rendered}".encode()
        ).hexdigest()
        info = CommitInfo(sha, rendered, author or "voicecoder <voicecoder@localhost>", self.clock.now())
        self.commits.append(info)
        self.trees[sha] = dict(self.head)
        return info

    async def restore_turn(self, baseline: Baseline, /) -> None:
        before = self._baseline_tree(baseline)
        for path, _ in self._turn_changes(baseline):
            if path in before:
                self.files[path] = before[path]
            else:
                self.files.pop(path, None)

    async def release_turn(self, baseline: Baseline, /) -> None:
        self.snapshots.pop(baseline.snapshot, None)

    async def status(self) -> WorkspaceStatus:
        changed = sorted(p for p in set(self.head) | set(self.files) if self.head.get(p) != self.files.get(p))
        latest = self.commits[-1] if self.commits else None
        return WorkspaceStatus(
            branch=self.branch,
            head=latest.short_sha if latest else None,
            unstaged=tuple(p for p in changed if p in self.head),
            untracked=tuple(p for p in changed if p not in self.head),
            tracked_files=len(self.head),
            latest_subject=latest.subject if latest else None,
            latest_time=latest.committed_at if latest else None,
            path=self.path,
        )

    async def revert_commit(self, sha: str, /, *, message: CommitMessage, author: str | None = None) -> CommitInfo:
        index = next((i for i, c in enumerate(self.commits) if c.sha.startswith(sha)), None)
        if index is None:
            raise WorkspaceError(f"Unknown commit {sha}.")
        after = self.trees[self.commits[index].sha]
        before = self.trees[self.commits[index - 1].sha] if index > 0 else {}
        for path in set(before) | set(after):
            if before.get(path) == after.get(path):
                continue
            if self.head.get(path) != after.get(path):
                raise WorkspaceError(f"{path} changed after {sha[:7]}; revert it by hand.")
            if path in before:
                self.head[path] = before[path]
                self.files[path] = before[path]
            else:
                self.head.pop(path, None)
                self.files.pop(path, None)
        return self._record_commit(message, author)

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("workspace", ok=True, detail=f"in-memory workspace on branch {self.branch}")]


# --- agent ----------------------------------------------------------------------


@attrs.frozen
class AgentScript:
    """
    What the fake agent does for one prompt.

    ``asks`` are tool uses it asks about before it finishes (through the run's ToolGate; without one they are
    refused); a denied one is reported in the result's ``permission_denials``.
    """

    text: str = "Done."
    writes: dict[str, bytes | None] = attrs.field(factory=dict)
    success: bool = True
    error: str | None = None
    events: tuple[AgentEvent, ...] = ()
    asks: tuple[ToolRequest, ...] = ()
    raises: VoicecoderError | None = None
    """Raised instead of a result (e.g. AgentTimeoutError, AgentNotInstalledError)."""


@attrs.define
class FakeAgentRunner:
    """
    Plays scripted turns; edits a `FakeWorkspace` like a coding agent would.

    With no script queued it answers "Echo: <prompt>" and changes nothing. Set `gate` to make runs
    wait until the test sets it (to test queueing and cancel). `running` counts runs in progress and
    `waiting_on_tool` tool questions in progress: both are 0 whenever nothing is left running.
    """

    workspace: FakeWorkspace | None = None
    scripts: list[AgentScript] = attrs.field(factory=list)
    requests: list[AgentRequest] = attrs.field(factory=list)
    compactions: list[str] = attrs.field(factory=list)
    decisions: list[tuple[ToolRequest, ToolDecision]] = attrs.field(factory=list)
    ended_sessions: list[str] = attrs.field(factory=list)
    gate: anyio.Event | None = None
    compact_error: str | None = None
    running: int = 0
    waiting_on_tool: int = 0
    cancelled: int = 0
    known_sessions: set[str] = attrs.field(factory=set)

    def script(self, *scripts: AgentScript) -> None:
        self.scripts.extend(scripts)

    async def run(self, request: AgentRequest, /, on_event: EventSink, on_tool: ToolGate | None = None) -> AgentResult:
        self.requests.append(request)
        script = self.scripts.pop(0) if self.scripts else AgentScript(text=f"Echo: {request.prompt}")
        session_id = request.session_id or str(uuid.uuid4())
        self.known_sessions.add(session_id)
        denials: list[PermissionDenied] = []
        self.running += 1
        try:
            await on_event(SessionStarted(session_id, "fake-model"))
            for scripted in script.asks:
                tool_use_id = scripted.tool_use_id or f"toolu_ask_{len(self.decisions)}"
                ask = attrs.evolve(scripted, tool_use_id=tool_use_id)
                await on_event(ToolStarted(tool_use_id, ask.tool, ask.label))
                decision = await self._ask(ask, on_tool)
                self.decisions.append((ask, decision))
                await on_event(ToolFinished(tool_use_id, ok=decision.allow, summary=decision.message))
                if not decision.allow:
                    denials.append(PermissionDenied(ask.tool, ask.label, tool_use_id))
            for i, (path, data) in enumerate(script.writes.items()):
                tool_id = f"toolu_{i}"
                await on_event(ToolStarted(tool_id, "Write", f"Write {path}"))
                if self.workspace is not None:
                    if data is None:
                        self.workspace.delete(path)
                    else:
                        self.workspace.write(path, data)
                await on_event(ToolFinished(tool_id, ok=True))
            for event in script.events:
                await on_event(event)
            if self.gate is not None:
                try:
                    await self.gate.wait()
                except anyio.get_cancelled_exc_class():
                    self.cancelled += 1
                    raise
            if script.raises is not None:
                raise script.raises
            if script.error is not None:
                raise AgentRunError(script.error)
            await on_event(AssistantText(script.text))
        finally:
            self.running -= 1
        return AgentResult(
            text=script.text,
            success=script.success,
            session_id=session_id,
            subtype="success" if script.success else "error_during_execution",
            num_turns=1,
            cost_usd=0.0,
            duration_ms=1,
            permission_denials=tuple(denials),
        )

    async def _ask(self, ask: ToolRequest, on_tool: ToolGate | None) -> ToolDecision:
        if on_tool is None:
            return ToolDecision.denied("nobody to ask")
        self.waiting_on_tool += 1
        try:
            return await on_tool(ask)
        finally:
            self.waiting_on_tool -= 1

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        self.compactions.append(session_id)
        if self.compact_error is not None:
            raise AgentRunError(self.compact_error)
        await on_event(Compacted("manual"))
        return AgentResult(text="Compacted.", success=True, session_id=session_id, subtype="success")

    async def end_session(self, session_id: str, /) -> None:
        self.ended_sessions.append(session_id)

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("agent", ok=True, detail="fake agent (scripted)")]


# --- speech -----------------------------------------------------------------------


def looks_like_audio(data: bytes) -> bool:
    """Whether *data* is a container voicecoder accepts (the adapters' own sniffer decides)."""
    return sniff_format(data) is not None


@attrs.define
class FakeTranscriber:
    """
    Transcribes by table: sha256 of the audio → text. Unknown audio holds no speech.

    Non-audio bytes are refused like a real decoder would; oversize input is refused before "upload".
    """

    scripted: dict[str, str] = attrs.field(factory=dict)
    max_bytes: int = 20_000_000
    max_duration_s: float = 600.0
    calls: list[tuple[Audio, TranscriptionHints | None]] = attrs.field(factory=list)
    refused: list[Audio] = attrs.field(factory=list)

    def learn(self, audio: Audio | bytes, text: str) -> None:
        data = audio.data if isinstance(audio, Audio) else audio
        self.scripted[hashlib.sha256(data).hexdigest()] = text

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        try:
            # The same intake checks, in the same order, as every real provider: refused input is never "sent".
            check_audio(audio, AudioLimits(max_bytes=self.max_bytes, max_duration_s=self.max_duration_s, probe=False))
        except TranscriptionError:
            self.refused.append(audio)
            raise
        self.calls.append((audio, hints))
        text = self.scripted.get(audio.digest, "").strip()
        if not text:
            raise NoSpeechError
        return Transcript(text=text, language=(hints.language if hints else None) or "en", confidence=0.99)

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("speech to text", ok=True, detail=f"fake transcriber ({len(self.scripted)} clips)")]


# --- secrets, vocabulary ------------------------------------------------------------


@attrs.define
class FakeSecretScanner:
    """Flags added lines matching any of `patterns` (default: a marker and an Anthropic-style key)."""

    patterns: tuple[str, ...] = (r"FAKE-SECRET-[A-Z0-9]+", r"sk-ant-[A-Za-z0-9_-]{20,}")
    scans: int = 0

    async def scan(self, diff: Diff, /) -> Sequence[SecretFinding]:
        self.scans += 1
        findings: list[SecretFinding] = []
        path = ""
        line_no = 0
        for line in diff.unified.splitlines():
            if line.startswith("+++ "):
                path = line[6:] if line.startswith("+++ b/") else ""
            elif line.startswith("@@"):
                match = re.search(r"\+(\d+)", line)
                line_no = int(match.group(1)) - 1 if match else 0
            elif line.startswith("+"):
                line_no += 1
                if any(re.search(p, line) for p in self.patterns):
                    findings.append(SecretFinding(path, line_no, "api key"))
            elif not line.startswith("-"):
                line_no += 1
        return findings


@attrs.define
class FakeVocabulary:
    terms: tuple[str, ...] = ()

    async def vocabulary(self) -> tuple[str, ...]:
        return self.terms


# --- messenger ------------------------------------------------------------------


@attrs.frozen
class Sent:
    chat: ChatId
    reply: Reply
    ref: MessageRef


@attrs.define
class RecordingMessenger:
    """Keeps every reply, edit and callback answer; can be told to fail the next sends."""

    sent: list[Sent] = attrs.field(factory=list)
    edits: list[tuple[MessageRef, Reply]] = attrs.field(factory=list)
    callbacks: list[tuple[str, str | None]] = attrs.field(factory=list)
    alerts: list[tuple[str, bool]] = attrs.field(factory=list)
    typing_chats: list[ChatId] = attrs.field(factory=list)
    fail_next: int = 0
    _next_id: int = 1
    _waiter: anyio.Event | None = attrs.field(default=None, init=False, repr=False)

    async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("fake delivery failure")
        ref = MessageRef(chat, self._next_id)
        self._next_id += 1
        self.sent.append(Sent(chat, reply, ref))
        if self._waiter is not None:
            self._waiter.set()
            self._waiter = None
        return ref

    async def wait_for(self, kind: type[_R], count: int = 1) -> _R:
        """Wait until *count* replies of *kind* have been sent; the *count*-th one."""
        while len(self.of_type(kind)) < count:
            if self._waiter is None:
                self._waiter = anyio.Event()
            await self._waiter.wait()
        return self.of_type(kind)[count - 1]

    async def edit(self, ref: MessageRef, reply: Reply, /) -> None:
        self.edits.append((ref, reply))

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        self.callbacks.append((callback_id, text))
        self.alerts.append((callback_id, alert))

    async def typing(self, chat: ChatId, /) -> None:
        self.typing_chats.append(chat)

    def replies(self, chat: ChatId | None = None) -> list[Reply]:
        return [s.reply for s in self.sent if chat is None or s.chat == chat]

    def of_type(self, kind: type[_R]) -> list[_R]:
        return [s.reply for s in self.sent if isinstance(s.reply, kind)]


# --- state ----------------------------------------------------------------------


@attrs.define
class InMemoryStateStore:
    """Stores deep copies, so a test cannot change stored state by mutating a loaded entity."""

    sessions: dict[ChatId, Session] = attrs.field(factory=dict)
    changes: dict[tuple[ChatId, ChangeId], PendingChange] = attrs.field(factory=dict)
    audit: list[AuditRecord] = attrs.field(factory=list)

    async def load_session(self, chat: ChatId, /) -> Session | None:
        stored = self.sessions.get(chat)
        return copy.deepcopy(stored) if stored is not None else None

    async def save_session(self, session: Session, /) -> None:
        saved = copy.deepcopy(session)
        before = self.sessions.get(session.chat_id)
        replaced = before.pending if before is not None else None
        if saved.pending is not None:
            saved.pending.events.clear()
            self.changes[(session.chat_id, saved.pending.id)] = copy.deepcopy(saved.pending)
        if replaced is not None and (saved.pending is None or replaced.id != saved.pending.id):
            kept = self.changes[(session.chat_id, replaced.id)]
            if kept.is_pending:
                # As a durable store does: the session no longer points at it, so something replaced it.
                kept.status = ChangeStatus.SUPERSEDED
                kept.decided_at = saved.pending.created_at if saved.pending is not None else saved.last_activity
        self.sessions[session.chat_id] = saved

    async def load_change(self, chat: ChatId, change: ChangeId, /) -> PendingChange | None:
        stored = self.changes.get((chat, change))
        return copy.deepcopy(stored) if stored is not None else None

    async def append_audit(self, record: AuditRecord, /) -> None:
        self.audit.append(record)

    async def audit_trail(self, chat: ChatId, /, limit: int = 20) -> Sequence[AuditRecord]:
        return [r for r in self.audit if r.chat_id == chat][-limit:] if limit > 0 else []


# --- wiring ---------------------------------------------------------------------


@attrs.frozen
class FakePorts:
    workspace: FakeWorkspace
    agent: FakeAgentRunner
    transcriber: FakeTranscriber
    messenger: RecordingMessenger
    store: InMemoryStateStore
    clock: FakeClock
    scanner: FakeSecretScanner
    vocabulary: FakeVocabulary


def build_voicecoder(
    *,
    messenger: Messenger | None = None,
    allowed_users: Sequence[int] = (1,),
    settings: Settings | None = None,
    workspace: Workspace | None = None,
    agent: AgentRunner | None = None,
    transcriber: Transcriber | None = None,
    store: StateStore | None = None,
    clock: Clock | None = None,
    scanner: SecretScanner | None = None,
    vocabulary: VocabularySource | None = None,
) -> tuple[VoiceCoder, FakePorts]:
    """
    A `VoiceCoder` wired on fakes; pass any port (e.g. a real `TelegramMessenger`) to use it instead of its fake.

    The wiring is the production container's (`voicecoder.bootstrap.for_tests`). Every argument is typed with its
    port, so mypy flags an object that is not one. Returns the app and the fakes (a fake you replaced is still
    returned, unused). The fake workspace starts with one committed ``README.md``.
    """
    from voicecoder.bootstrap import for_tests  # noqa: PLC0415 - the container's adapters load only when used

    fake_clock = FakeClock()
    fake_workspace = FakeWorkspace(clock=fake_clock)
    fake_workspace.write("README.md", "# demo\n")
    fake_workspace.head = dict(fake_workspace.files)
    fakes = FakePorts(
        workspace=fake_workspace,
        agent=FakeAgentRunner(workspace=fake_workspace),
        transcriber=FakeTranscriber(),
        messenger=RecordingMessenger(),
        store=InMemoryStateStore(),
        clock=fake_clock,
        scanner=FakeSecretScanner(),
        vocabulary=FakeVocabulary(("README.md",)),
    )
    app = for_tests(
        workspace=workspace if workspace is not None else fakes.workspace,
        agent=agent if agent is not None else fakes.agent,
        transcriber=transcriber if transcriber is not None else fakes.transcriber,
        messenger=messenger if messenger is not None else fakes.messenger,
        store=store if store is not None else fakes.store,
        clock=clock if clock is not None else fakes.clock,
        scanner=scanner if scanner is not None else fakes.scanner,
        vocabulary=vocabulary if vocabulary is not None else fakes.vocabulary,
        settings=settings
        or Settings(allowed_users=frozenset(UserId(u) for u in allowed_users), workspace_path=fake_workspace.path),
        diagnosables=(fakes.workspace, fakes.agent, fakes.transcriber),
    )
    return app, fakes


__all__ = [
    "EXECUTABLE",
    "REGULAR",
    "AgentScript",
    "FakeAgentRunner",
    "FakeClock",
    "FakePorts",
    "FakeSecretScanner",
    "FakeTranscriber",
    "FakeVocabulary",
    "FakeWorkspace",
    "InMemoryStateStore",
    "RecordingMessenger",
    "Sent",
    "build_voicecoder",
    "looks_like_audio",
]
