"""
The voice clips voicecoder ships for tests (``voicecoder/testing/data/voice``) and their reference transcripts.

The `TranscriberContract` measures accuracy on them; a provider's own tests and ``bench/stt.py`` read them here.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Any

import attrs

from voicecoder.domain.model import Audio, TranscriptionHints

__all__ = [
    "HINT_CLIP",
    "LONG_CLIP",
    "OTHER_LANGUAGE_CLIPS",
    "SHORT_CLIPS",
    "TOO_LONG_CLIP",
    "VoiceClip",
    "voice_clip",
    "voice_clips",
]

_DATA = "data/voice"


@attrs.frozen
class VoiceClip:
    """One shipped fixture clip and its reference transcript."""

    file: str
    kind: str
    language: str | None
    text: str
    sha256: str
    duration_s: float | None
    hint: str | None = None

    def read(self) -> bytes:
        data = resources.files("voicecoder.testing").joinpath(f"{_DATA}/{self.file}").read_bytes()
        return gzip.decompress(data) if self.file.endswith(".gz") else data

    def audio(self) -> Audio:
        return Audio(data=self.read(), mime_type="audio/ogg", filename=self.file.removesuffix(".gz"))

    @property
    def hints(self) -> TranscriptionHints:
        return TranscriptionHints(language=self.language)


@functools.cache
def voice_clips() -> dict[str, VoiceClip]:
    """The shipped clips by file name (only those present in the package data)."""
    folder = resources.files("voicecoder.testing").joinpath(_DATA)
    meta: dict[str, Any] = json.loads(folder.joinpath("transcripts.json").read_text(encoding="utf-8"))
    clips: dict[str, VoiceClip] = {}
    for entry in meta["clips"]:
        if not folder.joinpath(entry["file"]).is_file():
            continue
        clips[entry["file"]] = VoiceClip(
            file=entry["file"],
            kind=entry["kind"],
            language=entry.get("language"),
            text=entry.get("text") or "",
            sha256=entry.get("sha256") or "",
            duration_s=entry.get("duration_s"),
            hint=entry.get("hint"),
        )
    return clips


def voice_clip(name: str) -> VoiceClip:
    """A shipped clip by file name, e.g. ``"03_run_tests.ogg"``."""
    return voice_clips()[name]


SHORT_CLIPS = (
    "01_create_file.ogg",
    "02_check_workspace.ogg",
    "03_run_tests.ogg",
    "04_list_python.ogg",
    "05_add_function.ogg",
    "06_commit.ogg",
    "07_show_log.ogg",
    "08_rename_variable.ogg",
    "09_install_requests.ogg",
    "10_delete_build.ogg",
)
OTHER_LANGUAGE_CLIPS = ("de_create_file.ogg", "es_run_tests.ogg", "fr_check_workspace.ogg")
HINT_CLIP = "hint_quillmesh.ogg"
LONG_CLIP = "long_all10.ogg"
TOO_LONG_CLIP = "silence_605s.ogg.gz"
