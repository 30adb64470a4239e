from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

import anyio
import assemblyai as aai
import pytest

from voicecoder.adapters.stt.assemblyai import AssemblyAITranscriber
from voicecoder.domain.errors import (
    AudioTooLargeError,
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, TranscriptionHints
from voicecoder.simulators.stt import ASSEMBLYAI_NOT_AUDIO, FakeAssemblyAIServer, ScriptedRecognizer
from voicecoder.testing.voice_clips import voice_clip

HEARD = ScriptedRecognizer("run the tests and fix any failures", confidence=0.96)

KEY = "aai-secret-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(name="server")
async def _server() -> AsyncIterator[FakeAssemblyAIServer]:
    async with FakeAssemblyAIServer(recognizer=HEARD, api_key=KEY, processing_polls=2) as server:
        yield server


@pytest.fixture(name="make")
def _make(server: FakeAssemblyAIServer) -> Callable[..., AssemblyAITranscriber]:
    made: list[AssemblyAITranscriber] = []

    def make(**kwargs: object) -> AssemblyAITranscriber:
        options: dict[str, object] = {
            "api_key": KEY,
            "base_url": server.base_url,
            "polling_interval_s": 0.02,
            "timeout_s": 5.0,
        }
        options.update(kwargs)
        adapter = AssemblyAITranscriber(**options)  # type: ignore[arg-type]
        made.append(adapter)
        return adapter

    return make


@pytest.fixture(name="adapter")
def _adapter(make: Callable[..., AssemblyAITranscriber]) -> AssemblyAITranscriber:
    return make()


@pytest.fixture(name="run_tests")
def _run_tests() -> Audio:
    return voice_clip("03_run_tests.ogg").audio()


def transcript_request(server: FakeAssemblyAIServer) -> dict[str, object]:
    [request] = [r for r in server.requests if r.method == "POST" and r.path == "/v2/transcript"]
    payload = json.loads(request.body)
    assert isinstance(payload, dict)
    return payload


class TestAssemblyAIFlow:
    async def test_upload_create_poll(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """Raw bytes are uploaded with the bare key, a job is created, then polled until completed."""
        await adapter.transcribe(run_tests)

        calls = [(r.method, r.path.rsplit("/", 1)[0] if r.method == "GET" else r.path) for r in server.requests]
        assert calls == [
            ("POST", "/v2/upload"),
            ("POST", "/v2/transcript"),
            ("GET", "/v2/transcript"),
            ("GET", "/v2/transcript"),
            ("GET", "/v2/transcript"),
        ]
        upload = server.requests[0]
        assert upload.headers["authorization"] == KEY
        assert upload.body == run_tests.data

    async def test_job_request_without_hints(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """Without hints: the default speech models and language detection; no keyterms."""
        await adapter.transcribe(run_tests)

        payload = transcript_request(server)
        assert payload["speech_models"] == ["universal-3-5-pro", "universal-2"]
        assert payload["language_detection"] is True
        assert "language_code" not in payload
        assert "keyterms_prompt" not in payload
        assert str(payload["audio_url"]).startswith(server.base_url)

    async def test_job_request_with_hints(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """A hinted language replaces detection; distinct keyterms go to keyterms_prompt."""
        await adapter.transcribe(run_tests, TranscriptionHints(keyterms=("pytest", "ruff", "pytest"), language="en"))

        payload = transcript_request(server)
        assert payload["language_code"] == "en"
        assert "language_detection" not in payload
        assert payload["keyterms_prompt"] == ["pytest", "ruff"]

    async def test_transcript_fields(self, adapter: AssemblyAITranscriber, run_tests: Audio) -> None:
        """Text, language, confidence, duration and words (ms → s) come from the completed job."""
        result = await adapter.transcribe(run_tests)

        assert result.text == "run the tests and fix any failures"
        assert result.language == "en"
        assert result.confidence == 0.96
        assert result.duration_s == 3.0
        assert [w.text for w in result.words] == result.text.split()
        assert 2.5 < result.words[-1].end_s < 3.0

    async def test_oversize_never_uploaded(
        self, server: FakeAssemblyAIServer, make: Callable[..., AssemblyAITranscriber], run_tests: Audio
    ) -> None:
        """Input over the size limit is refused before the upload."""
        from voicecoder.adapters.stt.audio_intake import AudioLimits  # noqa: PLC0415

        adapter = make(limits=AudioLimits(max_bytes=1000))

        with pytest.raises(AudioTooLargeError):
            await adapter.transcribe(run_tests)

        assert server.requests == []

    async def test_global_settings_untouched(
        self, server: FakeAssemblyAIServer, make: Callable[..., AssemblyAITranscriber], run_tests: Audio
    ) -> None:
        """Two adapters with different keys work side by side; the SDK's global settings never change."""
        before = aai.settings.copy()
        async with FakeAssemblyAIServer(recognizer=HEARD, api_key="aai-other") as other:
            first = make()
            second = make(api_key="aai-other", base_url=other.base_url)
            async with anyio.create_task_group() as group:
                group.start_soon(first.transcribe, run_tests)
                group.start_soon(second.transcribe, run_tests)

            assert other.requests[0].headers["authorization"] == "aai-other"
        assert server.requests[0].headers["authorization"] == KEY
        assert aai.settings == before

    async def test_each_call_has_its_own_client(self, adapter: AssemblyAITranscriber, run_tests: Audio) -> None:
        """Calls share no SDK client: one per call, closed with it, so aclose() has nothing left to close."""
        first = await adapter.transcribe(run_tests)
        await adapter.aclose()

        second = await adapter.transcribe(run_tests)

        assert first == second


class TestAssemblyAIJobErrors:
    async def test_not_audio(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """A job failing with "does not appear to contain audio" is UnsupportedAudioError."""
        server.fail_next_job(ASSEMBLYAI_NOT_AUDIO)

        with pytest.raises(UnsupportedAudioError):
            await adapter.transcribe(run_tests)

    async def test_no_spoken_audio(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """A job failing with "no spoken audio" is NoSpeechError."""
        server.fail_next_job("Audio duration is too short or there is no spoken audio in the file.")

        with pytest.raises(NoSpeechError):
            await adapter.transcribe(run_tests)

    async def test_other_job_error(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """Any other job failure is ProviderUnavailableError with the reason."""
        server.fail_next_job("Internal server error during transcription.")

        with pytest.raises(ProviderUnavailableError, match="Internal server error"):
            await adapter.transcribe(run_tests)

    async def test_silence(self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber) -> None:
        """A completed job with empty text is NoSpeechError."""
        server.recognizer = ScriptedRecognizer("")

        with pytest.raises(NoSpeechError):
            await adapter.transcribe(voice_clip("silence_2s.ogg").audio())


class TestAssemblyAIHttpErrors:
    async def test_wrong_key(
        self,
        server: FakeAssemblyAIServer,
        make: Callable[..., AssemblyAITranscriber],
        run_tests: Audio,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A rejected key is ProviderAuthError; the key is in no error text, repr or log line."""
        wrong = "aai-wrong-fedcba9876543210"
        caplog.set_level(logging.DEBUG)
        adapter = make(api_key=wrong)

        with pytest.raises(ProviderAuthError) as info:
            await adapter.transcribe(run_tests)

        texts = [str(info.value), str(info.value.__cause__), repr(adapter), caplog.text]
        assert all(wrong not in text for text in texts)
        assert [r.path for r in server.requests] == ["/v2/upload"]

    async def test_rate_limited_upload(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """429 on upload is ProviderUnavailableError with Retry-After."""
        server.script(429, {"error": "Too many requests"}, {"Retry-After": "7"}, path="/v2/upload")

        with pytest.raises(ProviderUnavailableError) as info:
            await adapter.transcribe(run_tests)

        assert info.value.retry_after == 7.0

    async def test_rate_limited_while_polling(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """429 while polling is ProviderUnavailableError too."""
        server.script(429, {"error": "Too many requests"}, {"Retry-After": "3"}, path="/v2/transcript/")

        with pytest.raises(ProviderUnavailableError) as info:
            await adapter.transcribe(run_tests)

        assert info.value.retry_after == 3.0

    async def test_negative_balance(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio
    ) -> None:
        """The negative-balance refusal is ProviderRejectedError about credit (retrying cannot help)."""
        server.script(400, {"error": "Your current account balance is negative. Please top up."}, path="/v2/transcript")

        with pytest.raises(ProviderRejectedError, match="credit"):
            await adapter.transcribe(run_tests)

    async def test_keyterms_with_prompt_refused(self, server: FakeAssemblyAIServer, run_tests: Audio) -> None:
        """Another 400 is ProviderRejectedError carrying the service's reason, never "try again"."""
        server.script(400, {"error": "keyterms_prompt cannot be used together with prompt."}, path="/v2/transcript")
        async with AssemblyAITranscriber(
            api_key=KEY, base_url=server.base_url, polling_interval_s=0.02, timeout_s=5
        ) as adapter:
            with pytest.raises(ProviderRejectedError) as info:
                await adapter.transcribe(run_tests)

        assert "keyterms_prompt cannot be used together with prompt" in str(info.value)
        assert "try again" not in str(info.value).lower()

    @pytest.mark.parametrize("status", [500, 503])
    async def test_server_error(
        self, server: FakeAssemblyAIServer, adapter: AssemblyAITranscriber, run_tests: Audio, status: int
    ) -> None:
        """5xx while creating the job is ProviderUnavailableError."""
        server.script(status, {"error": "Service unavailable"}, path="/v2/transcript")

        with pytest.raises(ProviderUnavailableError):
            await adapter.transcribe(run_tests)

    async def test_poll_timeout(
        self, server: FakeAssemblyAIServer, make: Callable[..., AssemblyAITranscriber], run_tests: Audio
    ) -> None:
        """A job still processing after timeout_s is ProviderTimeoutError."""
        server.processing_polls = 10_000
        adapter = make(timeout_s=0.3)

        with pytest.raises(ProviderTimeoutError):
            await adapter.transcribe(run_tests)

    async def test_http_timeout(
        self, server: FakeAssemblyAIServer, make: Callable[..., AssemblyAITranscriber], run_tests: Audio
    ) -> None:
        """An upload answered later than timeout_s is ProviderTimeoutError."""
        server.script(200, {"upload_url": "x"}, path="/v2/upload", delay_s=2.0)
        adapter = make(timeout_s=0.3)

        with pytest.raises(ProviderTimeoutError):
            await adapter.transcribe(run_tests)

    async def test_connection_refused(self, make: Callable[..., AssemblyAITranscriber], run_tests: Audio) -> None:
        """A closed port is ProviderUnavailableError."""
        closed = FakeAssemblyAIServer(recognizer=HEARD, api_key=KEY)
        url = await closed.start()
        await closed.close()
        adapter = make(base_url=url)

        with pytest.raises(ProviderUnavailableError):
            await adapter.transcribe(run_tests)
