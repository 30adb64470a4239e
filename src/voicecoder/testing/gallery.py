"""
A gallery of broken speech-to-text providers: each must fail `TranscriberContract`.

Each entry is a mixin that breaks one promise of the `Transcriber` port the way real adapters have broken it.
Put it in front of a working provider class (``type("Broken", (DropsHints, MyTranscriber), {})``) and run the
contract on the result: `BROKEN` maps each mixin to the contract tests that must fail. voicecoder's own
meta-tests do this with the provider of docs/stt-contract.md; a provider's authors can do it with theirs.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from voicecoder.domain.errors import (
    NoSpeechError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TranscriptionError,
)
from voicecoder.domain.model import Audio, Transcript, TranscriptionHints

__all__ = [
    "BROKEN",
    "ConstantLanguageAndConfidence",
    "DropsHints",
    "LeaksForeignExceptions",
    "SameTextForEveryClip",
    "SwallowsErrors",
]


class SameTextForEveryClip:
    """Answers every recording with the same sentence (a fake that "knows" one clip)."""

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        await super().transcribe(audio, hints)  # type: ignore[misc]
        return Transcript(text="create a file called test dot txt", language="en", confidence=0.9)


class SwallowsErrors:
    """Turns every failure (bad key, outage, rate limit, timeout, refusal) into "no speech"."""

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        try:
            result: Transcript = await super().transcribe(audio, hints)  # type: ignore[misc]
        except TranscriptionError as exc:
            raise NoSpeechError from exc
        return result


class ConstantLanguageAndConfidence:
    """Always reports English with confidence 1.0, whatever was said."""

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        result: Transcript = await super().transcribe(audio, hints)  # type: ignore[misc]
        return attrs.evolve(result, language="en", confidence=1.0)


class LeaksForeignExceptions:
    """Lets the vendor's and the standard library's exceptions escape, as a first draft does."""

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        try:
            result: Transcript = await super().transcribe(audio, hints)  # type: ignore[misc]
        except ProviderTimeoutError as exc:
            raise TimeoutError from exc
        except ProviderUnavailableError as exc:
            raise KeyError("text") from exc  # reading body["text"] of an error body
        return result


class DropsHints:
    """Never sends the vocabulary hints (keeps the language)."""

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        language = TranscriptionHints(language=hints.language if hints else None)
        result: Transcript = await super().transcribe(audio, language)  # type: ignore[misc]
        return result


#: Each broken mixin → contract tests that must fail for it.
BROKEN: Mapping[type, tuple[str, ...]] = {
    SameTextForEveryClip: ("test_short_clips_within_wer", "test_long_note_within_wer", "test_result_fields"),
    SwallowsErrors: ("test_rejected_credentials", "test_outage", "test_rate_limited_carries_retry_after"),
    ConstantLanguageAndConfidence: ("test_language_detected_when_not_given", "test_metadata_follows_the_audio"),
    LeaksForeignExceptions: ("test_outage", "test_slow_backend_times_out", "test_malformed_response"),
    DropsHints: ("test_hints_reach_the_backend", "test_rare_word_recovered_with_hint"),
}
