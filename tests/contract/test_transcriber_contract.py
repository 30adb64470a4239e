from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from voicecoder.adapters.assemblyai_transcriber import AssemblyAITranscriber
from voicecoder.adapters.deepgram_transcriber import DeepgramTranscriber
from voicecoder.adapters.local_whisper_transcriber import LocalWhisperTranscriber
from voicecoder.domain.errors import AudioTooLargeError, NoSpeechError
from voicecoder.domain.model import Audio, Transcript, TranscriptionHints
from voicecoder.domain.ports import Transcriber
from voicecoder.testing.contracts.transcriber import TranscriberContract, clip_texts, voice_clips
from voicecoder.testing.fake_stt_servers import FakeAssemblyAIServer, FakeDeepgramServer
from voicecoder.testing.fakes import FakeTranscriber

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "voice"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- the in-memory fake ---------------------------------------------------------------------


class TestFakeTranscriber(TranscriberContract):
    @pytest.fixture(name="fake")
    def _fake(self) -> FakeTranscriber:
        fake = FakeTranscriber()
        for clip in voice_clips().values():
            if clip.kind == "speech":
                fake.learn(clip.read(), clip.text)
        return fake

    @pytest.fixture
    def transcriber(self, fake: FakeTranscriber) -> Transcriber:
        """The table-driven fake the domain tests use."""
        return fake

    @pytest.fixture
    def backend_calls(self, fake: FakeTranscriber) -> Callable[[], int]:
        """Calls that passed the size check."""
        return lambda: len(fake.calls)


# --- the embedded default -------------------------------------------------------------------


@pytest.fixture(scope="session")
def whisper_base(tmp_path_factory: pytest.TempPathFactory) -> LocalWhisperTranscriber:
    """One faster-whisper base model for the whole session (joined into a temporary cache)."""
    pytest.importorskip("faster_whisper", reason="faster-whisper (the local-stt extra) is not installed")
    transcriber = LocalWhisperTranscriber(model="base", cache_dir=tmp_path_factory.mktemp("whisper-cache"))
    transcriber.load()
    return transcriber


@pytest.mark.slow
class TestLocalWhisperTranscriber(TranscriberContract):
    @pytest.fixture
    def transcriber(self, whisper_base: LocalWhisperTranscriber) -> Transcriber:
        """faster-whisper base int8 on the shipped clips."""
        return whisper_base

    @pytest.fixture
    def backend_calls(self, whisper_base: LocalWhisperTranscriber) -> Callable[[], int]:
        """Engine runs: decoding never starts for refused input."""
        return lambda: whisper_base.engine_calls

    @pytest.fixture
    def unavailable_transcriber(self, tmp_path: Path) -> Transcriber:
        """The model directory holds no weights: the engine cannot load."""
        return LocalWhisperTranscriber(model=str(tmp_path), cache_dir=tmp_path / "cache")

    @pytest.mark.parametrize("name", ["de_create_file.ogg", "es_run_tests.ogg", "fr_check_workspace.ogg"])
    async def test_other_languages_do_not_crash(self, whisper_base: LocalWhisperTranscriber, name: str) -> None:
        """The espeak German/Spanish/French clips give a transcript or NoSpeechError, never a crash."""
        meta = {c["file"]: c for c in json.loads((FIXTURES / "transcripts.json").read_text())["clips"]}
        audio = Audio((FIXTURES / name).read_bytes())

        try:
            result = await whisper_base.transcribe(audio, TranscriptionHints(language=meta[name]["language"]))
        except NoSpeechError:
            return

        assert isinstance(result, Transcript)
        assert result.language == meta[name]["language"]


# --- cloud adapters against their loopback fakes --------------------------------------------


class TestDeepgramTranscriber(TranscriberContract):
    @pytest.fixture(name="server")
    async def _server(self) -> AsyncIterator[FakeDeepgramServer]:
        async with FakeDeepgramServer(transcripts=clip_texts()) as server:
            yield server

    @pytest.fixture
    async def transcriber(self, server: FakeDeepgramServer) -> AsyncIterator[Transcriber]:
        """Deepgram's REST API on a loopback fake that knows the clips by sha256."""
        async with DeepgramTranscriber(api_key=server.api_key, base_url=server.base_url) as adapter:
            yield adapter

    @pytest.fixture
    def backend_calls(self, server: FakeDeepgramServer) -> Callable[[], int]:
        """Requests the fake server received."""
        return lambda: len(server.requests)

    @pytest.fixture
    async def unauthorized_transcriber(self, server: FakeDeepgramServer) -> AsyncIterator[Transcriber]:
        """A wrong key: the fake answers 401 INVALID_AUTH."""
        async with DeepgramTranscriber(api_key="dg-wrong", base_url=server.base_url) as adapter:
            yield adapter

    @pytest.fixture
    def unavailable_transcriber(self, server: FakeDeepgramServer, transcriber: Transcriber) -> Transcriber:
        """The fake answers 503."""
        server.script(503, {"err_code": "SERVICE_UNAVAILABLE", "err_msg": "Service unavailable."})
        return transcriber

    @pytest.fixture
    def rate_limited_transcriber(self, server: FakeDeepgramServer, transcriber: Transcriber) -> Transcriber:
        """The fake answers 429 with Retry-After: 7."""
        server.script(
            429,
            {"err_code": "TOO_MANY_REQUESTS", "err_msg": "Too many requests."},
            {"Retry-After": "7"},
        )
        return transcriber

    @pytest.fixture
    async def slow_transcriber(self, server: FakeDeepgramServer) -> AsyncIterator[Transcriber]:
        """The fake waits 2 s; the adapter gives up after 0.2 s."""
        server.delay_s = 2.0
        async with DeepgramTranscriber(api_key=server.api_key, base_url=server.base_url, timeout_s=0.2) as adapter:
            yield adapter


class TestAssemblyAITranscriber(TranscriberContract):
    @pytest.fixture(name="server")
    async def _server(self) -> AsyncIterator[FakeAssemblyAIServer]:
        async with FakeAssemblyAIServer(transcripts=clip_texts()) as server:
            yield server

    @pytest.fixture(name="make")
    def _make(self, server: FakeAssemblyAIServer) -> Iterator[Callable[..., AssemblyAITranscriber]]:
        made: list[AssemblyAITranscriber] = []

        def make(**kwargs: object) -> AssemblyAITranscriber:
            options: dict[str, object] = {
                "api_key": server.api_key,
                "base_url": server.base_url,
                "polling_interval_s": 0.02,
                "timeout_s": 10.0,
            }
            options.update(kwargs)
            adapter = AssemblyAITranscriber(**options)  # type: ignore[arg-type]
            made.append(adapter)
            return adapter

        yield make
        for adapter in made:
            client = adapter._client
            if client is not None:
                client.http_client.close()

    @pytest.fixture
    def transcriber(self, make: Callable[..., AssemblyAITranscriber]) -> Transcriber:
        """The official SDK against a loopback fake of the async API (upload, transcript, poll)."""
        return make()

    @pytest.fixture
    def backend_calls(self, server: FakeAssemblyAIServer) -> Callable[[], int]:
        """Requests the fake server received."""
        return lambda: len(server.requests)

    @pytest.fixture
    def unauthorized_transcriber(self, make: Callable[..., AssemblyAITranscriber]) -> Transcriber:
        """A wrong key: the fake answers 401 on upload."""
        return make(api_key="aai-wrong")

    @pytest.fixture
    def unavailable_transcriber(self, server: FakeAssemblyAIServer, transcriber: Transcriber) -> Transcriber:
        """The upload endpoint answers 503."""
        server.script(503, {"error": "Service temporarily unavailable"}, path="/v2/upload")
        return transcriber

    @pytest.fixture
    def rate_limited_transcriber(self, server: FakeAssemblyAIServer, transcriber: Transcriber) -> Transcriber:
        """The upload endpoint answers 429 with Retry-After: 7."""
        server.script(429, {"error": "Too many requests"}, {"Retry-After": "7"}, path="/v2/upload")
        return transcriber

    @pytest.fixture
    def slow_transcriber(self, server: FakeAssemblyAIServer, make: Callable[..., AssemblyAITranscriber]) -> Transcriber:
        """The job never leaves "processing" within the adapter's 0.3 s budget."""
        server.processing_polls = 10_000
        return make(timeout_s=0.3)


# --- the suite itself can fail ----------------------------------------------------------------


class InventingTranscriber:
    """A broken provider: says "you" for anything and checks the size only after "uploading"."""

    def __init__(self) -> None:
        self.uploads = 0

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        self.uploads += 1
        if audio.size > 20_000_000:
            raise AudioTooLargeError(audio.size, 20_000_000)
        return Transcript(text="you")


class TestTranscriberContractCatchesBrokenProviders:
    """Run contract tests by hand on a broken provider: each must fail."""

    async def test_invented_text_on_silence_fails(self) -> None:
        """A provider that invents text on silence fails the silence test."""
        with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
            await TranscriberContract().test_silence_is_no_speech(InventingTranscriber())

    async def test_accepting_non_audio_fails(self) -> None:
        """A provider that transcribes a text file fails the non-audio test."""
        with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
            await TranscriberContract().test_not_audio_is_unsupported(InventingTranscriber())

    async def test_upload_before_size_check_fails(self) -> None:
        """Refusing oversize input only after uploading it fails the oversize test."""
        broken = InventingTranscriber()

        with pytest.raises(AssertionError):
            await TranscriberContract().test_oversize_refused_before_upload(broken, lambda: broken.uploads)

    async def test_wrong_words_fail_the_wer_bound(self) -> None:
        """Wrong transcripts exceed the WER bound."""
        with pytest.raises(AssertionError):
            await TranscriberContract().test_short_clips_within_wer(InventingTranscriber())


# --- the fake servers on inputs the adapters never send -----------------------------------------


class TestFakeDeepgramServer:
    async def test_non_audio_body_is_corrupt(self) -> None:
        """A body that is no known container gets Deepgram's 400 "corrupt or unsupported data"."""
        async with (
            FakeDeepgramServer() as server,
            aiohttp.ClientSession() as session,
            session.post(
                f"{server.base_url}/v1/listen?model=nova-3",
                data=voice_clips()["not_audio.ogg"].read(),
                headers={"Authorization": f"Token {server.api_key}", "Content-Type": "audio/ogg"},
            ) as response,
        ):
            body = await response.json()

        assert response.status == 400
        assert "corrupt or unsupported data" in body["err_msg"]
        assert body["request_id"]

    async def test_bearer_is_not_token(self) -> None:
        """Only `Token <key>` authenticates; `Bearer <key>` is 401 INVALID_AUTH."""
        async with (
            FakeDeepgramServer() as server,
            aiohttp.ClientSession() as session,
            session.post(
                f"{server.base_url}/v1/listen",
                data=voice_clips()["03_run_tests.ogg"].read(),
                headers={"Authorization": f"Bearer {server.api_key}"},
            ) as response,
        ):
            body = await response.json()

        assert response.status == 401
        assert body["err_code"] == "INVALID_AUTH"


class TestFakeAssemblyAIServer:
    async def test_non_audio_upload_fails_the_job(self) -> None:
        """A text upload is accepted, and the job then ends with status error (as AssemblyAI does)."""
        async with (
            FakeAssemblyAIServer(processing_polls=0) as server,
            aiohttp.ClientSession(headers={"authorization": server.api_key}) as session,
        ):
            async with session.post(f"{server.base_url}/v2/upload", data=b"plain text") as response:
                upload_url = (await response.json())["upload_url"]
            async with session.post(f"{server.base_url}/v2/transcript", json={"audio_url": upload_url}) as response:
                job = await response.json()
            async with session.get(f"{server.base_url}/v2/transcript/{job['id']}") as response:
                done = await response.json()

        assert job["status"] == "queued"
        assert done["status"] == "error"
        assert "does not appear to contain audio" in done["error"]
        assert done["text"] is None

    async def test_unknown_upload_url(self) -> None:
        """A transcript for an audio_url that was never uploaded is refused with an error body."""
        async with (
            FakeAssemblyAIServer() as server,
            aiohttp.ClientSession(headers={"authorization": server.api_key}) as session,
            session.post(
                f"{server.base_url}/v2/transcript", json={"audio_url": f"{server.base_url}/cdn/upload/nope"}
            ) as response,
        ):
            body = await response.json()

        assert response.status == 400
        assert "error" in body
