from __future__ import annotations

from collections.abc import Sequence

from voicecoder.domain.errors import TranscriptionError
from voicecoder.domain.model import Audio, ChatId, Diagnostic, Transcript, TranscriptionHints, UserId
from voicecoder.domain.replies import ErrorReply, SpeechCheck, Unauthorized
from voicecoder.testing.fakes import FakeClock, build_voicecoder

CHAT = ChatId(100)
ALICE = UserId(1)
MALLORY = UserId(666)
OGG = b"OggS" + b"\0" * 60


class TimedTranscriber:
    """An engine that takes *seconds* of the fake clock, as a real one takes wall time; or fails."""

    def __init__(self, clock: FakeClock, seconds: float, *, fail: bool = False) -> None:
        self.clock = clock
        self.seconds = seconds
        self.fail = fail
        self.calls: list[TranscriptionHints | None] = []

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        self.calls.append(hints)
        self.clock.advance(self.seconds)
        if self.fail:
            raise TranscriptionError("The speech engine is down; try again in a minute.")
        return Transcript(text="run the tests", duration_s=30.0, confidence=0.9)

    async def diagnose(self) -> Sequence[Diagnostic]:
        return []


class TestSpeechCheck:
    async def test_transcribes_times_and_runs_nothing(self) -> None:
        """
        A speech check answers what was heard and how long the engine took, with the same workspace hints a
        voice note gets, and never starts the agent.
        """
        clock = FakeClock()
        engine = TimedTranscriber(clock, 3.5)
        app, fakes = build_voicecoder(allowed_users=[ALICE.value], clock=clock, transcriber=engine)

        await app.hear(CHAT, ALICE, Audio(OGG, declared_duration_s=29.0))

        assert fakes.messenger.replies(CHAT) == [
            SpeechCheck(text="run the tests", audio_s=30.0, seconds=3.5, confidence=0.9)
        ]
        assert fakes.agent.requests == []
        assert engine.calls[0] is not None
        assert "README.md" in engine.calls[0].keyterms
        assert [r.action for r in await fakes.store.audit_trail(CHAT)] == ["speech-check"]

    async def test_only_for_allowed_users(self) -> None:
        """Anyone else gets ⛔ and nothing is transcribed."""
        app, fakes = build_voicecoder(allowed_users=[ALICE.value])

        await app.hear(CHAT, MALLORY, Audio(OGG))

        assert fakes.messenger.replies(CHAT) == [Unauthorized(MALLORY.value)]
        assert fakes.transcriber.calls == []

    async def test_engine_failure_is_said(self) -> None:
        """A failing engine is reported with its own message."""
        clock = FakeClock()
        app, fakes = build_voicecoder(
            allowed_users=[ALICE.value], clock=clock, transcriber=TimedTranscriber(clock, 0.1, fail=True)
        )

        await app.hear(CHAT, ALICE, Audio(OGG))

        assert fakes.messenger.replies(CHAT) == [ErrorReply("The speech engine is down; try again in a minute.")]
