"""
`CodeAwareTranscriber`: any provider, hinted and post-processed for code.

The coding vocabulary and the workspace's names as they are spoken become the hints, and the text passes
through the spoken-forms post-pass (see `code_vocabulary`).

The composition root wraps every speech engine in it (built-in or plug-in), so each one hears "git log",
and "main dot py" becomes ``main.py`` when the workspace has that file.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from voicecoder.adapters.stt.code_vocabulary import (
    CODING_CONTEXT,
    CODING_VOCABULARY,
    apply_spoken_forms,
    recognizer_terms,
)
from voicecoder.domain.model import Audio, Diagnostic, Transcript, TranscriptionHints
from voicecoder.domain.ports import Transcriber

__all__ = ["CodeAwareTranscriber"]


@attrs.define
class CodeAwareTranscriber:
    """
    Wraps *inner*: its hints become `recognizer_terms` of the workspace names, its text gets `apply_spoken_forms`.

    Raises whatever *inner* raises (the `Transcriber` errors); the post-pass itself cannot fail.
    """

    inner: Transcriber
    vocabulary: tuple[str, ...] = CODING_VOCABULARY
    context: str | None = CODING_CONTEXT

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        names = hints.keyterms if hints else ()
        language = hints.language if hints else None
        english = language is None or language.lower().startswith("en")
        spoken = TranscriptionHints(
            keyterms=recognizer_terms(names, vocabulary=self.vocabulary),
            language=language,
            # The sample sentences are English: for a note in another language they would only mislead.
            context=self.context if english else None,
        )
        result = await self.inner.transcribe(audio, spoken)
        text = apply_spoken_forms(result.text, names)
        return result if text == result.text else attrs.evolve(result, text=text)

    async def diagnose(self) -> Sequence[Diagnostic]:
        diagnose = getattr(self.inner, "diagnose", None)
        return list(await diagnose()) if diagnose is not None else []

    async def aclose(self) -> None:
        aclose = getattr(self.inner, "aclose", None)
        if aclose is not None:
            await aclose()
