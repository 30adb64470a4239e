"""
AssemblyAI async transcription through the official ``assemblyai`` SDK.

The SDK is blocking (httpx + ``time.sleep`` polling), so each call runs in a worker thread under an
overall deadline, with its own ``aai.Client(settings=aai.Settings(...))`` (never the SDK's global
``aai.settings``): concurrent calls share nothing, and a cancelled or timed-out call closes its client so
its worker stops at its next HTTP request instead of polling on for nobody. Upload → transcript → poll; a
job that ends with ``status: error`` is mapped explicitly, because the SDK returns it instead of raising,
and a body the SDK cannot parse is a `ProviderUnavailableError`, never a pydantic or JSON error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Self

import anyio
import anyio.to_thread
import assemblyai as aai
import attrs
import httpx

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio
from voicecoder.adapters.stt.retry_after import parse_retry_after
from voicecoder.domain.errors import (
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
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

    def _sdk_client(self) -> aai.Client:
        settings = aai.Settings(
            api_key=self.api_key,
            base_url=self.base_url.rstrip("/"),
            http_timeout=self.timeout_s,
            polling_interval=self.polling_interval_s,
        )
        return aai.Client(settings=settings)

    async def aclose(self) -> None:
        """Nothing to close: each call opens and closes its own SDK client."""

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

    def _run(self, client: aai.Client, data: bytes, hints: TranscriptionHints | None) -> Transcript:
        transcriber = aai.Transcriber(client=client, config=self._config(hints))
        try:
            result = transcriber.transcribe(data, poll_timeout=self.timeout_s)
        except aai.types.TranscriptError as exc:
            raise self._translate(exc, client) from exc
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(PROVIDER, self.timeout_s) from exc
        except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: the client was closed under a cancelled call
            raise ProviderUnavailableError(PROVIDER, f"connection failed ({type(exc).__name__})") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # pydantic's ValidationError and json's JSONDecodeError are ValueErrors: a body the API never documents.
            raise ProviderUnavailableError(PROVIDER, "it answered with an unexpected response shape") from exc
        try:
            return self._transcript(result, hints)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderUnavailableError(PROVIDER, "it answered with an unexpected response shape") from exc

    def _transcript(self, result: aai.Transcript, hints: TranscriptionHints | None) -> Transcript:
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
            return ProviderRejectedError(PROVIDER, "the account is out of credit", "Top up the AssemblyAI account")
        if status >= 500:
            return ProviderUnavailableError(PROVIDER, f"HTTP {status}", retry_after)
        detail = message.rsplit(": ", 1)[-1] if ": " in message else f"HTTP {status}"
        return ProviderRejectedError(PROVIDER, detail, "Check the AssemblyAI speech models and STT settings")

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        check_audio(audio, self.limits)
        # The SDK bounds each HTTP call and the polling; this outer deadline covers the sum of them.
        deadline = self.timeout_s * 2 + 5
        client = self._sdk_client()
        try:
            with anyio.fail_after(deadline if math.isfinite(deadline) else None):
                return await anyio.to_thread.run_sync(self._run, client, audio.data, hints, abandon_on_cancel=True)
        except TimeoutError as exc:
            raise ProviderTimeoutError(PROVIDER, self.timeout_s) from exc
        finally:
            # Also when cancelled: an abandoned worker then fails at its next request instead of polling on.
            client.http_client.close()

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
