"""
The `Transcriber` contract: what every speech-to-text provider must do, as an abstract pytest class.

Subclass `TranscriberContract` in a ``test_*.py`` module, name the subclass ``Test…``, override the
``transcriber`` fixture, and declare what your test double can simulate::

    from voicecoder.testing import TranscriberContract

    class TestMyTranscriber(TranscriberContract):
        @pytest.fixture
        def transcriber(self) -> Transcriber:
            return MyTranscriber(base_url=...)

        @pytest.fixture
        def unauthorized_transcriber(self) -> Transcriber: ...   # and the other doubles below

Every capability of the suite is either provided (a fixture that returns the double) or declared
impossible in ``cannot_simulate`` with the reason; a capability that is neither fails the run with a
message saying what to provide. Nothing is skipped silently.

The suite ships its own voice clips (``voicecoder.testing.voice_clips``) and runs on asyncio by itself
(its ``anyio_backend`` fixture; override it with ``params=["asyncio", "trio"]`` to run both), marked for
the anyio pytest plugin, so it needs no configuration in your project.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar

import anyio
import pytest

from voicecoder.domain.errors import (
    AudioTooLargeError,
    AudioTooLongError,
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TranscriptionError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, Transcript, TranscriptionHints
from voicecoder.domain.ports import Transcriber
from voicecoder.testing.voice_clips import (
    HINT_CLIP,
    LONG_CLIP,
    OTHER_LANGUAGE_CLIPS,
    SHORT_CLIPS,
    TOO_LONG_CLIP,
    VoiceClip,
    voice_clip,
    voice_clips,
)
from voicecoder.testing.wer import corpus_wer, normalise, wer

__all__ = [
    "CAPABILITIES",
    "MALFORMED_BODIES",
    "OTHER_LANGUAGE_CLIPS",
    "SHORT_CLIPS",
    "TranscriberContract",
    "VoiceClip",
    "voice_clip",
    "voice_clips",
]

TranscriberFixture = Transcriber | AsyncIterator[Transcriber]

#: What a provider's test setup can simulate, and the fixture that provides each capability.
CAPABILITIES: Mapping[str, str] = {
    "accuracy": (
        "the `transcriber` (or its test backend) really recognises speech: WER bounds, non-English clips, "
        "a rare word only a hint makes recoverable, language detection and metadata that follow the audio"
    ),
    "backend_calls": (
        "the `backend_calls` fixture: a zero-argument callable counting the requests (uploads, engine runs) "
        "that reached the backend"
    ),
    "received_hints": (
        "the `received_hints` fixture: a zero-argument callable returning the vocabulary text the backend "
        "received with the latest request (keyterm parameters, a prompt, engine options)"
    ),
    "rejected_credentials": (
        "the `unauthorized_transcriber` fixture: your provider with credentials its backend rejects (HTTP 401)"
    ),
    "outage": "the `unavailable_transcriber` fixture: your provider whose backend answers with an outage (HTTP 503)",
    "rate_limit": (
        "the `rate_limited_transcriber` fixture: your provider whose backend rate-limits with a Retry-After header"
    ),
    "slow_backend": (
        "the `slow_transcriber` fixture: your provider whose backend answers later than the provider's own timeout"
    ),
    "stalled_backend": (
        "the `stalled_transcriber` fixture: your provider whose backend holds the first request without answering "
        "(answering later ones normally) while the provider's own timeout is far longer than the test waits"
    ),
    "refused_request": (
        "the `refusing_transcriber` fixture: your provider whose backend refuses the request for good "
        "(an unknown model, HTTP 404)"
    ),
    "malformed_response": (
        "the `malformed_backend` fixture: a callable taking raw response bytes and returning your provider "
        "whose backend answers HTTP 200 with exactly those bytes"
    ),
}

#: HTTP 200 bodies no speech API documents: each must become a TranscriptionError, never "no speech".
MALFORMED_BODIES: tuple[bytes, ...] = (
    b"<html><body>502 Bad Gateway</body></html>",
    b"",
    b"{",
    b"[]",
    b'{"unexpected": true}',
    b'{"text": 42, "results": 7, "status": [], "error": null}',
)


#: Vocabulary around the rare word, as a workspace would give it.
_HINT_TERMS = ("parse_config", "README.md", "main.py", "pytest")


def _current_tasks() -> set[object]:
    """The asyncio tasks alive right now (trio's structured concurrency cannot leak tasks)."""
    try:
        return set(asyncio.all_tasks())
    except RuntimeError:
        return set()


async def _wait_until(predicate: Callable[[], bool], what: str, patience_s: float) -> None:
    """Wait for *predicate* to hold (it reports an event of the backend); fail naming *what* after *patience_s*."""
    with anyio.move_on_after(patience_s):
        while not predicate():  # noqa: ASYNC110 - the backend's state has no event to wait on; poll it briefly
            await anyio.sleep(0.01)
        return
    pytest.fail(f"waited {patience_s:.0f} s for {what}", pytrace=False)


def _leaks(outcomes: Mapping[str, BaseException | Transcript]) -> dict[str, str]:
    return {
        name: f"{type(outcome).__module__}.{type(outcome).__qualname__}: {outcome}"
        for name, outcome in outcomes.items()
        if isinstance(outcome, BaseException) and not isinstance(outcome, TranscriptionError)
    }


def _odd_inputs() -> dict[str, Audio]:
    """Inputs a chat user can send that are not a clean recording."""
    clip = voice_clip("03_run_tests.ogg").read()
    return {
        "empty": Audio(b""),
        "three bytes": Audio(b"Ogg"),
        "ogg magic then text": Audio(b"OggS" + b"this is not an ogg page" * 20),
        "first 40 % of a voice note": Audio(clip[: len(clip) * 2 // 5]),
        "voice note with its first page cut": Audio(clip[200:]),
        "wav header without samples": Audio(
            b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80\x3e\x00\x00\x00\x7d\x00\x00"
            b"\x02\x00\x10\x00data\x00\x00\x00\x00"
        ),
        "id3 tag then zeros": Audio(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(2000)),
        "mp4 box then noise": Audio(b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 8),
    }


class TranscriberContract:
    """Abstract: subclass it as ``Test<YourProvider>``, override ``transcriber`` and declare capabilities."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.anyio]

    #: Capability name (see `CAPABILITIES`) → why it cannot happen for this provider or cannot be simulated.
    cannot_simulate: ClassVar[Mapping[str, str]] = {}
    #: Corpus WER bound over the ten short English clips.
    max_short_wer: ClassVar[float] = 0.20
    #: WER bound on the 40 s note.
    max_long_wer: ClassVar[float] = 0.12
    #: WER bounds per non-English clip language. espeak's German and French voices are too rough for Whisper
    #: base (WER about 1.0 even with the language given), so by default only Spanish is held to a bound; the
    #: language of all three must still be reported right. A stronger engine should add "de" and "fr".
    other_language_wer: ClassVar[Mapping[str, float]] = {"es": 0.5}
    #: The size limit the provider under test is configured with.
    max_bytes: ClassVar[int] = 20_000_000
    #: The duration limit the provider under test is configured with (the shipped over-long clip is 605 s).
    max_duration_s: ClassVar[float] = 600.0
    #: How long the suite waits for a backend event, or for a cancelled call to return, before failing.
    patience_s: ClassVar[float] = 30.0

    # --- configuration ------------------------------------------------------------------------

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The event loop the suite runs on; override with ``params=["asyncio", "trio"]`` to run both."""
        return "asyncio"

    @pytest.fixture
    def transcriber(self) -> TranscriberFixture:
        """The provider under test, configured with `max_bytes` and `max_duration_s`."""
        raise NotImplementedError("override the `transcriber` fixture: your provider, pointed at a test backend")

    def _not_provided(self, capability: str) -> Any:
        reason = self.cannot_simulate.get(capability)
        if reason:
            pytest.skip(reason=f"{type(self).__name__} declares {capability!r} impossible: {reason}")
        pytest.fail(
            f"{type(self).__name__} does not provide capability {capability!r}: override {CAPABILITIES[capability]}. "
            f"If it cannot happen for this provider or cannot be simulated, declare it with the reason: "
            f"cannot_simulate = {{{capability!r}: '<why>'}}.",
            pytrace=False,
        )

    def _requires(self, capability: str) -> None:
        if capability in self.cannot_simulate:
            self._not_provided(capability)

    @pytest.fixture
    def backend_calls(self) -> Callable[[], int]:
        return self._not_provided("backend_calls")  # type: ignore[no-any-return]

    @pytest.fixture
    def received_hints(self) -> Callable[[], Sequence[str]]:
        return self._not_provided("received_hints")  # type: ignore[no-any-return]

    @pytest.fixture
    def unauthorized_transcriber(self) -> TranscriberFixture:
        return self._not_provided("rejected_credentials")  # type: ignore[no-any-return]

    @pytest.fixture
    def unavailable_transcriber(self) -> TranscriberFixture:
        return self._not_provided("outage")  # type: ignore[no-any-return]

    @pytest.fixture
    def rate_limited_transcriber(self) -> TranscriberFixture:
        return self._not_provided("rate_limit")  # type: ignore[no-any-return]

    @pytest.fixture
    def slow_transcriber(self) -> TranscriberFixture:
        return self._not_provided("slow_backend")  # type: ignore[no-any-return]

    @pytest.fixture
    def stalled_transcriber(self) -> TranscriberFixture:
        return self._not_provided("stalled_backend")  # type: ignore[no-any-return]

    @pytest.fixture
    def refusing_transcriber(self) -> TranscriberFixture:
        return self._not_provided("refused_request")  # type: ignore[no-any-return]

    @pytest.fixture
    def malformed_backend(self) -> Callable[[bytes], Transcriber]:
        return self._not_provided("malformed_response")  # type: ignore[no-any-return]

    def test_declarations_name_known_capabilities(self) -> None:
        """Every ``cannot_simulate`` entry names a capability of the suite and gives a reason."""
        unknown = sorted(set(self.cannot_simulate) - set(CAPABILITIES))
        empty = sorted(name for name, reason in self.cannot_simulate.items() if not reason.strip())

        assert unknown == [], f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}"
        assert empty == [], f"give a reason for {empty}"

    # --- accuracy -------------------------------------------------------------------------

    async def test_short_clips_within_wer(self, transcriber: Transcriber) -> None:
        """The ten short English voice notes transcribe within `max_short_wer` (corpus WER)."""
        self._requires("accuracy")
        pairs = []
        for name in SHORT_CLIPS:
            clip = voice_clip(name)
            result = await transcriber.transcribe(clip.audio(), clip.hints)
            pairs.append((clip.text, result.text))

        actual = corpus_wer(pairs)

        assert actual <= self.max_short_wer, pairs

    async def test_long_note_within_wer(self, transcriber: Transcriber) -> None:
        """The 40 s note with all ten prompts transcribes within `max_long_wer`."""
        self._requires("accuracy")
        clip = voice_clip(LONG_CLIP)

        result = await transcriber.transcribe(clip.audio(), clip.hints)

        assert wer(clip.text, result.text) <= self.max_long_wer, result.text

    @pytest.mark.parametrize("name", OTHER_LANGUAGE_CLIPS)
    async def test_other_language_transcribed_and_reported(self, transcriber: Transcriber, name: str) -> None:
        """A German, Spanish or French note with its language hint is reported in that language (and within WER)."""
        self._requires("accuracy")
        clip = voice_clip(name)
        assert clip.language is not None

        try:
            result = await transcriber.transcribe(clip.audio(), clip.hints)
        except NoSpeechError:
            assert clip.language not in self.other_language_wer, "speech in a language held to a WER bound"
            return

        assert result.language is None or result.language.split("-")[0].lower() == clip.language, result
        bound = self.other_language_wer.get(clip.language)
        assert bound is None or wer(clip.text, result.text) <= bound, result.text

    async def test_language_detected_when_not_given(self, transcriber: Transcriber) -> None:
        """Without a language hint, a Spanish note is reported as Spanish (or unknown), never a constant."""
        self._requires("accuracy")
        clip = voice_clip("es_run_tests.ogg")

        result = await transcriber.transcribe(clip.audio(), TranscriptionHints())

        assert result.language is None or result.language.split("-")[0].lower() == "es", result

    async def test_result_fields(self, transcriber: Transcriber) -> None:
        """A transcript carries the words that were said and sane metadata."""
        self._requires("accuracy")
        clip = voice_clip("03_run_tests.ogg")

        result = await transcriber.transcribe(clip.audio(), clip.hints)

        assert isinstance(result, Transcript)
        assert "fix" in result.text.lower()
        assert "failures" in result.text.lower()
        assert result.confidence is None or 0.0 <= result.confidence <= 1.0
        assert result.language is None or result.language.startswith("en")

    async def test_metadata_follows_the_audio(self, transcriber: Transcriber) -> None:
        """Confidence and duration are measured per recording: not constants, durations within 0.5 s."""
        self._requires("accuracy")
        results = {}
        for name in ("03_run_tests.ogg", "05_add_function.ogg", "10_delete_build.ogg"):
            clip = voice_clip(name)
            results[name] = (clip, await transcriber.transcribe(clip.audio(), clip.hints))

        confidences = {r.confidence for _, r in results.values()}
        wrong_durations = {
            name: (clip.duration_s, result.duration_s)
            for name, (clip, result) in results.items()
            if result.duration_s is not None
            and clip.duration_s is not None
            and not math.isclose(result.duration_s, clip.duration_s, abs_tol=0.5)
        }

        assert confidences == {None} or len(confidences) > 1, f"the same confidence for every clip: {confidences}"
        assert wrong_durations == {}, f"durations (expected, reported): {wrong_durations}"

    async def test_rare_word_recovered_with_hint(self, transcriber: Transcriber) -> None:
        """A made-up word (``quillmesh``) that no model knows is transcribed when the hint names it."""
        self._requires("accuracy")
        clip = voice_clip(HINT_CLIP)
        assert clip.hint is not None
        hints = TranscriptionHints(keyterms=(*_HINT_TERMS[:2], clip.hint, *_HINT_TERMS[2:]), language="en")

        result = await transcriber.transcribe(clip.audio(), hints)

        assert clip.hint in normalise(result.text), result.text

    async def test_hints_and_auto_language_accepted(self, transcriber: Transcriber) -> None:
        """Code vocabulary hints and an unset language (auto-detection) are accepted."""
        self._requires("accuracy")
        clip = voice_clip("08_rename_variable.ogg")
        hints = TranscriptionHints(keyterms=("main.py", "count", "total", "README.md"))

        result = await transcriber.transcribe(clip.audio(), hints)

        assert wer(clip.text, result.text) <= 0.5, result.text
        assert result.language is None or result.language.startswith("en"), result

    # --- hints ------------------------------------------------------------------------------

    async def test_hints_reach_the_backend(
        self, transcriber: Transcriber, received_hints: Callable[[], Sequence[str]]
    ) -> None:
        """Every keyterm of the hints is in what the backend received with the request."""
        clip = voice_clip(HINT_CLIP)
        terms = (*_HINT_TERMS, clip.hint or "quillmesh")

        await transcriber.transcribe(clip.audio(), TranscriptionHints(keyterms=terms, language="en"))
        received = " ".join(received_hints())

        missing = [term for term in terms if term not in received]
        assert missing == [], f"hints the backend never received: {missing} (it got {received!r})"

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

    async def test_empty_audio_refused_before_upload(
        self, transcriber: Transcriber, backend_calls: Callable[[], int]
    ) -> None:
        """Zero bytes raise UnsupportedAudioError and never reach the backend."""
        before = backend_calls()

        with pytest.raises(UnsupportedAudioError):
            await transcriber.transcribe(Audio(b""))

        assert backend_calls() == before

    async def test_oversize_refused_before_upload(
        self, transcriber: Transcriber, backend_calls: Callable[[], int]
    ) -> None:
        """Input over `max_bytes` raises AudioTooLargeError and never reaches the backend."""
        before = backend_calls()
        huge = Audio(data=b"OggS" + bytes(self.max_bytes), mime_type="audio/ogg")

        with pytest.raises(AudioTooLargeError) as info:
            await transcriber.transcribe(huge)

        assert info.value.size_bytes == huge.size
        assert backend_calls() == before

    async def test_declared_too_long_refused_before_upload(
        self, transcriber: Transcriber, backend_calls: Callable[[], int]
    ) -> None:
        """A note whose sender declares more than `max_duration_s` raises AudioTooLongError before any upload."""
        before = backend_calls()
        clip = voice_clip("03_run_tests.ogg")
        audio = Audio(clip.read(), declared_duration_s=self.max_duration_s + 1)

        with pytest.raises(AudioTooLongError) as info:
            await transcriber.transcribe(audio)

        assert info.value.limit_s == self.max_duration_s
        assert backend_calls() == before

    async def test_recorded_too_long_refused_before_upload(
        self, transcriber: Transcriber, backend_calls: Callable[[], int]
    ) -> None:
        """A 605 s note that declares nothing raises AudioTooLongError from its container, before any upload."""
        before = backend_calls()
        clip = voice_clip(TOO_LONG_CLIP)
        assert clip.duration_s is not None
        assert clip.duration_s > self.max_duration_s, "raise the clip or lower max_duration_s"

        with pytest.raises(AudioTooLongError) as info:
            await transcriber.transcribe(clip.audio())

        assert info.value.duration_s > self.max_duration_s
        assert backend_calls() == before

    async def test_only_transcription_errors_escape(self, transcriber: Transcriber) -> None:
        """Damaged, truncated and mislabelled input gives a transcript or a TranscriptionError, nothing else."""
        outcomes: dict[str, BaseException | Transcript] = {}
        for name, audio in _odd_inputs().items():
            try:
                outcomes[name] = await transcriber.transcribe(audio)
            except Exception as exc:
                outcomes[name] = exc

        assert _leaks(outcomes) == {}

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

    async def test_refusal_is_rejected_not_retryable(self, refusing_transcriber: Transcriber) -> None:
        """A refusal for good raises ProviderRejectedError, whose message does not tell the user to try again."""
        with pytest.raises(ProviderRejectedError) as info:
            await refusing_transcriber.transcribe(voice_clip("03_run_tests.ogg").audio())

        assert "try again" not in str(info.value).lower()

    @pytest.mark.parametrize("body", MALFORMED_BODIES, ids=lambda b: b[:20].decode("ascii", "replace") or "empty")
    async def test_malformed_response(self, malformed_backend: Callable[[bytes], Transcriber], body: bytes) -> None:
        """An HTTP 200 body the API never documents is a TranscriptionError, not "no speech" nor a foreign error."""
        provider = malformed_backend(body)

        with pytest.raises(TranscriptionError) as info:
            await provider.transcribe(voice_clip("03_run_tests.ogg").audio())

        assert not isinstance(info.value, NoSpeechError), "a malformed answer is not silence"

    # --- concurrency and cancellation -----------------------------------------------------------

    async def test_concurrent_calls_keep_their_own_results(self, transcriber: Transcriber) -> None:
        """Three notes transcribed at once each get the transcript they get alone."""
        names = ("02_check_workspace.ogg", "03_run_tests.ogg", "06_commit.ogg")
        alone = {}
        for name in names:
            clip = voice_clip(name)
            alone[name] = (await transcriber.transcribe(clip.audio(), clip.hints)).text
        together: dict[str, str] = {}

        async def one(name: str) -> None:
            clip = voice_clip(name)
            together[name] = (await transcriber.transcribe(clip.audio(), clip.hints)).text

        async with anyio.create_task_group() as group:
            for name in names:
                group.start_soon(one, name)

        assert together == alone

    async def test_cancellation_leaves_nothing_behind(
        self, stalled_transcriber: Transcriber, backend_calls: Callable[[], int]
    ) -> None:
        """
        Cancelling a call whose request the backend holds ends it at once: no result, no task left running.

        The next call on the same provider gets its own transcript, not the cancelled one's.
        """
        tasks_before = _current_tasks()
        calls_before = backend_calls()
        results: list[Transcript] = []
        clip = voice_clip(LONG_CLIP)

        async def call() -> None:
            results.append(await stalled_transcriber.transcribe(clip.audio(), clip.hints))

        with anyio.fail_after(self.patience_s * 2):
            async with anyio.create_task_group() as group:
                group.start_soon(call)
                await _wait_until(lambda: backend_calls() > calls_before, "the request to reach the backend", 30)
                group.cancel_scope.cancel()
        await _wait_until(
            lambda: not (_current_tasks() - tasks_before), "tasks started by the cancelled call to end", 10
        )
        other = voice_clip("03_run_tests.ogg")
        first = await stalled_transcriber.transcribe(other.audio(), other.hints)
        second = await stalled_transcriber.transcribe(other.audio(), other.hints)

        assert results == [], "the cancelled call delivered a result"
        assert first.text == second.text, "a later call got the cancelled call's result"
