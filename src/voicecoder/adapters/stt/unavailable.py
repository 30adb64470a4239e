"""A Transcriber for when no speech engine can run here: every voice note is answered with what to install."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from voicecoder.domain.errors import TranscriptionError
from voicecoder.domain.model import Audio, Diagnostic, Transcript, TranscriptionHints


@attrs.frozen
class UnavailableTranscriber:
    """
    Refuses every clip with *reason* and *fix*, so the user learns what to do instead of hearing "no speech".

    Raises (from ``transcribe``): TranscriptionError, always.
    """

    reason: str
    fix: str

    async def transcribe(self, audio: Audio, hints: TranscriptionHints | None = None, /) -> Transcript:
        raise TranscriptionError(f"Speech to text is not available here: {self.reason}. To fix it: {self.fix}.")

    async def diagnose(self) -> Sequence[Diagnostic]:
        return [Diagnostic("speech to text", ok=False, detail=self.reason, fix=self.fix)]


__all__ = ["UnavailableTranscriber"]
