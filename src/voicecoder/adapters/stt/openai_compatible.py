"""
Any OpenAI-compatible transcription endpoint: ``POST {base_url}/audio/transcriptions`` (multipart).

OpenAI (``https://api.openai.com/v1``), Groq (``https://api.groq.com/openai/v1``) and self-hosted Whisper
servers (faster-whisper-server / speaches, LocalAI, vLLM, whisper.cpp's server; ``http://host:8000/v1``)
speak this shape, so an operator with a GPU box or a hosted endpoint gets large-model accuracy.

The request: ``file`` (the voice note's bytes, unchanged, with a file name whose extension names the
container, which is how these servers judge the format), ``model``, ``response_format``, ``temperature=0``,
and, when known, ``language`` and ``prompt`` (the vocabulary hints as Whisper's initial prompt).

``verbose_json`` is asked for where the model supports it (language, duration and per-segment log-probabilities
give the language, duration and confidence, and segments Whisper itself marks as silence are dropped); ``gpt-4o``
transcription models only answer ``json``, so they get that, and a server that refuses ``verbose_json`` is asked
again with ``json`` once and remembered. The API key travels only in ``Authorization: Bearer …`` and is never
logged or put in an error message; servers without auth get no header at all.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
import attrs

from voicecoder.adapters.stt.audio_intake import AudioFormat, AudioLimits, check_audio
from voicecoder.adapters.stt.code_vocabulary import whisper_prompt
from voicecoder.adapters.stt.languages import language_code
from voicecoder.adapters.stt.retry_after import retry_delay
from voicecoder.adapters.stt.whisper_window import is_silence
from voicecoder.domain.errors import (
    AudioTooLargeError,
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TranscriptionError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, Diagnostic, Transcript, TranscriptionHints

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MODEL", "OpenAITranscriber", "provider_name"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "whisper-1"
#: OpenAI refuses uploads over 25 MiB with HTTP 413.
OPENAI_MAX_BYTES = 25 * 1024 * 1024
_KNOWN_HOSTS = {"api.openai.com": "OpenAI", "api.groq.com": "Groq"}
_MAX_DETAIL = 200
_MODEL_FIX = "Check OPENAI_STT_MODEL"
_URL_FIX = "Check OPENAI_STT_BASE_URL (the server's base URL, usually ending in /v1)"


def provider_name(base_url: str) -> str:
    """How messages name the service: "OpenAI" or "Groq" for their hosts, else "the speech server at <host>"."""
    host = urlsplit(base_url).hostname or base_url
    return _KNOWN_HOSTS.get(host, f"OpenAI-compatible ({host})")


def _error_fields(body: Any, raw: str) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, param, code) of an error body ``{"error": {...}}``, tolerating other shapes."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = error.get("message")

        def field(name: str) -> str | None:
            value = error.get(name)
            return value if isinstance(value, str) else None

        text = message if isinstance(message, str) and message else raw
        return text.strip()[:_MAX_DETAIL], field("type"), field("param"), field("code")
    if isinstance(body, dict) and isinstance(body.get("detail"), str):  # FastAPI-style servers
        return body["detail"][:_MAX_DETAIL], None, None, None
    if isinstance(error, str):
        return error[:_MAX_DETAIL], None, None, None
    return raw.strip()[:_MAX_DETAIL], None, None, None


@attrs.define
class OpenAITranscriber:
    """
    Transcribes with an OpenAI-compatible ``/audio/transcriptions`` endpoint.

    *base_url* is the API base as OpenAI clients take it (``…/v1``); a URL that already ends in
    ``/audio/transcriptions`` is accepted too. Pass *session* to share an aiohttp session owned by the caller;
    otherwise the adapter opens its own on first use and `aclose()` closes it.
    """

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = attrs.field(default=None, repr=False)
    language: str | None = None
    timeout_s: float = 60.0
    limits: AudioLimits = attrs.field(factory=AudioLimits)
    session: aiohttp.ClientSession | None = attrs.field(default=None, repr=False)
    _owned_session: aiohttp.ClientSession | None = attrs.field(default=None, init=False, repr=False)
    _json_only: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        self._json_only = self.model.startswith("gpt-4o")

    @property
    def provider(self) -> str:
        return provider_name(self.base_url)

    @property
    def endpoint(self) -> str:
        base = self.base_url.rstrip("/")
        return base if base.endswith("/audio/transcriptions") else f"{base}/audio/transcriptions"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the session this adapter opened itself (an injected session is left alone)."""
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is not None:
            return self.session
        if self._owned_session is None or self._owned_session.closed:
            self._owned_session = aiohttp.ClientSession()
        return self._owned_session

    def _form(self, audio: Audio, fmt: AudioFormat, hints: TranscriptionHints | None) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("file", audio.data, filename=f"voice.{fmt.extension}", content_type=fmt.value)
        form.add_field("model", self.model)
        form.add_field("response_format", "json" if self._json_only else "verbose_json")
        form.add_field("temperature", "0")
        language = (hints.language if hints else None) or self.language
        if language:
            form.add_field("language", language.split("-")[0].split("_")[0].lower())
        prompt = whisper_prompt(hints)
        if prompt:
            form.add_field("prompt", prompt)
        return form

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        info = check_audio(audio, self.limits)
        for _attempt in range(2):
            verbose = not self._json_only
            status, headers, raw = await self._post(self._form(audio, info.format, hints))
            body: Any
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = None
            if status == 200:
                return self._transcript(body, raw, hints, info.duration_s)
            message, kind, param, code = _error_fields(body, raw)
            log.warning("%s answered HTTP %s (%s)", self.provider, status, code or kind or "no code")
            if status == 400 and verbose and (param == "response_format" or "response_format" in message):
                # This model or server answers plain json only: ask again that way, and from now on.
                self._json_only = True
                continue
            raise self._error(status, headers, message, kind, param, code, audio)
        raise ProviderRejectedError(self.provider, "it refused both response formats", _URL_FIX)

    async def _post(self, form: aiohttp.FormData) -> tuple[int, Mapping[str, str], str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            async with self._session().post(
                self.endpoint, data=form, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as response:
                return response.status, response.headers, await response.text(errors="replace")
        except TimeoutError as exc:
            raise ProviderTimeoutError(self.provider, self.timeout_s) from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailableError(self.provider, f"connection failed ({type(exc).__name__})") from exc

    def _error(
        self,
        status: int,
        headers: Mapping[str, str],
        message: str,
        kind: str | None,
        param: str | None,
        code: str | None,
        audio: Audio,
    ) -> TranscriptionError:
        lowered = message.lower()
        if status in {401, 403}:
            return ProviderAuthError(self.provider)
        if status == 413:
            return AudioTooLargeError(audio.size, OPENAI_MAX_BYTES)
        if status == 429:
            if "insufficient_quota" in {kind, code} or "quota" in lowered:
                return ProviderRejectedError(
                    self.provider, "the account's quota is used up", "Top up the account or switch STT_PROVIDER"
                )
            return ProviderUnavailableError(self.provider, "rate limited", retry_delay(headers))
        if status >= 500:
            return ProviderUnavailableError(self.provider, f"HTTP {status}", retry_delay(headers))
        if param == "file" or "file format" in lowered or "corrupt" in lowered or "decode" in lowered:
            return UnsupportedAudioError(message)
        if status == 404 or param == "model" or code == "model_not_found":
            if code == "model_not_found" or param == "model" or "model" in lowered:
                return ProviderRejectedError(self.provider, f"the model {self.model!r} is not available", _MODEL_FIX)
            return ProviderRejectedError(self.provider, "no transcription endpoint at that address", _URL_FIX)
        return ProviderRejectedError(self.provider, f"HTTP {status}: {message}" if message else f"HTTP {status}")

    def _malformed(self, what: str) -> ProviderUnavailableError:
        return ProviderUnavailableError(self.provider, f"it answered with {what}, not a transcription ({_URL_FIX})")

    def _transcript(self, body: Any, raw: str, hints: TranscriptionHints | None, duration: float | None) -> Transcript:
        if not isinstance(body, dict):
            # Only the text/srt/vtt formats answer with something else, and this adapter never asks for them.
            raise self._malformed(f"{len(raw)} bytes that are not the JSON object the API documents")
        text = body.get("text")
        if not isinstance(text, str):
            raise self._malformed("JSON without a text field")
        segments = body.get("segments")
        confidence: float | None = None
        if isinstance(segments, list) and segments:
            kept = [s for s in segments if isinstance(s, dict) and not self._silent(s)]
            if len(kept) != len(segments):
                text = " ".join(str(s.get("text", "")).strip() for s in kept)
            confidence = self._confidence(kept)
        text = text.strip()
        if not text:
            raise NoSpeechError
        reported = body.get("duration")
        requested = (hints.language if hints else None) or self.language
        return Transcript(
            text=text,
            language=language_code(body.get("language")) or language_code(requested),
            confidence=confidence,
            duration_s=float(reported) if isinstance(reported, int | float) and reported > 0 else duration,
        )

    @staticmethod
    def _silent(segment: Mapping[str, Any]) -> bool:
        no_speech = segment.get("no_speech_prob")
        logprob = segment.get("avg_logprob")
        # Whisper's own rule for a segment that is silence, as the local engine applies it to a window.
        return (
            isinstance(no_speech, int | float) and isinstance(logprob, int | float) and is_silence(no_speech, logprob)
        )

    @staticmethod
    def _confidence(segments: Sequence[Mapping[str, Any]]) -> float | None:
        """Exp of the duration-weighted mean log-probability of the segments, or None when none report one."""
        total = 0.0
        weight = 0.0
        for segment in segments:
            logprob = segment.get("avg_logprob")
            if not isinstance(logprob, int | float):
                continue
            start, end = segment.get("start"), segment.get("end")
            span = end - start if isinstance(start, int | float) and isinstance(end, int | float) else 0.0
            span = max(span, 0.01)
            total += logprob * span
            weight += span
        if not weight:
            return None
        return round(min(1.0, max(0.0, math.exp(total / weight))), 3)

    async def diagnose(self) -> Sequence[Diagnostic]:
        detail = f"{self.model} at {self.endpoint}" + ("" if self.api_key else " (no API key)")
        return [Diagnostic("openai-compatible stt", ok=True, detail=detail)]
