"""
What the fake speech servers hear with: a `Recognizer` turns the uploaded bytes into text.

The fakes never look a clip up by its hash (that would make every accuracy test pass by construction).
They hear through a recognizer given to them:

* `EngineRecognizer`: the embedded faster-whisper engine, so a fake server's transcript is real recognition of
  exactly the bytes, language and vocabulary the adapter sent. Results are memoised per (audio sha256,
  language, prompt): the same request gets the engine's same answer without decoding it again, which keeps
  the contract affordable when several providers and the broken-provider gallery send the same clips.
* `ScriptedRecognizer`: one fixed answer for any audio, for protocol tests that check how an adapter maps a
  response, not what was said.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol

import attrs

from voicecoder.adapters.stt.audio_intake import container_duration
from voicecoder.domain.errors import NoSpeechError, TranscriptionError
from voicecoder.domain.model import Audio, Transcript

if TYPE_CHECKING:
    from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber

__all__ = ["EngineRecognizer", "Recognition", "Recognizer", "ScriptedRecognizer"]

_SHARED: EngineRecognizer | None = None


@attrs.frozen
class Recognition:
    """What a fake server heard: *text* is empty for silence; *language* an ISO 639-1 code."""

    text: str
    language: str | None
    confidence: float | None
    duration_s: float


class Recognizer(Protocol):
    async def recognize(self, data: bytes, *, language: str | None, prompt: str | None) -> Recognition:
        """
        Hear *data* (*language* None means detect it; *prompt* is the vocabulary the request carried).

        Raises:
            TranscriptionError: The bytes cannot be decoded as audio (UnsupportedAudioError).
        """
        ...


@attrs.define
class ScriptedRecognizer:
    """Hears *text* in any recording (or nothing, for an empty *text*), and records what it was asked."""

    text: str = ""
    language: str = "en"
    confidence: float = 0.93
    requests: list[tuple[str | None, str | None]] = attrs.field(factory=list)

    async def recognize(self, data: bytes, *, language: str | None, prompt: str | None) -> Recognition:
        self.requests.append((language, prompt))
        duration = container_duration(data) or 0.0
        return Recognition(self.text, language or self.language, self.confidence if self.text else None, duration)


@attrs.define
class EngineRecognizer:
    """Hears with a loaded `LocalWhisperTranscriber`; memoised per request content (see the module docstring)."""

    engine: LocalWhisperTranscriber
    #: Decodes actually run (memo misses).
    decodes: int = 0
    _memo: dict[tuple[str, str | None, str | None], Recognition | TranscriptionError] = attrs.field(
        factory=dict, repr=False
    )

    @classmethod
    def shared(cls, engine: LocalWhisperTranscriber | None = None) -> EngineRecognizer:
        """
        The process-wide recognizer (created on first use, with *engine* or a freshly loaded Whisper ``base``).

        Every fake server and contract run in one test session then shares one engine and one memo.
        """
        global _SHARED  # noqa: PLW0603 - one engine per process is the point
        if _SHARED is None:
            if engine is None:
                from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber  # noqa: PLC0415

                engine = LocalWhisperTranscriber()
                engine.load()
            _SHARED = cls(engine)
        return _SHARED

    async def recognize(self, data: bytes, *, language: str | None, prompt: str | None) -> Recognition:
        key = (hashlib.sha256(data).hexdigest(), language, prompt)
        if key not in self._memo:
            self._memo[key] = await self._hear(data, language, prompt)
        outcome = self._memo[key]
        if isinstance(outcome, TranscriptionError):
            raise outcome
        return outcome

    def remember(
        self, data: bytes, language: str | None, prompt: str | None, outcome: Transcript | TranscriptionError
    ) -> None:
        """Keep what the engine itself answered for exactly these inputs (a caller that ran it directly)."""
        self._memo[(hashlib.sha256(data).hexdigest(), language, prompt)] = _recognition(data, language, outcome)

    async def _hear(self, data: bytes, language: str | None, prompt: str | None) -> Recognition | TranscriptionError:
        self.decodes += 1
        try:
            result = await self.engine.recognize(Audio(data), language=language, prompt=prompt)
        except TranscriptionError as exc:
            return _recognition(data, language, exc)
        return _recognition(data, language, result)


def _recognition(
    data: bytes, language: str | None, outcome: Transcript | TranscriptionError
) -> Recognition | TranscriptionError:
    """What a fake server hears, from the engine's transcript or error (silence is an empty recognition)."""
    if isinstance(outcome, NoSpeechError):
        return Recognition("", language, None, container_duration(data) or 0.0)
    if isinstance(outcome, TranscriptionError):
        return outcome
    return Recognition(outcome.text, outcome.language, outcome.confidence, outcome.duration_s or 0.0)
