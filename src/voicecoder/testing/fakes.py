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

from voicecoder.domain.errors import (
    AgentRunError,
    AudioTooLargeError,
    DeliveryError,
    NoSpeechError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import (
    AgentEvent,
    AgentRequest,
    AgentResult,
    AssistantText,
    Audio,
    AuditRecord,
    ChatId,
    Compacted,
    Diagnostic,
    Diff,
    SecretFinding,
    Session,
    SessionStarted,
    ToolFinished,
    ToolStarted,
    Transcript,
    TranscriptionHints,
    UserId,
)
from voicecoder.domain.ports import EventSink
from voicecoder.domain.replies import MessageRef, Reply
from voicecoder.domain.services import Ports, Settings, VoiceCoder
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
    """What the fake agent does for one prompt."""

    text: str = "Done."
    writes: dict[str, bytes | None] = attrs.field(factory=dict)
    success: bool = True
    error: str | None = None
    events: tuple[AgentEvent, ...] = ()


@attrs.define
class FakeAgentRunner:
    """
    Plays scripted turns; edits a `FakeWorkspace` like a coding agent would.

    With no script queued it answers "Echo: <prompt>" and changes nothing. Set `gate` to make runs
    wait until the test sets it (to test queueing and cancel).
    """

    workspace: FakeWorkspace | None = None
    scripts: list[AgentScript] = attrs.field(factory=list)
    requests: list[AgentRequest] = attrs.field(factory=list)
    compactions: list[str] = attrs.field(factory=list)
    gate: anyio.Event | None = None
    running: int = 0
    cancelled: int = 0
    known_sessions: set[str] = attrs.field(factory=set)

    def script(self, *scripts: AgentScript) -> None:
        self.scripts.extend(scripts)

    async def run(self, request: AgentRequest, /, on_event: EventSink) -> AgentResult:
        self.requests.append(request)
        script = self.scripts.pop(0) if self.scripts else AgentScript(text=f"Echo: {request.prompt}")
        session_id = request.session_id or str(uuid.uuid4())
        self.known_sessions.add(session_id)
        self.running += 1
        try:
            await on_event(SessionStarted(session_id, "fake-model"))
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
        )

    async def compact(self, session_id: str, /, on_event: EventSink) -> AgentResult:
        self.compactions.append(session_id)
        await on_event(Compacted("manual"))
        return AgentResult(text="Compacted.", success=True, session_id=session_id, subtype="success")

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("agent", ok=True, detail="fake agent (scripted)")]


# --- speech -----------------------------------------------------------------------

_AUDIO_MAGIC = (b"OggS", b"ID3", b"RIFF", b"fLaC", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")


def looks_like_audio(data: bytes) -> bool:
    return data.startswith(_AUDIO_MAGIC) or data[4:8] == b"ftyp"


@attrs.define
class FakeTranscriber:
    """
    Transcribes by table: sha256 of the audio → text. Unknown audio holds no speech.

    Non-audio bytes are refused like a real decoder would; oversize input is refused before "upload".
    """

    scripted: dict[str, str] = attrs.field(factory=dict)
    max_bytes: int = 20_000_000
    calls: list[tuple[Audio, TranscriptionHints | None]] = attrs.field(factory=list)
    refused: list[Audio] = attrs.field(factory=list)

    def learn(self, audio: Audio | bytes, text: str) -> None:
        data = audio.data if isinstance(audio, Audio) else audio
        self.scripted[hashlib.sha256(data).hexdigest()] = text

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        if audio.size > self.max_bytes:
            self.refused.append(audio)
            raise AudioTooLargeError(audio.size, self.max_bytes)
        self.calls.append((audio, hints))
        if not looks_like_audio(audio.data):
            raise UnsupportedAudioError("not a known audio container")
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
    typing_chats: list[ChatId] = attrs.field(factory=list)
    fail_next: int = 0
    _next_id: int = 1

    async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryError("fake delivery failure")
        ref = MessageRef(chat, self._next_id)
        self._next_id += 1
        self.sent.append(Sent(chat, reply, ref))
        return ref

    async def edit(self, ref: MessageRef, reply: Reply, /) -> None:
        self.edits.append((ref, reply))

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        self.callbacks.append((callback_id, text))

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
    audit: list[AuditRecord] = attrs.field(factory=list)

    async def load_session(self, chat: ChatId, /) -> Session | None:
        stored = self.sessions.get(chat)
        return copy.deepcopy(stored) if stored is not None else None

    async def save_session(self, session: Session, /) -> None:
        saved = copy.deepcopy(session)
        if saved.pending is not None:
            saved.pending.events.clear()
        self.sessions[session.chat_id] = saved

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
    messenger: object | None = None,
    allowed_users: Sequence[int] = (1,),
    settings: Settings | None = None,
    **overrides: object,
) -> tuple[VoiceCoder, FakePorts]:
    """
    A `VoiceCoder` wired on fakes; pass `messenger=` (e.g. a real TelegramMessenger) or any port to override.

    Returns the app and the fakes (the recording messenger is unused when you pass your own).
    """
    clock = FakeClock()
    workspace = FakeWorkspace(clock=clock)
    workspace.write("README.md", "# demo\n")
    workspace.head = dict(workspace.files)
    workspace.index = dict(workspace.files)
    fakes = FakePorts(
        workspace=workspace,
        agent=FakeAgentRunner(workspace=workspace),
        transcriber=FakeTranscriber(),
        messenger=RecordingMessenger(),
        store=InMemoryStateStore(),
        clock=clock,
        scanner=FakeSecretScanner(),
        vocabulary=FakeVocabulary(("README.md",)),
    )
    ports = Ports(
        workspace=overrides.pop("workspace", fakes.workspace),  # type: ignore[arg-type]
        agent=overrides.pop("agent", fakes.agent),  # type: ignore[arg-type]
        transcriber=overrides.pop("transcriber", fakes.transcriber),  # type: ignore[arg-type]
        messenger=messenger if messenger is not None else fakes.messenger,  # type: ignore[arg-type]
        store=overrides.pop("store", fakes.store),  # type: ignore[arg-type]
        clock=overrides.pop("clock", fakes.clock),  # type: ignore[arg-type]
        scanner=overrides.pop("scanner", fakes.scanner),  # type: ignore[arg-type]
        vocabulary=overrides.pop("vocabulary", fakes.vocabulary),  # type: ignore[arg-type]
        diagnosables=(fakes.workspace, fakes.agent, fakes.transcriber),
    )
    if overrides:
        raise TypeError(f"unknown ports: {sorted(overrides)}")
    app = VoiceCoder(
        ports,
        settings or Settings(allowed_users=frozenset(UserId(u) for u in allowed_users), workspace_path=workspace.path),
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
    "looks_like_audio",
]
