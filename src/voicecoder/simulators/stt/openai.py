"""
A loopback fake of the OpenAI audio transcription API (``POST /v1/audio/transcriptions``).

The multipart shape OpenAI, Groq and self-hosted Whisper servers speak, following OpenAI's public API reference.
"""

from __future__ import annotations

import email.parser
import email.policy
import math
from typing import Any

import attrs
from aiohttp import web

from voicecoder.adapters.stt.languages import language_code
from voicecoder.domain.errors import TranscriptionError
from voicecoder.simulators.stt.base import FakeSpeechServer, is_audio, json_response

__all__ = ["OPENAI_FORMATS", "OPENAI_MAX_BYTES", "FakeOpenAIServer", "openai_error"]

#: File extensions the API accepts (the format is judged by the file name).
OPENAI_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
OPENAI_MAX_BYTES = 25 * 1024 * 1024
_RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
_NAMES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
    "pt": "portuguese",
}


def openai_error(
    message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The API's error body."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], str | None, bytes]:
    """The text fields, the file's name and the file's bytes of a multipart/form-data body."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    form: dict[str, str] = {}
    file_name: str | None = None
    data = b""
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else b""
        if name == "file":
            file_name = part.get_filename() or ""
            data = content
        elif isinstance(name, str):
            form[name] = content.decode("utf-8", "replace")
    return form, file_name, data


@attrs.define(kw_only=True)
class FakeOpenAIServer(FakeSpeechServer):
    """
    ``POST /v1/audio/transcriptions`` with ``Authorization: Bearer <key>`` and a multipart body.

    No auth check when *api_key* is None, as self-hosted servers run. The body: ``file``, ``model``, optional
    ``language``, ``prompt``, ``response_format`` (json, text, srt, verbose_json, vtt), ``temperature``.

    The `recognizer` hears the file with the request's language (detecting it when absent) and its prompt.
    *models* are the model ids the server knows (others get 404 ``model_not_found``); ``gpt-4o`` models answer
    ``json`` or ``text`` only, as OpenAI's do. *language_names* reports ``verbose_json`` languages as OpenAI does
    ("english"); False reports codes, as self-hosted servers do.
    """

    api_key: str | None = "sk-test"
    audio_path: str = "/v1/audio/transcriptions"
    models: tuple[str, ...] = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
    language_names: bool = True
    forms: list[dict[str, str]] = attrs.field(factory=list)

    @property
    def api_base(self) -> str:
        """The base URL an OpenAI client is configured with (``…/v1``)."""
        return f"{self.base_url}/v1"

    def received_vocabulary(self) -> tuple[str, ...]:
        """The ``prompt`` field of the latest transcription request."""
        prompt = self.forms[-1].get("prompt") if self.forms else None
        return (prompt,) if prompt else ()

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        if self.api_key is not None:
            authorization = request.headers.get("Authorization", "")
            if not authorization:
                return json_response(
                    401,
                    openai_error(
                        "You didn't provide an API key. You need to provide your API key in an Authorization header "
                        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                    ),
                )
            if authorization != f"Bearer {self.api_key}":
                return json_response(401, openai_error("Incorrect API key provided.", code="invalid_api_key"))
        if not request.content_type.startswith("multipart/"):
            return json_response(400, openai_error("Expected a multipart/form-data request body."))
        form, file_name, data = _parse_form(request.headers["Content-Type"], await request.read())
        self.forms.append(form)
        if file_name is None:
            return json_response(400, openai_error("Missing required parameter: 'file'.", param="file"))
        model = form.get("model")
        if not model:
            return json_response(400, openai_error("Missing required parameter: 'model'.", param="model"))
        if model not in self.models:
            return json_response(
                404,
                openai_error(
                    f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
                ),
            )
        if len(data) > OPENAI_MAX_BYTES:
            return json_response(
                413,
                openai_error(
                    f"Maximum content size limit ({OPENAI_MAX_BYTES}) exceeded ({len(data)} bytes read)",
                    kind="server_error",
                ),
            )
        extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
        if extension not in OPENAI_FORMATS:
            return json_response(
                400,
                openai_error(f"Invalid file format. Supported formats: {list(OPENAI_FORMATS)}", param="file"),
            )
        response_format = form.get("response_format", "json")
        if response_format not in _RESPONSE_FORMATS:
            return json_response(
                400, openai_error(f"Invalid value for 'response_format': {response_format!r}.", param="response_format")
            )
        if model.startswith("gpt-4o") and response_format not in {"json", "text"}:
            return json_response(
                400,
                openai_error(
                    f"response_format '{response_format}' is not compatible with model '{model}'. "
                    "Use 'json' or 'text' instead.",
                    param="response_format",
                    code="unsupported_value",
                ),
            )
        undecodable = json_response(
            400,
            openai_error("Audio file might be corrupted or unsupported", param="file", code="invalid_value"),
        )
        if not is_audio(data):
            return undecodable
        language = form.get("language") or None
        try:
            heard = await self.recognizer.recognize(data, language=language, prompt=form.get("prompt") or None)
        except TranscriptionError:
            return undecodable
        if response_format == "text":
            return web.Response(text=heard.text + "\n")
        if response_format in {"srt", "vtt"}:
            stamp = f"00:00:00{',' if response_format == 'srt' else '.'}000"
            end = f"00:00:{min(heard.duration_s, 59):06.3f}".replace(".", "," if response_format == "srt" else ".")
            head = "WEBVTT\n\n" if response_format == "vtt" else "1\n"
            return web.Response(text=f"{head}{stamp} --> {end}\n{heard.text}\n")
        if response_format == "json":
            return json_response(
                200, {"text": heard.text, "usage": {"type": "duration", "seconds": math.ceil(heard.duration_s)}}
            )
        spoken = heard.language or language_code(language) or "en"
        avg_logprob = math.log(heard.confidence) if heard.confidence else -1.5
        segments = (
            [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": round(heard.duration_s, 2),
                    "text": " " + heard.text,
                    "tokens": [50364],
                    "temperature": 0.0,
                    "avg_logprob": avg_logprob,
                    "compression_ratio": 1.1,
                    "no_speech_prob": 0.02,
                }
            ]
            if heard.text
            else []
        )
        return json_response(
            200,
            {
                "task": "transcribe",
                "language": _NAMES.get(spoken, spoken) if self.language_names else spoken,
                "duration": round(heard.duration_s, 2),
                "text": heard.text,
                "segments": segments,
                "usage": {"type": "duration", "seconds": math.ceil(heard.duration_s)},
            },
        )
