"""
AssemblyAI async transcription through the official ``assemblyai`` SDK.

The SDK is blocking (httpx + ``time.sleep`` polling), so each call runs in a worker thread under an
overall deadline. The adapter never touches the SDK's global ``aai.settings``: it builds its own
``aai.Client(settings=aai.Settings(...))``, so two instances with different keys or base URLs can
coexist. Upload → transcript → poll; a job that ends with ``status: error`` is mapped explicitly,
because the SDK returns it instead of raising.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from typing import Self

import anyio
import anyio.to_thread
import assemblyai as aai
import attrs
import httpx

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio
from voicecoder.adapters.stt.deepgram import parse_retry_after
from voicecoder.domain.errors import (
    NoSpeechError,
    ProviderAuthError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    TranscriptionError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, Diagnostic, Transcript, TranscriptionHints, Word

log = logging.getLogger(__name__)

__all__ = ["AssemblyAITranscriber"]

PROVIDER = "AssemblyAI"
DEFAULT_BASE_URL = "https://api.assemblyai.com"
DEFAULT_SPEECH_MODELS = ("universal-3-5-pro", "universal-2")
#: Universal-2 accepts up to 200 keyterms.
MAX_KEYTERMS = 200
_NOT_AUDIO_MARKERS = ("does not appear to contain audio", "transcoding failed", "unsupported")
_NO_SPEECH_MARKERS = ("no spoken audio", "no speech")
_MAX_DETAIL = 200


@attrs.define
class AssemblyAITranscriber:
    """
    Transcribes with AssemblyAI's async API (Universal-3.5 Pro with a Universal-2 fallback by default).

    *timeout_s* bounds the whole call (upload, queueing and polling).
    """

    api_key: str = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    speech_models: tuple[str, ...] = DEFAULT_SPEECH_MODELS
    language: str | None = None
    timeout_s: float = 120.0
    polling_interval_s: float = 1.0
    limits: AudioLimits = attrs.field(factory=AudioLimits)
    _client: aai.Client | None = attrs.field(default=None, init=False, repr=False)
    _client_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def _sdk_client(self) -> aai.Client:
        with self._client_lock:
            if self._client is None:
                settings = aai.Settings(
                    api_key=self.api_key,
                    base_url=self.base_url.rstrip("/"),
                    http_timeout=self.timeout_s,
                    polling_interval=self.polling_interval_s,
                )
                self._client = aai.Client(settings=settings)
            return self._client

    async def aclose(self) -> None:
        """Close the SDK's HTTP connection pool."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.http_client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _config(self, hints: TranscriptionHints | None) -> aai.TranscriptionConfig:
        language = (hints.language if hints else None) or self.language
        keyterms: list[str] = []
        if hints:
            for term in hints.keyterms:
                cleaned = term.strip()
                if cleaned and cleaned not in keyterms and len(keyterms) < MAX_KEYTERMS:
                    keyterms.append(cleaned)
        return aai.TranscriptionConfig(
            speech_models=list(self.speech_models),
            language_code=language,
            language_detection=None if language else True,
            keyterms_prompt=keyterms or None,
        )

    def _run(self, data: bytes, hints: TranscriptionHints | None) -> Transcript:
        client = self._sdk_client()
        transcriber = aai.Transcriber(client=client, config=self._config(hints))
        try:
            result = transcriber.transcribe(data, poll_timeout=self.timeout_s)
        except aai.types.TranscriptError as exc:
            raise self._translate(exc, client) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(PROVIDER, self.timeout_s) from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailableError(PROVIDER, f"connection failed ({type(exc).__name__})") from exc
        if result.status == aai.TranscriptStatus.error:
            reason = (result.error or "").strip()
            log.warning("assemblyai job failed: %s", reason[:_MAX_DETAIL])
            lowered = reason.lower()
            if any(marker in lowered for marker in _NO_SPEECH_MARKERS):
                raise NoSpeechError
            if any(marker in lowered for marker in _NOT_AUDIO_MARKERS):
                raise UnsupportedAudioError(reason[:_MAX_DETAIL])
            raise ProviderUnavailableError(PROVIDER, reason[:_MAX_DETAIL] or "the job failed")
        text = (result.text or "").strip()
        if not text:
            raise NoSpeechError
        response = result.json_response or {}
        words = tuple(
            Word(text=w.text, start_s=w.start / 1000, end_s=w.end / 1000, confidence=w.confidence)
            for w in result.words or ()
        )
        language = response.get("language_code") or (hints.language if hints else None) or self.language
        return Transcript(
            text=text,
            language=str(language) if language else None,
            confidence=result.confidence,
            duration_s=float(result.audio_duration) if result.audio_duration is not None else None,
            words=words,
        )

    def _translate(self, exc: aai.types.TranscriptError, client: aai.Client) -> TranscriptionError:
        status = exc.status_code
        message = str(exc)[:_MAX_DETAIL]
        log.warning("assemblyai request failed: HTTP %s", status)
        if status is None:
            # The SDK raises a status-less TranscriptError when poll_timeout expires.
            return ProviderTimeoutError(PROVIDER, self.timeout_s)
        if status in {401, 403}:
            return ProviderAuthError(PROVIDER)
        retry_after = None
        last = client.last_response
        if last is not None and last.status_code == status:
            retry_after = parse_retry_after(last.headers.get("retry-after"))
        if status == 429:
            return ProviderUnavailableError(PROVIDER, "rate limited", retry_after)
        if status == 402 or "balance" in message.lower():
            return ProviderUnavailableError(PROVIDER, "the AssemblyAI account is out of credit", retry_after)
        if status >= 500:
            return ProviderUnavailableError(PROVIDER, f"HTTP {status}", retry_after)
        return TranscriptionError(f"AssemblyAI refused the request (HTTP {status}). Check the STT settings.")

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        check_audio(audio, self.limits)
        # The SDK bounds each HTTP call and the polling; this outer deadline covers the sum of them.
        deadline = self.timeout_s * 2 + 5
        try:
            with anyio.fail_after(deadline if math.isfinite(deadline) else None):
                return await anyio.to_thread.run_sync(self._run, audio.data, hints, abandon_on_cancel=True)
        except TimeoutError as exc:
            raise ProviderTimeoutError(PROVIDER, self.timeout_s) from exc

    async def diagnose(self) -> Sequence[Diagnostic]:
        if not self.api_key:
            return [
                Diagnostic(
                    "assemblyai",
                    ok=False,
                    detail="no API key configured",
                    fix="set ASSEMBLYAI_API_KEY or switch STT_PROVIDER to local",
                )
            ]
        return [Diagnostic("assemblyai", ok=True, detail=f"{', '.join(self.speech_models)} at {self.base_url}")]
