"""
In-memory fakes of every port. They record what happened so tests assert on state, not on calls.

Embedders use them too: `build_voicecoder()` wires a complete `VoiceCoder` on fakes.
"""

from __future__ import annotations

import copy
import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import TypeVar

import anyio
import attrs

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio, sniff_format
from voicecoder.domain.errors import (
    AgentRunError,
    DeliveryError,
    NoSpeechError,
    StateStoreError,
    TranscriptionError,
    VoicecoderError,
)
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    AssistantText,
    Audio,
    AuditRecord,
    ChangeId,
    ChangeStatus,
    ChatId,
    Compacted,
    Diagnostic,
    Diff,
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
    UserId,
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
from voicecoder.testing.fake_clock import FakeClock
from voicecoder.testing.fake_workspace import (
    EXECUTABLE,
    REGULAR,
    SYMLINK,
    FakeCheckpoint,
    FakeWorkspace,
    FakeWorkspaceTree,
)

_R = TypeVar("_R")


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
    """How many of the next sends fail with DeliveryError."""
    fail_next_answer: int = 0
    """How many of the next callback answers fail with DeliveryError."""
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
        if not any(s.ref == ref for s in self.sent):
            raise DeliveryError(f"fake edit of message {ref.message_id}, which was never sent to chat {ref.chat_id}")
        self.edits.append((ref, reply))

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        if self.fail_next_answer:
            self.fail_next_answer -= 1
            raise DeliveryError("fake callback answer failure")
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
    """
    Stores deep copies, so a test cannot change stored state by mutating a loaded entity.

    After `close()` every call raises `StateStoreError`, as a durable store's do once it cannot reach its data.
    """

    sessions: dict[ChatId, Session] = attrs.field(factory=dict)
    changes: dict[tuple[ChatId, ChangeId], PendingChange] = attrs.field(factory=dict)
    audit: list[AuditRecord] = attrs.field(factory=list)
    closed: bool = False

    async def close(self) -> None:
        self.closed = True

    def _open(self) -> None:
        if self.closed:
            raise StateStoreError("The in-memory state store is closed.")

    async def load_session(self, chat: ChatId, /) -> Session | None:
        self._open()
        stored = self.sessions.get(chat)
        return copy.deepcopy(stored) if stored is not None else None

    async def save_session(self, session: Session, /) -> None:
        self._open()
        saved = copy.deepcopy(session)
        before = self.sessions.get(session.chat_id)
        replaced = before.latest_change if before is not None else None
        latest = saved.latest_change
        if latest is not None:
            self.changes[(session.chat_id, latest.id)] = copy.deepcopy(latest)
        if replaced is not None and (latest is None or replaced.id != latest.id):
            kept = self.changes[(session.chat_id, replaced.id)]
            if kept.is_pending:
                # As a durable store does: the session no longer points at it, so something replaced it.
                kept.status = ChangeStatus.SUPERSEDED
                kept.decided_at = latest.created_at if latest is not None else saved.last_activity
        self.sessions[session.chat_id] = saved

    async def load_change(self, chat: ChatId, change: ChangeId, /) -> PendingChange | None:
        self._open()
        stored = self.changes.get((chat, change))
        return copy.deepcopy(stored) if stored is not None else None

    async def save_change(self, change: PendingChange, /) -> None:
        self._open()
        key = (change.chat_id, change.id)
        if key not in self.changes:
            raise StateStoreError(
                f"Chat {change.chat_id} has no change {change.id}: a change is first saved with its session."
            )
        self.changes[key] = copy.deepcopy(change)
        session = self.sessions.get(change.chat_id)
        if session is not None and session.latest_change is not None and session.latest_change.id == change.id:
            session.latest_change = copy.deepcopy(change)

    async def approved_changes(self, chat: ChatId, /, limit: int = 20) -> Sequence[PendingChange]:
        self._open()
        if limit < 1:
            return []
        # Newest saved first among equal decision times, as a durable store orders by insertion.
        mine = [c for (owner, _), c in reversed(self.changes.items()) if owner == chat]
        approved = [c for c in mine if c.is_approved and c.reverted_by is None and c.decided_at is not None]
        approved.sort(key=lambda c: c.decided_at or c.created_at, reverse=True)
        return [copy.deepcopy(c) for c in approved[:limit]]

    async def append_audit(self, record: AuditRecord, /) -> None:
        self._open()
        self.audit.append(record)

    async def audit_trail(self, chat: ChatId, /, limit: int = 20) -> Sequence[AuditRecord]:
        self._open()
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


def fake_ports() -> FakePorts:
    """
    A fresh fake of every port, without an app; the fake workspace starts with one committed ``README.md``.

    For a test that wraps some of them (a faulty store, say) before it wires its own `build_voicecoder`.
    """
    clock = FakeClock()
    workspace = FakeWorkspace(clock=clock)
    workspace.write("README.md", "# demo\n")
    workspace.head = dict(workspace.files)
    workspace.index = dict(workspace.files)
    return FakePorts(
        workspace=workspace,
        agent=FakeAgentRunner(workspace=workspace),
        transcriber=FakeTranscriber(),
        messenger=RecordingMessenger(),
        store=InMemoryStateStore(),
        clock=clock,
        scanner=FakeSecretScanner(),
        vocabulary=FakeVocabulary(("README.md",)),
    )


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

    fakes = fake_ports()
    fake_workspace = fakes.workspace
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
    "SYMLINK",
    "AgentScript",
    "FakeAgentRunner",
    "FakeCheckpoint",
    "FakeClock",
    "FakePorts",
    "FakeSecretScanner",
    "FakeTranscriber",
    "FakeVocabulary",
    "FakeWorkspace",
    "FakeWorkspaceTree",
    "InMemoryStateStore",
    "RecordingMessenger",
    "Sent",
    "build_voicecoder",
    "fake_ports",
    "looks_like_audio",
]
