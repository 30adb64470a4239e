"""
The session's Whisper engine seen through the real adapter: its answers kept for the fake speech servers
(`RememberingWhisper`) and, for tests that hear a clip an earlier test already decoded alike, replayed once per
test (`ReplayingWhisper`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import attrs

from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber
from voicecoder.domain.errors import TranscriptionError
from voicecoder.domain.model import Audio, Transcript
from voicecoder.simulators.stt import EngineRecognizer


class RememberingWhisper(LocalWhisperTranscriber):
    """
    The real adapter; each recognition it makes is also kept by the fake servers' shared recognizer.

    The key is the exact input the engine got (bytes, language, prompt) and the value its own answer, so a fake
    server later asked the same thing answers what this engine heard, without decoding it a second time.
    """

    async def recognize(
        self, audio: Audio, *, language: str | None = None, prompt: str | None = None, terms: Sequence[str] = ()
    ) -> Transcript:
        recognizer = EngineRecognizer.shared(self)
        # A decode rescored toward keyterms is not what a server given only the prompt would hear.
        biased = self.hypothesis_bias(terms) is not None
        try:
            result = await super().recognize(audio, language=language, prompt=prompt, terms=terms)
        except TranscriptionError as exc:
            if not biased:
                recognizer.remember(audio.data, language, prompt, exc)
            raise
        if not biased:
            recognizer.remember(audio.data, language, prompt, result)
        return result


@attrs.frozen
class Decoded:
    """What the engine answered for one input, and what it did on the way (the adapter's observable counters)."""

    transcript: Transcript
    vocabulary: tuple[str, ...]
    guard_redecodes: int


#: The session engine's successful decodes, by (audio digest, language, prompt, engine settings). Per process.
_DECODED: dict[tuple[object, ...], Decoded] = {}


class ReplayingWhisper(RememberingWhisper):
    """
    The real adapter on the session's loaded engine; a decode this engine already made for exactly the same input
    and settings (in an earlier test) is answered from its record, at most once per instance, i.e. per test.

    Only the engine's work is replayed: the intake checks, the thread hand-off and the limiter run as always, and a
    replayed call counts as an engine call with the vocabulary and guard re-decodes the real one had. The second
    use of an input in one test is decoded again, so a case that compares two answers for the same clip (calls at
    once against calls alone) compares the engine with itself, never a record with itself. The ten short clips
    are decoded by the contract and heard again, with the same language and windows, by the adapter's unit tests.
    """

    def __init__(self, session: LocalWhisperTranscriber, **settings: Any) -> None:
        super().__init__(model=session.model, cache_dir=session.cache_dir, **settings)
        EngineRecognizer.shared(session)  # the fake servers' memo stays on the session engine
        self._engine = session.load()
        self._weights = session._weights
        self._used: set[tuple[object, ...]] = set()
        #: Calls answered from a record.
        self.replayed = 0
        #: False: every call decodes (a case that needs the engine busy, e.g. to cancel it mid-way).
        self.replay = True

    def _run(self, data: bytes, language: str | None, prompt: str | None, terms: tuple[str, ...]) -> Transcript:
        settings = (self.model, self.compute_type, self.beam_size, self.no_repeat_ngram_size, self.hint_mode)
        key = (
            hashlib.sha256(data).digest(),
            language,
            prompt,
            *settings,
            self.encoder_windows,
            self.hypothesis_bias(terms),
        )
        record, first_use = _DECODED.get(key), key not in self._used
        self._used.add(key)  # calls reach here one at a time (max_concurrent=1)
        if record is not None and first_use and self.replay:
            self.replayed += 1
            self.engine_calls += 1
            self.last_vocabulary = record.vocabulary
            self.guard_redecodes += record.guard_redecodes
            return record.transcript
        guards = self.guard_redecodes
        transcript = super()._run(data, language, prompt, terms)
        _DECODED[key] = Decoded(transcript, self.last_vocabulary, self.guard_redecodes - guards)
        return transcript


__all__ = ["Decoded", "RememberingWhisper", "ReplayingWhisper"]
