"""
The `Transcriber` contract: what every speech-to-text provider must do, as an abstract pytest class.

Subclass `TranscriberContract` in a ``test_*.py`` module, name the subclass ``Test…`` and override the
``transcriber`` fixture (a plain fixture, or an async generator that closes what it opened)::

    class TestMyTranscriber(TranscriberContract):
        @pytest.fixture
        def transcriber(self) -> Transcriber:
            return MyTranscriber()

The suite ships its own voice clips (``voicecoder/testing/data/voice``: ten short English voice notes,
a 40 s note, 2 s of silence and a text file named ``.ogg``) and checks: the clips transcribe within a
word-error-rate bound, silence is `NoSpeechError` (never an invented sentence), non-audio is
`UnsupportedAudioError`, and oversize input is refused with `AudioTooLargeError` before any work.

Optional fixtures let a provider prove more; their defaults skip, because not every provider can
simulate these failures:

* ``backend_calls``: a zero-argument callable counting requests that reached the backend (uploads,
  engine runs), so the suite can prove oversize input was refused before upload;
* ``unauthorized_transcriber``: configured with rejected credentials → `ProviderAuthError`;
* ``unavailable_transcriber``: its backend answers with an outage → `ProviderUnavailableError`;
* ``rate_limited_transcriber``: its backend rate-limits with ``Retry-After`` → ``retry_after`` is set;
* ``slow_transcriber``: its backend answers after the adapter's timeout → `ProviderTimeoutError`.

Class attributes tune the bounds: ``max_short_wer`` (corpus WER over the ten short clips),
``max_long_wer`` (the 40 s note) and ``max_bytes`` (the size limit the provider is configured with).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

import attrs
import pytest

from voicecoder.domain.errors import (
    AudioTooLargeError,
    NoSpeechError,
    ProviderAuthError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, Transcript, TranscriptionHints
from voicecoder.domain.ports import Transcriber
from voicecoder.testing.wer import corpus_wer, wer

__all__ = ["TranscriberContract", "VoiceClip", "clip_texts", "voice_clip", "voice_clips"]

TranscriberFixture = Transcriber | AsyncIterator[Transcriber]

_DATA = "data/voice"


@attrs.frozen
class VoiceClip:
    """One shipped fixture clip and its reference transcript."""

    file: str
    kind: str
    language: str | None
    text: str
    sha256: str
    duration_s: float | None

    def read(self) -> bytes:
        return resources.files("voicecoder.testing").joinpath(f"{_DATA}/{self.file}").read_bytes()

    def audio(self) -> Audio:
        return Audio(data=self.read(), mime_type="audio/ogg", filename=self.file)

    @property
    def hints(self) -> TranscriptionHints:
        return TranscriptionHints(language=self.language)


@functools.cache
def voice_clips() -> dict[str, VoiceClip]:
    """The shipped clips by file name (only those present in the package data)."""
    folder = resources.files("voicecoder.testing").joinpath(_DATA)
    meta: dict[str, Any] = json.loads(folder.joinpath("transcripts.json").read_text(encoding="utf-8"))
    clips: dict[str, VoiceClip] = {}
    for entry in meta["clips"]:
        if not folder.joinpath(entry["file"]).is_file():
            continue
        clips[entry["file"]] = VoiceClip(
            file=entry["file"],
            kind=entry["kind"],
            language=entry.get("language"),
            text=entry.get("text") or "",
            sha256=entry.get("sha256") or "",
            duration_s=entry.get("duration_s"),
        )
    return clips


def voice_clip(name: str) -> VoiceClip:
    """A shipped clip by file name, e.g. ``"03_run_tests.ogg"``."""
    return voice_clips()[name]


def clip_texts() -> dict[str, str]:
    """sha256 → reference text of every speech clip: the table fake providers transcribe with."""
    return {c.sha256: c.text for c in voice_clips().values() if c.kind == "speech" and c.sha256}


SHORT_CLIPS = (
    "01_create_file.ogg",
    "02_check_workspace.ogg",
    "03_run_tests.ogg",
    "04_list_python.ogg",
    "05_add_function.ogg",
    "06_commit.ogg",
    "07_show_log.ogg",
    "08_rename_variable.ogg",
    "09_install_requests.ogg",
    "10_delete_build.ogg",
)


class TranscriberContract:
    """Abstract: subclass it as ``Test<YourProvider>`` and override ``transcriber``."""

    max_short_wer: float = 0.20
    max_long_wer: float = 0.12
    max_bytes: int = 20_000_000

    @pytest.fixture
    def transcriber(self) -> TranscriberFixture:
        """The provider under test, with its default size limit (`max_bytes`)."""
        raise NotImplementedError("override the `transcriber` fixture")

    @pytest.fixture
    def backend_calls(self) -> Callable[[], int] | None:
        """Override: count requests that reached the backend. None: the suite checks only the error."""
        return None

    @pytest.fixture
    def unauthorized_transcriber(self) -> TranscriberFixture:
        pytest.skip(reason="simulation unavailable for this provider: rejected credentials")

    @pytest.fixture
    def unavailable_transcriber(self) -> TranscriberFixture:
        pytest.skip(reason="simulation unavailable for this provider: an outage")

    @pytest.fixture
    def rate_limited_transcriber(self) -> TranscriberFixture:
        pytest.skip(reason="simulation unavailable for this provider: rate limiting")

    @pytest.fixture
    def slow_transcriber(self) -> TranscriberFixture:
        pytest.skip(reason="simulation unavailable for this provider: a slow backend")

    # --- accuracy -------------------------------------------------------------------------

    async def test_short_clips_within_wer(self, transcriber: Transcriber) -> None:
        """The ten short English voice notes transcribe within `max_short_wer` (corpus WER)."""
        pairs = []
        for name in SHORT_CLIPS:
            clip = voice_clip(name)
            result = await transcriber.transcribe(clip.audio(), clip.hints)
            pairs.append((clip.text, result.text))

        actual = corpus_wer(pairs)

        assert actual <= self.max_short_wer, pairs

    async def test_long_note_within_wer(self, transcriber: Transcriber) -> None:
        """The 40 s note with all ten prompts transcribes within `max_long_wer`."""
        clip = voice_clip("long_all10.ogg")

        result = await transcriber.transcribe(clip.audio(), clip.hints)

        assert wer(clip.text, result.text) <= self.max_long_wer, result.text

    async def test_result_fields(self, transcriber: Transcriber) -> None:
        """A transcript carries the words that were said and sane metadata."""
        clip = voice_clip("03_run_tests.ogg")

        result = await transcriber.transcribe(clip.audio(), clip.hints)

        assert isinstance(result, Transcript)
        assert "fix" in result.text.lower()
        assert "failures" in result.text.lower()
        assert result.confidence is None or 0.0 <= result.confidence <= 1.0
        assert result.duration_s is None or 0.0 < result.duration_s < 10.0
        assert result.language is None or result.language.startswith("en")

    async def test_hints_and_auto_language_accepted(self, transcriber: Transcriber) -> None:
        """Code vocabulary hints and an unset language (auto-detection) are accepted."""
        clip = voice_clip("08_rename_variable.ogg")
        hints = TranscriptionHints(keyterms=("main.py", "count", "total", "README.md"))

        result = await transcriber.transcribe(clip.audio(), hints)

        assert wer(clip.text, result.text) <= 0.5, result.text

    # --- refusals -------------------------------------------------------------------------

    async def test_silence_is_no_speech(self, transcriber: Transcriber) -> None:
        """Two seconds of silence raise NoSpeechError instead of yielding invented text."""
        clip = voice_clip("silence_2s.ogg")

        with pytest.raises(NoSpeechError):
            await transcriber.transcribe(clip.audio(), clip.hints)

    async def test_not_audio_is_unsupported(self, transcriber: Transcriber) -> None:
        """A text file named .ogg raises UnsupportedAudioError."""
        clip = voice_clip("not_audio.ogg")

        with pytest.raises(UnsupportedAudioError):
            await transcriber.transcribe(clip.audio())

    async def test_oversize_refused_before_upload(
        self, transcriber: Transcriber, backend_calls: Callable[[], int] | None
    ) -> None:
        """Input over `max_bytes` raises AudioTooLargeError and never reaches the backend."""
        before = backend_calls() if backend_calls else 0
        huge = Audio(data=b"OggS" + bytes(self.max_bytes), mime_type="audio/ogg")

        with pytest.raises(AudioTooLargeError) as info:
            await transcriber.transcribe(huge)

        assert info.value.size_bytes == huge.size
        if backend_calls is not None:
            assert backend_calls() == before

    # --- provider failures ----------------------------------------------------------------

    async def test_rejected_credentials(self, unauthorized_transcriber: Transcriber) -> None:
        """Rejected credentials raise ProviderAuthError."""
        with pytest.raises(ProviderAuthError):
            await unauthorized_transcriber.transcribe(voice_clip("03_run_tests.ogg").audio())

    async def test_outage(self, unavailable_transcriber: Transcriber) -> None:
        """An outage raises ProviderUnavailableError."""
        with pytest.raises(ProviderUnavailableError):
            await unavailable_transcriber.transcribe(voice_clip("03_run_tests.ogg").audio())

    async def test_rate_limited_carries_retry_after(self, rate_limited_transcriber: Transcriber) -> None:
        """Rate limiting raises ProviderUnavailableError with the provider's retry delay."""
        with pytest.raises(ProviderUnavailableError) as info:
            await rate_limited_transcriber.transcribe(voice_clip("03_run_tests.ogg").audio())

        assert info.value.retry_after is not None
        assert info.value.retry_after > 0

    async def test_slow_backend_times_out(self, slow_transcriber: Transcriber) -> None:
        """A backend slower than the adapter's timeout raises ProviderTimeoutError."""
        with pytest.raises(ProviderTimeoutError):
            await slow_transcriber.transcribe(voice_clip("03_run_tests.ogg").audio())
