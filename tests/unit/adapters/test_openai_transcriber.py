"""The OpenAI-compatible adapter's protocol, against the fake server's documented shapes (no recognition needed)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from voicecoder.adapters.stt.openai_compatible import OpenAITranscriber, provider_name
from voicecoder.adapters.stt.retry_after import parse_reset_duration, retry_delay
from voicecoder.domain.errors import (
    AudioTooLargeError,
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
    ProviderUnavailableError,
)
from voicecoder.domain.model import Audio, TranscriptionHints
from voicecoder.simulators.stt import FakeOpenAIServer, ScriptedRecognizer, openai_error
from voicecoder.testing.voice_clips import voice_clip

KEY = "sk-unit-secret-key"


@pytest.fixture(name="server")
async def _server() -> AsyncIterator[FakeOpenAIServer]:
    recognizer = ScriptedRecognizer("ejecuta las pruebas", language="es", confidence=0.8)
    async with FakeOpenAIServer(recognizer=recognizer, api_key=KEY) as server:
        yield server


@pytest.fixture(name="run_tests")
def _run_tests() -> Audio:
    return voice_clip("03_run_tests.ogg").audio()


class TestOpenAIRequest:
    async def test_multipart_fields(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """The file keeps its bytes and an .ogg name; model, verbose_json, temperature, language and prompt are sent."""
        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            await adapter.transcribe(run_tests, TranscriptionHints(keyterms=("main.py", "pytest"), language="es-ES"))

        form = server.forms[-1]
        assert form == {
            "model": "whisper-1",
            "response_format": "verbose_json",
            "temperature": "0",
            "language": "es",
            "prompt": "main.py, pytest.",
        }
        assert server.requests[-1].headers["Authorization"] == f"Bearer {KEY}"

    async def test_no_key_no_header(self, run_tests: Audio) -> None:
        """A self-hosted server without auth gets no Authorization header at all."""
        async with (
            FakeOpenAIServer(recognizer=ScriptedRecognizer("hello"), api_key=None) as server,
            OpenAITranscriber(base_url=server.api_base) as adapter,
        ):
            await adapter.transcribe(run_tests)

        assert "Authorization" not in server.requests[-1].headers

    async def test_full_endpoint_url_accepted(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """A base URL that already ends in /audio/transcriptions is used as is."""
        async with OpenAITranscriber(base_url=f"{server.api_base}/audio/transcriptions", api_key=KEY) as adapter:
            result = await adapter.transcribe(run_tests)

        assert result.text == "ejecuta las pruebas"


class TestOpenAIResponse:
    async def test_verbose_json_fields(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """Language names become codes; confidence comes from the segments' log-probabilities; duration is reported."""
        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            result = await adapter.transcribe(run_tests)

        assert result.language == "es"
        assert result.confidence == pytest.approx(0.8, abs=0.01)
        assert result.duration_s == pytest.approx(2.88, abs=0.05)

    async def test_gpt4o_models_ask_for_json(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """gpt-4o transcription models only answer json: the adapter asks for it and reports no invented confidence."""
        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY, model="gpt-4o-transcribe") as adapter:
            result = await adapter.transcribe(run_tests, TranscriptionHints(language="es"))

        assert server.forms[-1]["response_format"] == "json"
        assert result.confidence is None
        assert result.language == "es"

    async def test_verbose_json_refused_then_json_remembered(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """A server refusing verbose_json is asked again with json once, and json from then on."""
        server.script(400, openai_error("response_format 'verbose_json' is not supported.", param="response_format"))
        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            await adapter.transcribe(run_tests)
            await adapter.transcribe(run_tests)

        first, *later = server.requests
        assert b"verbose_json" in first.body
        assert len(later) == 2
        assert [f["response_format"] for f in server.forms] == ["json", "json"]

    async def test_silent_segments_dropped(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """Segments Whisper marks as silence (no_speech_prob > 0.6, avg_logprob < -1) are no speech, not "you"."""
        segment = {"start": 0, "end": 2, "text": " you", "avg_logprob": -1.4, "no_speech_prob": 0.9}
        server.script(200, {"text": "you", "language": "english", "duration": 2.0, "segments": [segment]})

        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            with pytest.raises(NoSpeechError):
                await adapter.transcribe(run_tests)


class TestOpenAIErrors:
    async def test_wrong_key_never_logged(
        self, server: FakeOpenAIServer, run_tests: Audio, caplog: pytest.LogCaptureFixture
    ) -> None:
        """401 is ProviderAuthError; the key appears neither in the error nor in the logs."""
        caplog.set_level(logging.DEBUG)
        async with OpenAITranscriber(base_url=server.api_base, api_key="sk-wrong-secret") as adapter:
            with pytest.raises(ProviderAuthError) as info:
                await adapter.transcribe(run_tests)

        assert "sk-wrong-secret" not in str(info.value)
        assert "sk-wrong-secret" not in caplog.text

    async def test_insufficient_quota_is_rejected(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """429 insufficient_quota cannot be retried away: ProviderRejectedError naming the fix."""
        server.script(
            429, openai_error("You exceeded your current quota.", kind="insufficient_quota", code="insufficient_quota")
        )

        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            with pytest.raises(ProviderRejectedError, match="Top up"):
                await adapter.transcribe(run_tests)

    async def test_unknown_endpoint_names_the_url(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """A 404 without a model error means a wrong base URL: the message names OPENAI_STT_BASE_URL."""
        async with OpenAITranscriber(base_url=f"{server.base_url}/nope", api_key=KEY) as adapter:
            with pytest.raises(ProviderRejectedError, match="OPENAI_STT_BASE_URL"):
                await adapter.transcribe(run_tests)

    async def test_unknown_model_names_the_setting(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """404 model_not_found names OPENAI_STT_MODEL."""
        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY, model="whisper-9") as adapter:
            with pytest.raises(ProviderRejectedError, match="OPENAI_STT_MODEL"):
                await adapter.transcribe(run_tests)

    async def test_too_large_at_the_service(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """413 is AudioTooLargeError with the service's 25 MiB limit."""
        server.script(413, openai_error("Maximum content size limit (26214400) exceeded", kind="server_error"))

        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            with pytest.raises(AudioTooLargeError) as info:
                await adapter.transcribe(run_tests)

        assert info.value.limit_bytes == 26_214_400

    async def test_server_error_retry_after(self, server: FakeOpenAIServer, run_tests: Audio) -> None:
        """503 is ProviderUnavailableError carrying Retry-After."""
        server.script(503, openai_error("overloaded", kind="server_error"), {"Retry-After": "12"})

        async with OpenAITranscriber(base_url=server.api_base, api_key=KEY) as adapter:
            with pytest.raises(ProviderUnavailableError) as info:
                await adapter.transcribe(run_tests)

        assert info.value.retry_after == 12


class TestHelpers:
    def test_provider_names(self) -> None:
        """Messages name OpenAI and Groq by their hosts, anything else by its host."""
        assert provider_name("https://api.openai.com/v1") == "OpenAI"
        assert provider_name("https://api.groq.com/openai/v1") == "Groq"
        assert provider_name("http://gpu-box:8000/v1") == "OpenAI-compatible (gpu-box)"

    @pytest.mark.parametrize(("value", "seconds"), [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m", 3720.0)])
    def test_reset_durations(self, value: str, seconds: float) -> None:
        """OpenAI's x-ratelimit-reset-* durations are read as seconds."""
        assert parse_reset_duration(value) == pytest.approx(seconds)

    def test_retry_after_preferred(self) -> None:
        """Retry-After wins; otherwise the longer reset header; otherwise None."""
        assert retry_delay({"Retry-After": "3", "x-ratelimit-reset-requests": "9s"}) == 3
        assert retry_delay({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "9s"}) == 9
        assert retry_delay({"x-ratelimit-reset-requests": "soon"}) is None
