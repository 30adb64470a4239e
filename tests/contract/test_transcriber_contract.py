"""
`TranscriberContract` on every shipped provider.

The cloud adapters run against their loopback fake servers, which hear with the session's embedded engine
(`EngineRecognizer`): their accuracy cases measure real recognition of what the adapter sent, never a lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import ClassVar

import aiohttp
import pytest

from tests.whisper_replay import ReplayingWhisper
from voicecoder.adapters.stt.assemblyai import AssemblyAITranscriber
from voicecoder.adapters.stt.deepgram import DeepgramTranscriber
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber
from voicecoder.adapters.stt.openai_compatible import OpenAITranscriber
from voicecoder.domain.model import TranscriptionHints
from voicecoder.domain.ports import Transcriber
from voicecoder.simulators.stt import (
    EngineRecognizer,
    FakeAssemblyAIServer,
    FakeDeepgramServer,
    FakeOpenAIServer,
    openai_error,
)
from voicecoder.testing import TranscriberContract
from voicecoder.testing.fakes import FakeTranscriber
from voicecoder.testing.voice_clips import voice_clips

# --- the in-memory fake ---------------------------------------------------------------------


class TestFakeTranscriber(TranscriberContract):
    cannot_simulate: ClassVar[dict[str, str]] = {
        "accuracy": "a table-driven test double: it recognises nothing, it looks clips up",
        "rejected_credentials": "in memory: no credentials",
        "outage": "in memory: no service that could be down",
        "rate_limit": "in memory: no service that could rate-limit",
        "slow_backend": "in memory: no backend that could be slow",
        "stalled_backend": "in memory: a call never waits for anything",
        "refused_request": "in memory: no service that could refuse",
        "malformed_response": "in memory: no wire format",
    }

    @pytest.fixture(params=["asyncio", "trio"])
    def anyio_backend(self, request: pytest.FixtureRequest) -> str:
        """The fake is pure anyio: both event loops."""
        return str(request.param)

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
        """Calls that passed the intake checks."""
        return lambda: len(fake.calls)

    @pytest.fixture
    def received_hints(self, fake: FakeTranscriber) -> Callable[[], Sequence[str]]:
        """The keyterms of the latest call."""

        def latest() -> Sequence[str]:
            hints = fake.calls[-1][1] if fake.calls else None
            return hints.keyterms if hints else ()

        return latest


# --- the embedded default -------------------------------------------------------------------


@pytest.mark.slow
class TestLocalWhisperTranscriber(TranscriberContract):
    cannot_simulate: ClassVar[dict[str, str]] = {
        "rejected_credentials": "the embedded engine has no credentials",
        "rate_limit": "the embedded engine has no service that rate-limits",
        "slow_backend": "no network: the engine runs until it is done or cancelled (stalled_backend)",
        "refused_request": "no service that refuses requests: a wrong model is refused at start (ConfigurationError)",
        "malformed_response": "no wire format between the adapter and the engine",
    }

    @pytest.fixture(name="engine")
    def _engine(self, replaying_whisper: Callable[..., ReplayingWhisper]) -> ReplayingWhisper:
        """
        faster-whisper base int8 on the shipped clips, through the real adapter.

        A clip an earlier case already decoded with the same language and prompt (the short clips again in
        `test_result_fields`, `test_metadata_follows_the_audio` and the calls alone of the concurrency case) is
        answered with that decode once per case (`ReplayingWhisper`); the calls at once are decoded again.
        """
        return replaying_whisper()

    @pytest.fixture
    def transcriber(self, engine: ReplayingWhisper) -> Transcriber:
        """faster-whisper base int8 on the shipped clips."""
        return engine

    @pytest.fixture
    def backend_calls(self, engine: ReplayingWhisper) -> Callable[[], int]:
        """Engine runs (a replayed decode counts): decoding never starts for refused input."""
        return lambda: engine.engine_calls

    @pytest.fixture
    def received_hints(self, engine: ReplayingWhisper) -> Callable[[], Sequence[str]]:
        """The initial prompt (and hotwords) the engine was given last."""
        return lambda: engine.last_vocabulary

    @pytest.fixture
    def stalled_transcriber(self, engine: ReplayingWhisper) -> Transcriber:
        """The engine decoding the 40 s note, nothing replayed: it is busy for seconds, long enough to be cancelled."""
        engine.replay = False
        return engine

    @pytest.fixture
    def unavailable_transcriber(self, tmp_path: Path) -> Transcriber:
        """The model directory holds no weights: the engine cannot load."""
        return LocalWhisperTranscriber(model=str(tmp_path), cache_dir=tmp_path / "cache")


# --- cloud adapters against their loopback fakes --------------------------------------------


class TestDeepgramTranscriber(TranscriberContract):
    @pytest.fixture(name="server")
    async def _server(self, engine_recognizer: EngineRecognizer) -> AsyncIterator[FakeDeepgramServer]:
        async with FakeDeepgramServer(recognizer=engine_recognizer) as server:
            yield server

    @pytest.fixture(name="make")
    async def _make(self, server: FakeDeepgramServer) -> AsyncIterator[Callable[..., DeepgramTranscriber]]:
        made: list[DeepgramTranscriber] = []

        def make(**options: object) -> DeepgramTranscriber:
            settings: dict[str, object] = {"api_key": server.api_key, "base_url": server.base_url}
            adapter = DeepgramTranscriber(**{**settings, **options})  # type: ignore[arg-type]
            made.append(adapter)
            return adapter

        yield make
        for adapter in made:
            await adapter.aclose()

    @pytest.fixture
    def transcriber(self, make: Callable[..., DeepgramTranscriber]) -> Transcriber:
        """Deepgram's REST API on a loopback fake that hears with the embedded engine."""
        return make()

    @pytest.fixture
    def backend_calls(self, server: FakeDeepgramServer) -> Callable[[], int]:
        """Requests to /v1/listen."""
        return server.audio_requests

    @pytest.fixture
    def received_hints(self, server: FakeDeepgramServer) -> Callable[[], Sequence[str]]:
        """The keyterm parameters of the latest request."""
        return server.received_vocabulary

    @pytest.fixture
    def unauthorized_transcriber(self, make: Callable[..., DeepgramTranscriber]) -> Transcriber:
        """A wrong key: the fake answers 401 INVALID_AUTH."""
        return make(api_key="dg-wrong")

    @pytest.fixture
    def unavailable_transcriber(self, server: FakeDeepgramServer, transcriber: Transcriber) -> Transcriber:
        """The fake answers 503."""
        server.script(503, {"err_code": "SERVICE_UNAVAILABLE", "err_msg": "Service unavailable."})
        return transcriber

    @pytest.fixture
    def rate_limited_transcriber(self, server: FakeDeepgramServer, transcriber: Transcriber) -> Transcriber:
        """The fake answers 429 with Retry-After: 7."""
        server.script(429, {"err_code": "TOO_MANY_REQUESTS", "err_msg": "Too many requests."}, {"Retry-After": "7"})
        return transcriber

    @pytest.fixture
    def slow_transcriber(self, server: FakeDeepgramServer, make: Callable[..., DeepgramTranscriber]) -> Transcriber:
        """The fake waits 2 s; the adapter gives up after 0.2 s."""
        server.delay_s = 2.0
        return make(timeout_s=0.2)

    @pytest.fixture
    def stalled_transcriber(self, server: FakeDeepgramServer, make: Callable[..., DeepgramTranscriber]) -> Transcriber:
        """The fake holds the first request; the adapter would wait ten minutes."""
        server.stall_next("/v1/listen")
        return make(timeout_s=600)

    @pytest.fixture
    def refusing_transcriber(self, server: FakeDeepgramServer, transcriber: Transcriber) -> Transcriber:
        """The fake refuses the model as Deepgram does for an unknown one."""
        server.script(400, {"err_code": "Bad Request", "err_msg": "No such model/version/tier combination found."})
        return transcriber

    @pytest.fixture
    def malformed_backend(self, server: FakeDeepgramServer, transcriber: Transcriber) -> Callable[[bytes], Transcriber]:
        """The fake answers 200 with the given bytes."""

        def make(body: bytes) -> Transcriber:
            server.script(200, body, path="/v1/listen")
            return transcriber

        return make


class TestAssemblyAITranscriber(TranscriberContract):
    cannot_simulate: ClassVar[dict[str, str]] = {
        "stalled_backend": (
            "the official SDK blocks a worker thread in an HTTP call that cannot be interrupted: a cancelled call "
            "returns at once, but its worker ends only when that request does (ADR 0017)"
        ),
    }

    @pytest.fixture(name="server")
    async def _server(self, engine_recognizer: EngineRecognizer) -> AsyncIterator[FakeAssemblyAIServer]:
        async with FakeAssemblyAIServer(recognizer=engine_recognizer) as server:
            yield server

    @pytest.fixture(name="make")
    async def _make(self, server: FakeAssemblyAIServer) -> AsyncIterator[Callable[..., AssemblyAITranscriber]]:
        made: list[AssemblyAITranscriber] = []

        def make(**kwargs: object) -> AssemblyAITranscriber:
            options: dict[str, object] = {
                "api_key": server.api_key,
                "base_url": server.base_url,
                "polling_interval_s": 0.02,
                "timeout_s": 30.0,
            }
            options.update(kwargs)
            adapter = AssemblyAITranscriber(**options)  # type: ignore[arg-type]
            made.append(adapter)
            return adapter

        yield make
        for adapter in made:
            await adapter.aclose()

    @pytest.fixture
    def transcriber(self, make: Callable[..., AssemblyAITranscriber]) -> Transcriber:
        """The official SDK against a loopback fake of the async API (upload, transcript, poll)."""
        return make()

    @pytest.fixture
    def backend_calls(self, server: FakeAssemblyAIServer) -> Callable[[], int]:
        """Uploads the fake server received."""
        return server.audio_requests

    @pytest.fixture
    def received_hints(self, server: FakeAssemblyAIServer) -> Callable[[], Sequence[str]]:
        """The keyterms_prompt of the latest job."""
        return server.received_vocabulary

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

    @pytest.fixture
    def refusing_transcriber(self, server: FakeAssemblyAIServer, transcriber: Transcriber) -> Transcriber:
        """The transcript request is refused: an unknown speech model."""
        server.script(400, {"error": "Invalid speech_models: 'nope' is not a valid model."}, path="/v2/transcript")
        return transcriber

    @pytest.fixture
    def malformed_backend(
        self, server: FakeAssemblyAIServer, transcriber: Transcriber
    ) -> Callable[[bytes], Transcriber]:
        """The job poll answers 200 with the given bytes."""

        def make(body: bytes) -> Transcriber:
            server.script(200, body, path="/v2/transcript/")
            return transcriber

        return make


class OpenAICompatibleContract(TranscriberContract):
    """The contract on `OpenAITranscriber` against `FakeOpenAIServer`; subclasses pick the server's dialect."""

    api_key: ClassVar[str | None] = "sk-test"
    language_names: ClassVar[bool] = True

    @pytest.fixture(name="server")
    async def _server(self, engine_recognizer: EngineRecognizer) -> AsyncIterator[FakeOpenAIServer]:
        async with FakeOpenAIServer(
            recognizer=engine_recognizer, api_key=self.api_key, language_names=self.language_names
        ) as server:
            yield server

    @pytest.fixture(name="make")
    async def _make(self, server: FakeOpenAIServer) -> AsyncIterator[Callable[..., OpenAITranscriber]]:
        made: list[OpenAITranscriber] = []

        def make(**options: object) -> OpenAITranscriber:
            settings: dict[str, object] = {"base_url": server.api_base, "api_key": self.api_key}
            adapter = OpenAITranscriber(**{**settings, **options})  # type: ignore[arg-type]
            made.append(adapter)
            return adapter

        yield make
        for adapter in made:
            await adapter.aclose()

    @pytest.fixture
    def transcriber(self, make: Callable[..., OpenAITranscriber]) -> Transcriber:
        """whisper-1 over the multipart API on a loopback fake that hears with the embedded engine."""
        return make()

    @pytest.fixture
    def backend_calls(self, server: FakeOpenAIServer) -> Callable[[], int]:
        """Requests to /v1/audio/transcriptions."""
        return server.audio_requests

    @pytest.fixture
    def received_hints(self, server: FakeOpenAIServer) -> Callable[[], Sequence[str]]:
        """The prompt field of the latest request."""
        return server.received_vocabulary

    @pytest.fixture
    def unavailable_transcriber(self, server: FakeOpenAIServer, transcriber: Transcriber) -> Transcriber:
        """The fake answers 503."""
        server.script(503, openai_error("The server is overloaded or not ready yet.", kind="server_error"))
        return transcriber

    @pytest.fixture
    def rate_limited_transcriber(self, server: FakeOpenAIServer, transcriber: Transcriber) -> Transcriber:
        """The fake answers 429 with OpenAI's reset header only (no Retry-After)."""
        server.script(
            429,
            openai_error("Rate limit reached for requests.", kind="requests", code="rate_limit_exceeded"),
            {"x-ratelimit-reset-requests": "7s"},
        )
        return transcriber

    @pytest.fixture
    def slow_transcriber(self, server: FakeOpenAIServer, make: Callable[..., OpenAITranscriber]) -> Transcriber:
        """The fake waits 2 s; the adapter gives up after 0.2 s."""
        server.delay_s = 2.0
        return make(timeout_s=0.2)

    @pytest.fixture
    def stalled_transcriber(self, server: FakeOpenAIServer, make: Callable[..., OpenAITranscriber]) -> Transcriber:
        """The fake holds the first request; the adapter would wait ten minutes."""
        server.stall_next("/v1/audio/transcriptions")
        return make(timeout_s=600)

    @pytest.fixture
    def refusing_transcriber(self, make: Callable[..., OpenAITranscriber]) -> Transcriber:
        """A model the server does not have: 404 model_not_found."""
        return make(model="whisper-9000")

    @pytest.fixture
    def malformed_backend(self, server: FakeOpenAIServer, transcriber: Transcriber) -> Callable[[bytes], Transcriber]:
        """The fake answers 200 with the given bytes."""

        def make(body: bytes) -> Transcriber:
            server.script(200, body, path="/v1/audio/transcriptions")
            return transcriber

        return make


class TestOpenAITranscriber(OpenAICompatibleContract):
    """OpenAI's dialect: a Bearer key, language names in verbose_json."""

    @pytest.fixture
    def unauthorized_transcriber(self, make: Callable[..., OpenAITranscriber]) -> Transcriber:
        """A wrong key: 401 invalid_api_key."""
        return make(api_key="sk-wrong")


class TestOpenAITranscriberSelfHosted(OpenAICompatibleContract):
    """A self-hosted Whisper server: no auth at all, language codes in verbose_json."""

    api_key = None
    language_names = False
    cannot_simulate: ClassVar[dict[str, str]] = {
        "rejected_credentials": "a self-hosted server without auth accepts every request",
    }


# --- the fake servers on inputs the adapters never send -----------------------------------------


class TestFakeServersHearWhatWasSent:
    async def test_recognition_follows_the_vocabulary(self, engine_recognizer: EngineRecognizer) -> None:
        """The same clip with and without the hint is heard differently: the fakes really recognise."""
        clip = voice_clips()["hint_quillmesh.ogg"]

        plain = await engine_recognizer.recognize(clip.read(), language="en", prompt=None)
        prompt = "parse_config, README.md, quillmesh, main.py, pytest."  # what the contract's rare-word case sends
        hinted = await engine_recognizer.recognize(clip.read(), language="en", prompt=prompt)

        assert "quillmesh" not in plain.text.lower()
        assert "quillmesh" in hinted.text.lower()

    async def test_memo_answers_repeats_without_decoding(self, engine_recognizer: EngineRecognizer) -> None:
        """A repeated request is answered from the memo; a different language is decoded anew."""
        data = voice_clips()["03_run_tests.ogg"].read()
        first = await engine_recognizer.recognize(data, language="en", prompt=None)
        decodes = engine_recognizer.decodes

        again = await engine_recognizer.recognize(data, language="en", prompt=None)

        assert again == first
        assert engine_recognizer.decodes == decodes

    async def test_hints_reach_the_engine_through_deepgram(self, engine_recognizer: EngineRecognizer) -> None:
        """Keyterms sent to the Deepgram fake are what the engine is prompted with."""
        clip = voice_clips()["hint_quillmesh.ogg"]
        async with (
            FakeDeepgramServer(recognizer=engine_recognizer) as server,
            DeepgramTranscriber(api_key=str(server.api_key), base_url=server.base_url) as adapter,
        ):
            result = await adapter.transcribe(clip.audio(), TranscriptionHints(keyterms=("quillmesh",), language="en"))

        assert server.received_vocabulary() == ("quillmesh",)
        assert "quillmesh" in result.text.lower()


class TestFakeDeepgramServer:
    async def test_non_audio_body_is_corrupt(self, engine_recognizer: EngineRecognizer) -> None:
        """A body that is no known container gets Deepgram's 400 "corrupt or unsupported data"."""
        async with (
            FakeDeepgramServer(recognizer=engine_recognizer) as server,
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

    async def test_bearer_is_not_token(self, engine_recognizer: EngineRecognizer) -> None:
        """Only `Token <key>` authenticates; `Bearer <key>` is 401 INVALID_AUTH."""
        async with (
            FakeDeepgramServer(recognizer=engine_recognizer) as server,
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
    async def test_non_audio_upload_fails_the_job(self, engine_recognizer: EngineRecognizer) -> None:
        """A text upload is accepted, and the job then ends with status error (as AssemblyAI does)."""
        async with (
            FakeAssemblyAIServer(recognizer=engine_recognizer, processing_polls=0) as server,
            aiohttp.ClientSession(headers={"authorization": str(server.api_key)}) as session,
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

    async def test_unknown_upload_url(self, engine_recognizer: EngineRecognizer) -> None:
        """A transcript for an audio_url that was never uploaded is refused with an error body."""
        async with (
            FakeAssemblyAIServer(recognizer=engine_recognizer) as server,
            aiohttp.ClientSession(headers={"authorization": str(server.api_key)}) as session,
            session.post(
                f"{server.base_url}/v2/transcript", json={"audio_url": f"{server.base_url}/cdn/upload/nope"}
            ) as response,
        ):
            body = await response.json()

        assert response.status == 400
        assert "error" in body
