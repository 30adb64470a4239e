"""
Long notes cut into windows: are words lost at the cuts? Tuning clips only (never the held-out set).

Long notes are made by joining consecutive tuning clips with pauses, alternately 0.5 s (the loudness gate keeps
it inside one span, so the note is cut at `slice_ends`' quietest frame) and 1.2 s (a pause the gate shortens,
where spans end), ``--join`` clips per note; the 40 s fixture note is decoded too. Every variant decodes every
note in one process (one model load, code-aware as the bot runs, language "en"); decoding is deterministic, so
the WERs are comparable side by side, and CPU-seconds per audio-second are printed with the load average.

Variants are ``name:key=value,...`` with ``windows`` (encoder windows in seconds, ``20/30`` by default) and
``limit`` (the most speech per window in seconds; the engine's own, `whisper_window.window_speech_s`, unless
given: ``30`` is how sized windows were packed before ADR 0018's follow-up 5) and ``lead`` (seconds of silence
before the speech, `whisper_window.LEAD_FRAMES`).

Run: ``.venv/bin/python bench/stt_cut.py [--join 12] [--errors] full:windows=30 sized:windows=20/30``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE.parent.parent))

from bench.stt import CORPUS, heard, materialise  # noqa: E402
from bench.stt_ab import parse_variant, word_errors  # noqa: E402
from bench.stt_normalise import corpus_wer  # noqa: E402


def wav(samples: Any) -> bytes:
    """16 kHz mono 16-bit WAV of float32 *samples*."""
    import numpy as np  # noqa: PLC0415

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def long_notes(join: int) -> list[tuple[str, bytes, float]]:
    """(reference, audio, seconds) of the long notes: joined tuning clips, then the 40 s fixture note."""
    import numpy as np  # noqa: PLC0415

    from voicecoder.adapters.stt.local_whisper import _decode  # noqa: PLC0415
    from voicecoder.testing.voice_clips import LONG_CLIP, voice_clip  # noqa: PLC0415

    folder = CORPUS / "tuning"
    clips = json.loads((folder / "transcripts.json").read_text(encoding="utf-8"))["clips"]
    notes = []
    for start in range(0, len(clips) - join + 1, join):
        parts, texts = [], []
        for index, clip in enumerate(clips[start : start + join]):
            if index:
                parts.append(np.zeros(int((0.5 if index % 2 else 1.2) * 16_000), dtype=np.float32))
            parts.append(_decode((folder / clip["file"]).read_bytes()))
            texts.append(clip["text"])
        note = np.concatenate(parts)
        notes.append((" ".join(texts), wav(note), len(note) / 16_000))
    long_clip = voice_clip(LONG_CLIP)
    notes.append((long_clip.text, long_clip.read(), float(long_clip.duration_s or 0.0)))
    return notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--join", type=int, default=12, help="tuning clips per long note")
    parser.add_argument("--errors", action="store_true", help="print each note's word errors per variant")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import anyio  # noqa: PLC0415

    from voicecoder.adapters.stt import (  # noqa: PLC0415
        CodeAwareTranscriber,
        LocalWhisperTranscriber,
        WorkspaceVocabulary,
        local_whisper,
        speech_spans,
        whisper_window,
    )
    from voicecoder.domain.model import Audio, TranscriptionHints  # noqa: PLC0415

    meta = json.loads((CORPUS / "tuning" / "transcripts.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        materialise(meta["workspace"], Path(tmp) / "project")
        names = WorkspaceVocabulary(Path(tmp) / "project").scan()
    notes = long_notes(args.join)
    lead_s = whisper_window.LEAD_FRAMES / 100
    engine = LocalWhisperTranscriber()
    engine.load()
    audio_s = 0.0
    results: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()[0]
    for name, settings in (parse_variant(v) for v in args.variants):
        whisper = LocalWhisperTranscriber(
            encoder_windows=tuple(int(float(s) * 100) for s in settings.get("windows", "20/30").split("/"))
        )
        whisper._engine = engine._engine
        whisper_window.LEAD_FRAMES = round(float(settings.get("lead", lead_s)) * 100)

        def cut(samples: Any, limit_s: float, settings: dict[str, str] = settings) -> Any:
            return speech_spans.speech_windows(samples, float(settings.get("limit", limit_s)))

        local_whisper._speech_windows = cut  # type: ignore[attr-defined,assignment]
        aware = CodeAwareTranscriber(whisper)
        pairs: list[tuple[str, str]] = []
        cpu0 = time.process_time()
        audio_s = 0.0

        async def run(aware: Any = aware, pairs: list[tuple[str, str]] = pairs) -> float:
            seconds = 0.0
            for reference, data, duration in notes:
                text = await heard(aware, Audio(data), TranscriptionHints(keyterms=names, language="en"))
                pairs.append((reference, text))
                seconds += duration
            return seconds

        audio_s = anyio.run(run)
        results[name] = {
            "wer": corpus_wer(pairs),
            "cpu": (time.process_time() - cpu0) / audio_s,
            "guard": whisper.guard_redecodes,
            "pairs": pairs,
        }
    print(f"long notes: {len(notes)} ({args.join} tuning clips each, then the 40 s fixture note), {audio_s:.0f} s")
    print(f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}")
    print(f"{'variant':<16} {'WER':>6} {'CPU-s/s':>8} {'guard':>5}")
    for name, result in results.items():
        print(f"{name:<16} {result['wer']:>6.3f} {result['cpu']:>8.3f} {result['guard']:>5}")
    if args.errors:
        for index in range(len(notes)):
            print(f"note {index + 1}")
            for name, result in results.items():
                reference, text = result["pairs"][index]
                print(f"  {name:<12} {'; '.join(word_errors(reference, text)) or 'no errors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
