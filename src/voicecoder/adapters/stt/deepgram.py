"""
Deepgram pre-recorded transcription over plain aiohttp (``POST {base_url}/v1/listen``).

Telegram's OGG/Opus bytes are sent unchanged; Deepgram sniffs the container. Hints become
repeated ``keyterm`` parameters (Nova-3 keyterm prompting). The API key only ever travels in the
``Authorization: Token …`` header: it is never logged and never part of an exception message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Self

import aiohttp
import attrs

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio
from voicecoder.adapters.stt.languages import language_code
from voicecoder.adapters.stt.retry_after import parse_retry_after
from voicecoder.domain.errors import (
    NoSpeechError,
    ProviderAuthError,
    ProviderRejectedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    UnsupportedAudioError,
)
from voicecoder.domain.model import Audio, Diagnostic, Transcript, TranscriptionHints, Word

log = logging.getLogger(__name__)

__all__ = ["DeepgramTranscriber", "parse_retry_after"]

PROVIDER = "Deepgram"
DEFAULT_BASE_URL = "https://api.deepgram.com"
#: Deepgram accepts up to 100 keyterms per request.
MAX_KEYTERMS = 100
_MAX_DETAIL = 200


def _error_message(body: Any, raw: str) -> str:
    """Deepgram error bodies use ``err_msg`` or ``message``; fall back to the raw text."""
    if isinstance(body, dict):
        for key in ("err_msg", "message", "details"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:_MAX_DETAIL]
    return raw.strip()[:_MAX_DETAIL]


@attrs.define
class DeepgramTranscriber:
    """
    Transcribes with Deepgram (Nova-3 by default).

    Pass *session* to share an aiohttp session owned by the caller; otherwise the adapter opens its own
    on first use and `aclose()` closes it.
    """

    api_key: str = attrs.field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    model: str = "nova-3"
    language: str | None = None
    timeout_s: float = 60.0
    limits: AudioLimits = attrs.field(factory=AudioLimits)
    session: aiohttp.ClientSession | None = attrs.field(default=None, repr=False)
    _owned_session: aiohttp.ClientSession | None = attrs.field(default=None, init=False, repr=False)

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

    def _params(self, hints: TranscriptionHints | None) -> list[tuple[str, str]]:
        params = [("model", self.model), ("smart_format", "true")]
        language = (hints.language if hints else None) or self.language
        if language:
            params.append(("language", language))
        else:
            params.append(("detect_language", "true"))
        if hints:
            seen: set[str] = set()
            for term in hints.keyterms:
                cleaned = term.strip()
                if cleaned and cleaned not in seen and len(seen) < MAX_KEYTERMS:
                    seen.add(cleaned)
                    params.append(("keyterm", cleaned))
        return params

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        info = check_audio(audio, self.limits)
        url = f"{self.base_url.rstrip('/')}/v1/listen"
        headers = {"Authorization": f"Token {self.api_key}", "Content-Type": info.format.value}
        try:
            async with self._session().post(
                url,
                params=self._params(hints),
                data=audio.data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                raw = await response.text()
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError as exc:
            raise ProviderTimeoutError(PROVIDER, self.timeout_s) from exc
        except aiohttp.ClientError as exc:
            raise ProviderUnavailableError(PROVIDER, f"connection failed ({type(exc).__name__})") from exc
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if status == 200:
            return self._transcript(body, hints)
        message = _error_message(body, raw)
        log.warning("deepgram answered HTTP %s: %s", status, message)
        if status in {401, 403}:
            raise ProviderAuthError(PROVIDER)
        if status == 400:
            if "corrupt" in message.lower() or "unsupported" in message.lower():
                raise UnsupportedAudioError(message)
            raise ProviderRejectedError(PROVIDER, message or "HTTP 400", "Check the Deepgram model and STT settings")
        if status == 413:
            raise ProviderRejectedError(PROVIDER, "the file is too large for it", "Send a shorter note")
        if status == 402:
            raise ProviderRejectedError(PROVIDER, "the account is out of credit", "Top up the Deepgram account")
        if status == 429:
            raise ProviderUnavailableError(PROVIDER, "rate limited", retry_after)
        if status >= 500:
            raise ProviderUnavailableError(PROVIDER, f"HTTP {status}", retry_after)
        raise ProviderRejectedError(PROVIDER, f"HTTP {status} ({message})" if message else f"HTTP {status}")

    def _transcript(self, body: Any, hints: TranscriptionHints | None) -> Transcript:
        try:
            return self._parse(body, hints)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise ProviderUnavailableError(PROVIDER, "it answered with an unexpected response shape") from exc

    def _parse(self, body: Any, hints: TranscriptionHints | None) -> Transcript:
        channel = body["results"]["channels"][0]
        best = channel["alternatives"][0]
        transcript = best["transcript"]
        if not isinstance(transcript, str):
            raise TypeError("transcript is not a string")
        text = transcript.strip()
        if not text:
            raise NoSpeechError
        words = tuple(
            Word(
                text=str(w.get("punctuated_word") or w["word"]),
                start_s=float(w["start"]),
                end_s=float(w["end"]),
                confidence=float(w["confidence"]) if w.get("confidence") is not None else None,
            )
            for w in best.get("words") or ()
            if isinstance(w, dict) and "word" in w
        )
        metadata = body.get("metadata") or {}
        duration = metadata.get("duration")
        confidence = best.get("confidence")
        language = language_code(channel.get("detected_language")) or language_code(
            (hints.language if hints else None) or self.language
        )
        return Transcript(
            text=text,
            language=language,
            confidence=float(confidence) if confidence is not None else None,
            duration_s=float(duration) if duration is not None else None,
            words=words,
        )

    async def diagnose(self) -> Sequence[Diagnostic]:
        if not self.api_key:
            return [
                Diagnostic(
                    "deepgram",
                    ok=False,
                    detail="no API key configured",
                    fix="set DEEPGRAM_API_KEY or switch STT_PROVIDER to local",
                )
            ]
        return [Diagnostic("deepgram", ok=True, detail=f"{self.model} at {self.base_url}")]
