"""
Loopback fakes of the Deepgram and AssemblyAI HTTP APIs, following their public docs.

They never invent text: a fake "transcribes" by looking up the sha256 of the uploaded bytes in the
table it was built with (e.g. the fixture texts of ``transcripts.json``). Audio it does not know
holds no speech (an empty transcript, as the real services return for silence); bytes that are not
an Ogg/MP3/WAV/M4A container are refused the way each service refuses corrupt audio.

Every request is recorded (``server.requests``), including refused ones, so a test can prove that
nothing was uploaded. Failures are scripted with `script()` (next matching request answers with the
given status, headers and body) and `delay_s` (every answer waits, for timeout tests).

    async with FakeDeepgramServer(transcripts={digest: "run the tests"}) as server:
        adapter = DeepgramTranscriber(api_key=server.api_key, base_url=server.base_url)
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self

import anyio
import attrs
from aiohttp import web
from multidict import CIMultiDict

__all__ = [
    "DEEPGRAM_CORRUPT_AUDIO",
    "DEEPGRAM_INVALID_AUTH",
    "FakeAssemblyAIServer",
    "FakeDeepgramServer",
    "RecordedRequest",
    "ScriptedResponse",
]

DEEPGRAM_INVALID_AUTH = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
DEEPGRAM_CORRUPT_AUDIO = {
    "err_code": "Bad Request",
    "err_msg": "Bad Request: failed to process audio: corrupt or unsupported data",
}
ASSEMBLYAI_INVALID_AUTH = {"error": "Authentication error, API token missing/invalid"}
ASSEMBLYAI_NOT_AUDIO = (
    "Transcoding failed. File does not appear to contain audio. File type is text/plain (ASCII text)."
)


def _is_audio(data: bytes) -> bool:
    """Magic-byte sniffing of the containers the fakes accept: Ogg, MP3, WAV, M4A/MP4."""
    if data.startswith((b"OggS", b"ID3")):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return True
    if data[4:8] == b"ftyp":
        return True
    return len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0


def _duration(data: bytes) -> float:
    """The container duration via PyAV when it is installed; 0.0 otherwise (the fakes never need it)."""
    try:
        import av  # noqa: PLC0415 - optional

        with av.open(io.BytesIO(data), mode="r") as container:
            return float(container.duration or 0) / 1_000_000
    except Exception:
        return 0.0


@attrs.frozen
class RecordedRequest:
    """One request as the fake received it (header names are case-insensitive)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    headers: Mapping[str, str]
    body: bytes

    def params(self, name: str) -> list[str]:
        """All values of query parameter *name*, in order."""
        return [value for key, value in self.query if key == name]


@attrs.frozen
class ScriptedResponse:
    """An answer to give instead of the normal one; *path* limits it to requests whose path starts with it."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    path: str | None = None
    delay_s: float = 0.0


@attrs.define
class _FakeServer:
    transcripts: Mapping[str, str] = attrs.field(factory=dict)
    api_key: str = "test-key"
    delay_s: float = 0.0
    requests: list[RecordedRequest] = attrs.field(factory=list)
    scripted: list[ScriptedResponse] = attrs.field(factory=list)
    _runner: web.AppRunner | None = attrs.field(default=None, init=False)
    _port: int | None = attrs.field(default=None, init=False)

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake server is not started")
        return f"http://127.0.0.1:{self._port}"

    def script(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        path: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next request (whose path starts with *path*, if given) with *status* and *body*."""
        self.scripted.append(ScriptedResponse(status, body, dict(headers or {}), path, delay_s))

    def _routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 30)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=tuple(request.query.items()),
                headers=CIMultiDict(request.headers),
                body=body,
            )
        )
        if self.delay_s:
            await anyio.sleep(self.delay_s)
        for index, scripted in enumerate(self.scripted):
            if scripted.path is None or request.path.startswith(scripted.path):
                del self.scripted[index]
                if scripted.delay_s:
                    await anyio.sleep(scripted.delay_s)
                return _json(scripted.status, scripted.body, scripted.headers)
        response: web.StreamResponse = await handler(request)
        return response

    def text_for(self, data: bytes) -> str:
        return self.transcripts.get(hashlib.sha256(data).hexdigest(), "").strip()


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=dict(headers or {}))
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=dict(headers or {}))
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=dict(headers or {})
    )


def _request_id() -> str:
    return str(uuid.uuid4())


@attrs.define
class FakeDeepgramServer(_FakeServer):
    """
    ``POST /v1/listen`` as Deepgram documents it: ``Authorization: Token <key>``, raw audio body, JSON results.

    ``languages`` maps an audio sha256 to the language reported by ``detect_language=true`` (default "en").
    """

    api_key: str = "dg-test"
    languages: Mapping[str, str] = attrs.field(factory=dict)

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/listen", self._listen)

    async def _listen(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return _json(401, {**DEEPGRAM_INVALID_AUTH, "request_id": _request_id()})
        data = await request.read()
        if request.content_type == "application/json":
            return _json(
                400,
                {
                    "err_code": "Bad Request",
                    "err_msg": "Bad Request: this fake does not fetch remote URLs",
                    "request_id": _request_id(),
                },
            )
        model = request.query.get("model", "base")
        keyterms = request.query.getall("keyterm", [])
        if keyterms and not model.startswith("nova-3"):
            return _json(
                400,
                {
                    "err_code": "Bad Request",
                    "err_msg": "Keyterm Prompting is only available for Nova-3 models.",
                    "request_id": _request_id(),
                },
            )
        if not data or not _is_audio(data):
            return _json(400, {**DEEPGRAM_CORRUPT_AUDIO, "request_id": _request_id()})
        digest = hashlib.sha256(data).hexdigest()
        text = self.text_for(data)
        duration = _duration(data)
        tokens = text.split()
        step = duration / len(tokens) if tokens and duration else 0.0
        words = [
            {
                "word": token.lower().strip(".,!?"),
                "start": round(i * step, 3),
                "end": round((i + 1) * step, 3),
                "confidence": 0.99,
                "punctuated_word": token,
            }
            for i, token in enumerate(tokens)
        ]
        channel: dict[str, Any] = {
            "alternatives": [{"transcript": text, "confidence": 0.99 if text else 0.0, "words": words}]
        }
        if request.query.get("detect_language") == "true":
            channel["detected_language"] = self.languages.get(digest, "en")
            channel["language_confidence"] = 0.98
        model_uuid = "2187e11a-3532-4498-b076-81fa530bdd49"
        return _json(
            200,
            {
                "metadata": {
                    "transaction_key": "deprecated",
                    "request_id": _request_id(),
                    "sha256": digest,
                    "created": datetime.now(UTC).isoformat(),
                    "duration": duration,
                    "channels": 1,
                    "models": [model_uuid],
                    "model_info": {model_uuid: {"name": f"general-{model}", "version": "fake", "arch": model}},
                },
                "results": {"channels": [channel]},
            },
        )


@attrs.define
class _Job:
    id: str
    upload: str
    request: dict[str, Any]
    polls: int = 0
    error: str | None = None


@attrs.define
class FakeAssemblyAIServer(_FakeServer):
    """
    The AssemblyAI async API: ``POST /v2/upload`` → ``POST /v2/transcript`` → ``GET /v2/transcript/{id}``.

    Auth is the raw key in ``authorization`` (no "Bearer"). A job is ``queued`` when created, then
    ``processing`` for *processing_polls* polls, then ``completed`` (or ``error``: non-audio uploads,
    and jobs scripted with `fail_next_job`).
    """

    api_key: str = "aai-test"
    processing_polls: int = 1
    uploads: dict[str, bytes] = attrs.field(factory=dict)
    jobs: dict[str, _Job] = attrs.field(factory=dict)
    _job_errors: list[str] = attrs.field(factory=list)

    def fail_next_job(self, message: str) -> None:
        """The next transcript job ends with ``status: error`` and this message."""
        self._job_errors.append(message)

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/upload", self._upload)
        app.router.add_post("/v2/transcript", self._create)
        app.router.add_get("/v2/transcript/{id}", self._get)
        app.router.add_delete("/v2/transcript/{id}", self._delete)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("authorization") == self.api_key

    async def _upload(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json(401, ASSEMBLYAI_INVALID_AUTH)
        data = await request.read()
        if not data:
            return _json(400, {"error": "Upload failed: the request body is empty."})
        key = str(uuid.uuid4())
        self.uploads[key] = data
        return _json(200, {"upload_url": f"{self.base_url}/cdn/upload/{key}"})

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json(401, ASSEMBLYAI_INVALID_AUTH)
        try:
            payload = await request.json()
        except ValueError:
            return _json(400, {"error": "Invalid JSON in the request body."})
        if not isinstance(payload, dict) or not isinstance(payload.get("audio_url"), str):
            return _json(400, {"error": "audio_url is required."})
        if payload.get("keyterms_prompt") and payload.get("prompt"):
            return _json(400, {"error": "keyterms_prompt cannot be used together with prompt."})
        upload = payload["audio_url"].rsplit("/", 1)[-1]
        if upload not in self.uploads:
            return _json(400, {"error": "Download error, unable to download the audio_url."})
        job = _Job(id=str(uuid.uuid4()), upload=upload, request=payload)
        if self._job_errors:
            job.error = self._job_errors.pop(0)
        self.jobs[job.id] = job
        return _json(200, self._body(job, "queued"))

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json(401, ASSEMBLYAI_INVALID_AUTH)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return _json(404, {"error": "Transcript not found."})
        job.polls += 1
        if job.polls <= self.processing_polls:
            return _json(200, self._body(job, "processing"))
        data = self.uploads[job.upload]
        if job.error is None and not _is_audio(data):
            job.error = ASSEMBLYAI_NOT_AUDIO
        if job.error is not None:
            return _json(200, self._body(job, "error"))
        return _json(200, self._body(job, "completed", data))

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _json(401, ASSEMBLYAI_INVALID_AUTH)
        job = self.jobs.pop(request.match_info["id"], None)
        if job is None:
            return _json(404, {"error": "Transcript not found."})
        return _json(200, self._body(job, "completed"))

    def _body(self, job: _Job, status: str, data: bytes | None = None) -> dict[str, Any]:
        request = job.request
        body: dict[str, Any] = {
            "id": job.id,
            "status": status,
            "audio_url": request["audio_url"],
            "text": None,
            "words": None,
            "confidence": None,
            "audio_duration": None,
            "language_code": request.get("language_code"),
            "language_detection": request.get("language_detection"),
            "speech_models": request.get("speech_models"),
            "keyterms_prompt": request.get("keyterms_prompt"),
            "punctuate": True,
            "format_text": True,
            "error": None,
        }
        if status == "error":
            body["error"] = job.error
        if status == "completed" and data is not None:
            text = self.text_for(data)
            duration = _duration(data)
            tokens = text.split()
            step = duration * 1000 / len(tokens) if tokens and duration else 0.0
            body.update(
                text=text,
                words=[
                    {
                        "text": token,
                        "start": int(i * step),
                        "end": int((i + 1) * step),
                        "confidence": 0.97,
                        "speaker": None,
                    }
                    for i, token in enumerate(tokens)
                ],
                confidence=0.96 if text else 0.0,
                audio_duration=round(duration),
                speech_model_used=(request.get("speech_models") or ["universal-3-5-pro"])[0],
            )
            if request.get("language_detection"):
                body["language_code"] = "en"
                body["language_confidence"] = 0.97
            elif body["language_code"] is None:
                body["language_code"] = "en_us"
        return body
