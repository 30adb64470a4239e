"""A loopback fake of Deepgram's pre-recorded REST API (``POST /v1/listen``), following its public docs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import attrs
from aiohttp import web

from voicecoder.adapters.stt.code_vocabulary import hint_prompt
from voicecoder.domain.errors import TranscriptionError
from voicecoder.simulators.stt.base import FakeSpeechServer, is_audio, json_response, request_id

__all__ = ["DEEPGRAM_CORRUPT_AUDIO", "DEEPGRAM_INVALID_AUTH", "FakeDeepgramServer"]

DEEPGRAM_INVALID_AUTH = {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}
DEEPGRAM_CORRUPT_AUDIO = {
    "err_code": "Bad Request",
    "err_msg": "Bad Request: failed to process audio: corrupt or unsupported data",
}
_MODEL_UUID = "2187e11a-3532-4498-b076-81fa530bdd49"


@attrs.define(kw_only=True)
class FakeDeepgramServer(FakeSpeechServer):
    """
    ``POST /v1/listen``: ``Authorization: Token <key>``, the raw audio as the body, JSON results.

    Speech is heard by the `recognizer` with the request's ``language`` (or detected, for
    ``detect_language=true``) and its ``keyterm`` parameters as the vocabulary.
    """

    api_key: str | None = "dg-test"
    audio_path: str = "/v1/listen"

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/listen", self._listen)

    def received_vocabulary(self) -> tuple[str, ...]:
        """The ``keyterm`` parameters of the latest ``/v1/listen`` request."""
        listens = [r for r in self.requests if r.path == "/v1/listen"]
        return tuple(listens[-1].params("keyterm")) if listens else ()

    async def _listen(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            return json_response(401, {**DEEPGRAM_INVALID_AUTH, "request_id": request_id()})
        data = await request.read()
        if request.content_type == "application/json":
            return json_response(
                400,
                {
                    "err_code": "Bad Request",
                    "err_msg": "Bad Request: this fake does not fetch remote URLs",
                    "request_id": request_id(),
                },
            )
        model = request.query.get("model", "base")
        keyterms = request.query.getall("keyterm", [])
        if keyterms and not model.startswith("nova-3"):
            return json_response(
                400,
                {
                    "err_code": "Bad Request",
                    "err_msg": "Keyterm Prompting is only available for Nova-3 models.",
                    "request_id": request_id(),
                },
            )
        if not data or not is_audio(data):
            return json_response(400, {**DEEPGRAM_CORRUPT_AUDIO, "request_id": request_id()})
        detect = request.query.get("detect_language") == "true"
        language = None if detect else request.query.get("language", "en")
        try:
            heard = await self.recognizer.recognize(data, language=language, prompt=hint_prompt(keyterms))
        except TranscriptionError:
            return json_response(400, {**DEEPGRAM_CORRUPT_AUDIO, "request_id": request_id()})
        tokens = heard.text.split()
        step = heard.duration_s / len(tokens) if tokens else 0.0
        word_confidence = heard.confidence if heard.confidence is not None else 0.0
        words = [
            {
                "word": token.lower().strip(".,!?"),
                "start": round(i * step, 3),
                "end": round((i + 1) * step, 3),
                "confidence": word_confidence,
                "punctuated_word": token,
            }
            for i, token in enumerate(tokens)
        ]
        channel: dict[str, Any] = {
            "alternatives": [{"transcript": heard.text, "confidence": word_confidence, "words": words}]
        }
        if detect:
            channel["detected_language"] = heard.language or "en"
            channel["language_confidence"] = 0.9
        return json_response(
            200,
            {
                "metadata": {
                    "transaction_key": "deprecated",
                    "request_id": request_id(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "created": datetime.now(UTC).isoformat(),
                    "duration": heard.duration_s,
                    "channels": 1,
                    "models": [_MODEL_UUID],
                    "model_info": {_MODEL_UUID: {"name": f"general-{model}", "version": "fake", "arch": model}},
                },
                "results": {"channels": [channel]},
            },
        )
