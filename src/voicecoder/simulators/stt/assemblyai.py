"""A loopback fake of AssemblyAI's async transcription API, following its public docs."""

from __future__ import annotations

import uuid
from typing import Any

import attrs
from aiohttp import web

from voicecoder.adapters.stt.code_vocabulary import hint_prompt
from voicecoder.domain.errors import TranscriptionError
from voicecoder.simulators.stt.base import FakeSpeechServer, is_audio, json_response
from voicecoder.simulators.stt.recognizers import Recognition

__all__ = ["ASSEMBLYAI_INVALID_AUTH", "ASSEMBLYAI_NOT_AUDIO", "FakeAssemblyAIServer"]

ASSEMBLYAI_INVALID_AUTH = {"error": "Authentication error, API token missing/invalid"}
ASSEMBLYAI_NOT_AUDIO = (
    "Transcoding failed. File does not appear to contain audio. File type is text/plain (ASCII text)."
)


@attrs.define
class _Job:
    id: str
    upload: str
    request: dict[str, Any]
    polls: int = 0
    error: str | None = None
    heard: Recognition | None = None


@attrs.define(kw_only=True)
class FakeAssemblyAIServer(FakeSpeechServer):
    """
    The async API: ``POST /v2/upload`` → ``POST /v2/transcript`` → ``GET /v2/transcript/{id}``.

    Auth is the raw key in ``authorization`` (no "Bearer"). A job is ``queued`` when created, then
    ``processing`` for *processing_polls* polls, then ``completed`` with what the `recognizer` heard (with the
    job's ``language_code``, or detecting it, and its ``keyterms_prompt``), or ``error``: non-audio uploads and
    jobs scripted with `fail_next_job`.
    """

    api_key: str | None = "aai-test"
    audio_path: str = "/v2/upload"
    processing_polls: int = 1
    uploads: dict[str, bytes] = attrs.field(factory=dict)
    jobs: dict[str, _Job] = attrs.field(factory=dict)
    _job_errors: list[str] = attrs.field(factory=list)

    def fail_next_job(self, message: str) -> None:
        """The next transcript job ends with ``status: error`` and this message."""
        self._job_errors.append(message)

    def received_vocabulary(self) -> tuple[str, ...]:
        """The ``keyterms_prompt`` of the latest transcript job."""
        if not self.jobs:
            return ()
        latest = list(self.jobs.values())[-1]
        return tuple(latest.request.get("keyterms_prompt") or ())

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/upload", self._upload)
        app.router.add_post("/v2/transcript", self._create)
        app.router.add_get("/v2/transcript/{id}", self._get)
        app.router.add_delete("/v2/transcript/{id}", self._delete)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("authorization") == self.api_key

    async def _upload(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response(401, ASSEMBLYAI_INVALID_AUTH)
        data = await request.read()
        if not data:
            return json_response(400, {"error": "Upload failed: the request body is empty."})
        key = str(uuid.uuid4())
        self.uploads[key] = data
        return json_response(200, {"upload_url": f"{self.base_url}/cdn/upload/{key}"})

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response(401, ASSEMBLYAI_INVALID_AUTH)
        try:
            payload = await request.json()
        except ValueError:
            return json_response(400, {"error": "Invalid JSON in the request body."})
        if not isinstance(payload, dict) or not isinstance(payload.get("audio_url"), str):
            return json_response(400, {"error": "audio_url is required."})
        if payload.get("keyterms_prompt") and payload.get("prompt"):
            return json_response(400, {"error": "keyterms_prompt cannot be used together with prompt."})
        upload = payload["audio_url"].rsplit("/", 1)[-1]
        if upload not in self.uploads:
            return json_response(400, {"error": "Download error, unable to download the audio_url."})
        job = _Job(id=str(uuid.uuid4()), upload=upload, request=payload)
        if self._job_errors:
            job.error = self._job_errors.pop(0)
        self.jobs[job.id] = job
        return json_response(200, self._body(job, "queued"))

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response(401, ASSEMBLYAI_INVALID_AUTH)
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return json_response(404, {"error": "Transcript not found."})
        job.polls += 1
        if job.polls <= self.processing_polls:
            return json_response(200, self._body(job, "processing"))
        data = self.uploads[job.upload]
        if job.error is None and not is_audio(data):
            job.error = ASSEMBLYAI_NOT_AUDIO
        if job.error is None and job.heard is None:
            requested = job.request.get("language_code")
            language = None if job.request.get("language_detection") else str(requested or "en_us").split("_")[0]
            prompt = hint_prompt(job.request.get("keyterms_prompt") or ())
            try:
                job.heard = await self.recognizer.recognize(data, language=language, prompt=prompt)
            except TranscriptionError:
                job.error = ASSEMBLYAI_NOT_AUDIO
        if job.error is not None:
            return json_response(200, self._body(job, "error"))
        return json_response(200, self._body(job, "completed"))

    async def _delete(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return json_response(401, ASSEMBLYAI_INVALID_AUTH)
        job = self.jobs.pop(request.match_info["id"], None)
        if job is None:
            return json_response(404, {"error": "Transcript not found."})
        return json_response(200, self._body(job, "completed"))

    def _body(self, job: _Job, status: str) -> dict[str, Any]:
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
        heard = job.heard
        if status == "completed" and heard is not None:
            tokens = heard.text.split()
            step = heard.duration_s * 1000 / len(tokens) if tokens else 0.0
            confidence = heard.confidence if heard.confidence is not None else 0.0
            body.update(
                text=heard.text,
                words=[
                    {
                        "text": token,
                        "start": int(i * step),
                        "end": int((i + 1) * step),
                        "confidence": confidence,
                        "speaker": None,
                    }
                    for i, token in enumerate(tokens)
                ],
                confidence=confidence,
                audio_duration=round(heard.duration_s),
                speech_model_used=(request.get("speech_models") or ["universal-3-5-pro"])[0],
            )
            if request.get("language_detection"):
                body["language_code"] = heard.language or "en"
                body["language_confidence"] = 0.9
            elif body["language_code"] is None:
                body["language_code"] = "en_us"
        return body
