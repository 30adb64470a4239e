"""
Where the speech is in a voice note, from its loudness alone: the local engine's voice activity detection.

Whisper needs no VAD to recognise words; it is used here to (1) tell an empty note from speech without
running the model, (2) drop leading and trailing silence and shorten long pauses, and (3) cut notes
longer than Whisper's 30 s window in pauses, so every window holds whole words. A loudness gate does all
three for voice notes, which are recorded close to the microphone. Silero VAD (faster-whisper's
``vad_filter``) did the same with an ONNX model: +30-35 MB peak memory per process and onnxruntime's import,
for no better words on the tuning clips (ADR 0018, follow-up 2).

The gate adapts to the note: a frame is speech when it is louder than the note's own noise floor by a
margin, and never quieter than an absolute floor, so quiet hiss and digital silence are both silence; a
note without the rise and fall of syllables (steady hiss or hum at any level) is no speech at all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RATE", "WINDOW_S", "slice_ends", "speech_spans", "speech_windows"]

RATE = 16_000
#: Whisper decodes 30 s windows.
WINDOW_S = 30
#: 20 ms frames: short enough to find the gap between words, long enough to average out a waveform.
_FRAME = RATE // 50
#: Nothing quieter than this is speech, whatever the note (dBFS of a 20 ms frame).
_ABSOLUTE_FLOOR_DB = -50.0
#: Speech is at least this much louder than the note's quietest tenth (its noise floor)…
_ABOVE_NOISE_DB = 10.0
#: …but the gate never asks more than this below the note's loud frames, so soft syllables still count.
_BELOW_PEAK_DB = 25.0
#: Speech rises and falls syllable by syllable; a note whose loud frames are within this of its quiet ones
#: is a steady sound (hiss, hum, a fan), whatever its level.
_MIN_RANGE_DB = 10.0
#: Speech kept around each loud run, as faster-whisper's VAD pads (400 ms): word onsets and fading ends.
_PAD_FRAMES = 20
#: Loud runs shorter than this (a click, a tap on the phone) are not speech on their own.
_MIN_RUN_FRAMES = 5
#: A note needs this much loud audio in all to be speech at all (a short "yes" is ~0.3 s).
_MIN_SPEECH_FRAMES = 8
#: Where a span longer than a window is cut: the quietest frame of the last 2 s before the 30 s mark.
_CUT_SEARCH = 2 * RATE


def _frame_levels(samples: Any) -> Any:
    """Loudness of each 20 ms frame of *samples*, in dBFS (-120 for digital silence)."""
    import numpy as np  # noqa: PLC0415 - comes with faster-whisper

    usable = len(samples) // _FRAME * _FRAME
    frames = samples[:usable].reshape(-1, _FRAME)
    power = np.einsum("ij,ij->i", frames, frames) / _FRAME
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def _runs(mask: Any) -> list[tuple[int, int]]:
    """The [start, end) frame ranges where *mask* is true."""
    import numpy as np  # noqa: PLC0415

    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def speech_spans(samples: Any) -> list[tuple[int, int]]:
    """
    The speech in *samples* (16 kHz mono float32) as sorted, disjoint sample spans; [] for silence.

    Each loud run is padded by 400 ms and runs whose padding touches are merged, so a pause longer than
    0.8 s is shortened to 0.8 s and shorter pauses are kept as spoken.
    """
    import numpy as np  # noqa: PLC0415

    levels = _frame_levels(samples)
    if len(levels) == 0:
        return []
    noise = float(np.percentile(levels, 10))
    loud = float(np.percentile(levels, 98))
    if loud - noise < _MIN_RANGE_DB:
        return []
    gate = max(_ABSOLUTE_FLOOR_DB, min(noise + _ABOVE_NOISE_DB, loud - _BELOW_PEAK_DB))
    runs = [(a, b) for a, b in _runs(levels > gate) if b - a >= _MIN_RUN_FRAMES]
    if sum(b - a for a, b in runs) < _MIN_SPEECH_FRAMES:
        return []
    mask = np.zeros(len(levels), dtype=bool)
    for start, end in runs:
        mask[max(0, start - _PAD_FRAMES) : end + _PAD_FRAMES] = True
    spans = [(a * _FRAME, b * _FRAME) for a, b in _runs(mask)]
    # Silence at either edge no longer than the padding stays: cutting a note's last 100 ms of fading
    # voice changed Whisper's words on the tuning clips ("pytest" → "by test"); trimming it buys nothing.
    edge = _PAD_FRAMES * _FRAME
    if spans[0][0] <= edge:
        spans[0] = (0, spans[0][1])
    if len(samples) - spans[-1][1] <= edge:
        spans[-1] = (spans[-1][0], len(samples))
    return spans


def slice_ends(samples: Any, limit_s: float = WINDOW_S) -> list[int]:
    """
    Where to cut *samples* into pieces of at most *limit_s*: at the quietest 20 ms of the last 2 s before each mark.

    Cutting in a pause keeps words whole when a cut becomes a window boundary. *limit_s* is at least 20 ms.
    """
    import numpy as np  # noqa: PLC0415

    limit = int(limit_s * RATE)
    ends: list[int] = []
    start = 0
    while len(samples) - start > limit:
        mark = start + limit
        # A limit under 2 s searches the whole piece (never before its start).
        low = max(start, mark - _CUT_SEARCH)
        region = samples[low:mark]
        energy = np.square(region[: len(region) // _FRAME * _FRAME].reshape(-1, _FRAME)).mean(axis=1)
        cut = low + int(np.argmin(energy)) * _FRAME + _FRAME // 2
        ends.append(cut)
        start = cut
    ends.append(len(samples))
    return ends


def speech_windows(samples: Any, limit_s: float = WINDOW_S) -> list[list[tuple[int, int]]]:
    """
    The speech in *samples* as groups of sample spans, each group at most *limit_s* of audio: Whisper's windows.

    A span longer than the limit is first cut in its pauses (`slice_ends`); spans are then packed in order.
    Packing as evenly as the pauses allow instead (so every window had room for the lead) lost about as many
    words on long notes made of tuning clips and one more on the 40 s fixture note (ADR 0018, follow-up 5).
    """
    limit = int(limit_s * RATE)
    windows: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    length = 0
    for first, last in speech_spans(samples):
        begin = first
        for end in slice_ends(samples[first:last], limit_s):
            span = (begin, first + end)
            begin = span[1]
            size = span[1] - span[0]
            if current and length + size > limit:
                windows.append(current)
                current, length = [], 0
            current.append(span)
            length += size
    if current:
        windows.append(current)
    return windows
