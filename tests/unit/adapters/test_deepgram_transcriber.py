from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import aiohttp
import pytest

from voicecoder.adapters.stt.audio_intake import AudioLimits
from voicecoder.adapters.stt.deepgram import DeepgramTranscriber, parse_retry_after
from voicecoder.domain.errors import (
    AudioTooLongError,
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TranscriptionError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, TranscriptionHints
from voicecoder.simulators.stt import DEEPGRAM_CORRUPT_AUDIO, FakeDeepgramServer, ScriptedRecognizer
from voicecoder.testing.voice_clips import voice_clip

HEARD = ScriptedRecognizer("run the tests and fix any failures", confidence=0.97)

VOICE = Path(__file__).resolve().parents[2] / "fixtures" / "voice"
KEY = "dg-secret-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(name="server")
async def _server() -> AsyncIterator[FakeDeepgramServer]:
    async with FakeDeepgramServer(recognizer=HEARD, api_key=KEY) as server:
        yield server


@pytest.fixture(name="adapter")
async def _adapter(server: FakeDeepgramServer) -> AsyncIterator[DeepgramTranscriber]:
    async with DeepgramTranscriber(api_key=KEY, base_url=server.base_url, timeout_s=5) as adapter:
        yield adapter


@pytest.fixture(name="run_tests")
def _run_tests() -> Audio:
    return voice_clip("03_run_tests.ogg").audio()


class TestDeepgramRequest:
    async def test_request_shape(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """One POST /v1/listen: nova-3, smart_format, language detection, Token auth, the OGG bytes unchanged."""
        await adapter.transcribe(run_tests)

        [request] = server.requests
        assert request.method == "POST"
        assert request.path == "/v1/listen"
        assert request.params("model") == ["nova-3"]
        assert request.params("smart_format") == ["true"]
        assert request.params("detect_language") == ["true"]
        assert request.params("language") == []
        assert request.headers["Authorization"] == f"Token {KEY}"
        assert request.headers["Content-Type"] == "audio/ogg"
        assert request.body == run_tests.data

    async def test_language_and_keyterms(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """A hinted language replaces detection; each distinct keyterm is its own parameter, in order."""
        hints = TranscriptionHints(keyterms=("pytest", "main.py", "pytest", " ", "README.md"), language="en")

        await adapter.transcribe(run_tests, hints)

        [request] = server.requests
        assert request.params("language") == ["en"]
        assert request.params("detect_language") == []
        assert request.params("keyterm") == ["pytest", "main.py", "README.md"]

    async def test_keyterms_capped_at_100(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """At most 100 keyterms are sent (Deepgram's documented limit)."""
        hints = TranscriptionHints(keyterms=tuple(f"term{i}" for i in range(150)))

        await adapter.transcribe(run_tests, hints)

        assert len(server.requests[0].params("keyterm")) == 100

    async def test_oversize_never_sent(self, server: FakeDeepgramServer, run_tests: Audio) -> None:
        """A note over the duration limit is refused before any request."""
        async with DeepgramTranscriber(
            api_key=KEY, base_url=server.base_url, limits=AudioLimits(max_duration_s=2.0)
        ) as adapter:
            with pytest.raises(AudioTooLongError):
                await adapter.transcribe(run_tests)

        assert server.requests == []


class TestDeepgramResponse:
    async def test_transcript_fields(self, adapter: DeepgramTranscriber, run_tests: Audio) -> None:
        """Text, detected language, confidence, duration and words come from the response."""
        result = await adapter.transcribe(run_tests)

        assert result.text == "run the tests and fix any failures"
        assert result.language == "en"
        assert result.confidence == 0.97
        assert result.duration_s == pytest.approx(2.887, abs=0.01)
        assert [w.text for w in result.words] == result.text.split()
        assert result.words[-1].end_s == pytest.approx(result.duration_s, abs=0.01)

    async def test_detected_language_reported(self, run_tests: Audio) -> None:
        """The language Deepgram detected is the transcript's language."""
        async with (
            FakeDeepgramServer(
                recognizer=ScriptedRecognizer("ejecuta las pruebas", language="es"), api_key=KEY
            ) as server,
            DeepgramTranscriber(api_key=KEY, base_url=server.base_url) as adapter,
        ):
            result = await adapter.transcribe(run_tests)

        assert result.language == "es"

    async def test_silence(self) -> None:
        """An empty transcript (silence) is NoSpeechError."""
        async with (
            FakeDeepgramServer(recognizer=ScriptedRecognizer(""), api_key=KEY) as server,
            DeepgramTranscriber(api_key=KEY, base_url=server.base_url) as adapter,
        ):
            with pytest.raises(NoSpeechError):
                await adapter.transcribe(voice_clip("silence_2s.ogg").audio())

    async def test_unexpected_shape(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """A 200 without results is ProviderUnavailableError, not a crash."""
        server.script(200, {"metadata": {}})

        with pytest.raises(ProviderUnavailableError):
            await adapter.transcribe(run_tests)


class TestDeepgramErrors:
    @pytest.mark.parametrize("status", [401, 403])
    async def test_auth(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio, status: int
    ) -> None:
        """401 and 403 are ProviderAuthError."""
        server.script(status, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."})

        with pytest.raises(ProviderAuthError):
            await adapter.transcribe(run_tests)

    async def test_wrong_key_never_leaks(
        self, server: FakeDeepgramServer, run_tests: Audio, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A rejected key appears neither in the error, its cause chain, the adapter's repr nor the logs."""
        wrong = "dg-wrong-key-fedcba9876543210"
        caplog.set_level(logging.DEBUG)
        async with DeepgramTranscriber(api_key=wrong, base_url=server.base_url) as adapter:
            with pytest.raises(ProviderAuthError) as info:
                await adapter.transcribe(run_tests)
            shown = repr(adapter)

        texts = [str(info.value), repr(info.value), str(info.value.__cause__), shown, caplog.text]
        assert all(wrong not in text for text in texts)
        assert server.requests[0].headers["Authorization"] == f"Token {wrong}"

    async def test_corrupt_audio(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """Deepgram's 400 "corrupt or unsupported data" is UnsupportedAudioError."""
        server.script(400, {**DEEPGRAM_CORRUPT_AUDIO, "request_id": "r1"})

        with pytest.raises(UnsupportedAudioError):
            await adapter.transcribe(run_tests)

    async def test_other_bad_request(self, server: FakeDeepgramServer, run_tests: Audio) -> None:
        """Keyterms on a pre-Nova-3 model are a 400 the adapter reports as a configuration problem."""
        async with DeepgramTranscriber(api_key=KEY, base_url=server.base_url, model="nova-2") as adapter:
            with pytest.raises(TranscriptionError) as info:
                await adapter.transcribe(run_tests, TranscriptionHints(keyterms=("pytest",)))

        assert not isinstance(info.value, UnsupportedAudioError)
        assert "Keyterm" in str(info.value)

    async def test_bad_request_with_message_field(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """Bodies using `message` instead of `err_msg` are parsed too."""
        server.script(400, {"category": "INVALID_JSON", "message": "Invalid JSON submitted.", "request_id": "r"})

        with pytest.raises(TranscriptionError, match="Invalid JSON submitted"):
            await adapter.transcribe(run_tests)

    @pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0.5", 0.5)])
    async def test_rate_limited(
        self,
        server: FakeDeepgramServer,
        adapter: DeepgramTranscriber,
        run_tests: Audio,
        header: str,
        expected: float,
    ) -> None:
        """429 is ProviderUnavailableError carrying Retry-After."""
        server.script(429, {"err_code": "TOO_MANY_REQUESTS", "err_msg": "Too many requests"}, {"Retry-After": header})

        with pytest.raises(ProviderUnavailableError) as info:
            await adapter.transcribe(run_tests)

        assert info.value.retry_after == expected

    async def test_out_of_credit(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """402 is ProviderRejectedError naming the fix: retrying cannot help until the account is topped up."""
        server.script(402, {"err_code": "ASR_PAYMENT_REQUIRED", "err_msg": "Project does not have enough credits."})

        with pytest.raises(ProviderRejectedError, match="credit") as info:
            await adapter.transcribe(run_tests)

        assert "Top up" in str(info.value)
        assert "try again" not in str(info.value).lower()

    async def test_too_large_at_provider(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio
    ) -> None:
        """413 is a TranscriptionError asking for a shorter note."""
        server.script(413, {"err_code": "PAYLOAD_TOO_LARGE", "err_msg": "Payload too large"})

        with pytest.raises(TranscriptionError, match="shorter"):
            await adapter.transcribe(run_tests)

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    async def test_server_errors(
        self, server: FakeDeepgramServer, adapter: DeepgramTranscriber, run_tests: Audio, status: int
    ) -> None:
        """5xx is ProviderUnavailableError."""
        server.script(status, "upstream failure")

        with pytest.raises(ProviderUnavailableError) as info:
            await adapter.transcribe(run_tests)

        assert not isinstance(info.value, ProviderTimeoutError)

    async def test_timeout(self, server: FakeDeepgramServer, run_tests: Audio) -> None:
        """No answer within timeout_s is ProviderTimeoutError."""
        server.script(200, {}, delay_s=2.0)
        async with DeepgramTranscriber(api_key=KEY, base_url=server.base_url, timeout_s=0.2) as adapter:
            with pytest.raises(ProviderTimeoutError) as info:
                await adapter.transcribe(run_tests)

        assert info.value.timeout_s == 0.2

    async def test_connection_refused(self, run_tests: Audio) -> None:
        """A closed port is ProviderUnavailableError."""
        server = FakeDeepgramServer(recognizer=HEARD, api_key=KEY)
        url = await server.start()
        await server.close()

        async with DeepgramTranscriber(api_key=KEY, base_url=url) as adapter:
            with pytest.raises(ProviderUnavailableError):
                await adapter.transcribe(run_tests)


class TestDeepgramSession:
    async def test_injected_session_left_open(self, server: FakeDeepgramServer, run_tests: Audio) -> None:
        """An injected session is used and not closed by aclose()."""
        async with aiohttp.ClientSession() as session:
            adapter = DeepgramTranscriber(api_key=KEY, base_url=server.base_url, session=session)
            await adapter.transcribe(run_tests)
            await adapter.aclose()

            assert not session.closed

    async def test_owned_session_closed(self, server: FakeDeepgramServer, run_tests: Audio) -> None:
        """The adapter's own session is closed by aclose()."""
        adapter = DeepgramTranscriber(api_key=KEY, base_url=server.base_url)
        await adapter.transcribe(run_tests)
        owned = adapter._owned_session

        await adapter.aclose()

        assert owned is not None
        assert owned.closed


class TestParseRetryAfter:
    def test_seconds(self) -> None:
        """Delta-seconds are used as is."""
        assert parse_retry_after("12") == 12.0

    def test_http_date(self) -> None:
        """An HTTP date becomes the seconds until then."""
        assert parse_retry_after(formatdate(1_000_030, usegmt=True), now=1_000_000) == pytest.approx(30)

    @pytest.mark.parametrize("value", [None, "", "soon"])
    def test_missing_or_garbage(self, value: str | None) -> None:
        """Missing or unparsable values give None."""
        assert parse_retry_after(value) is None
