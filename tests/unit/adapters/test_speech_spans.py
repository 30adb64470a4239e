"""The local engine's loudness gate: where the speech is, on real clips and on clips with silence, hiss and clicks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy", reason="numpy comes with the local-stt extra (faster-whisper)")
pytest.importorskip("av", reason="PyAV comes with the local-stt extra (faster-whisper)")

from voicecoder.adapters.stt.local_whisper import _decode  # noqa: E402
from voicecoder.adapters.stt.speech_spans import RATE, slice_ends, speech_spans, speech_windows  # noqa: E402

VOICE = Path(__file__).resolve().parents[2] / "fixtures" / "voice"


def clip(name: str) -> Any:
    return _decode((VOICE / name).read_bytes())


def silence(seconds: float) -> Any:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


def hiss(seconds: float, dbfs: float, seed: int = 0) -> Any:
    """White noise whose RMS is *dbfs*."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def covered(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def test_digital_silence_is_no_speech() -> None:
    """The silent fixture gives no span, so the engine is never run on it."""
    assert speech_spans(clip("silence_2s.ogg")) == []
    assert speech_windows(clip("silence_2s.ogg")) == []


def test_quiet_hiss_is_no_speech() -> None:
    """Steady hiss at -55 dBFS (a quiet room) is silence, not speech."""
    assert speech_spans(hiss(3.0, -55.0)) == []


@pytest.mark.parametrize("dbfs", [-40.0, -20.0])
def test_steady_noise_is_no_speech_at_any_level(dbfs: float) -> None:
    """Loud steady hiss (a fan, a bad line) has no syllables: no speech, so Whisper never hallucinates on it."""
    assert speech_spans(hiss(4.0, dbfs, seed=1)) == []


def test_a_click_is_no_speech() -> None:
    """A 40 ms tap on the microphone in a silent note is not speech."""
    note = silence(3.0)
    note[RATE : RATE + 640] = 0.5
    assert speech_spans(note) == []


def test_empty_and_tiny_inputs() -> None:
    """No samples, or fewer than one frame, is no speech rather than an error."""
    assert speech_spans(np.zeros(0, dtype=np.float32)) == []
    assert speech_spans(np.ones(100, dtype=np.float32) * 0.5) == []


def test_short_note_kept_whole() -> None:
    """A note that is speech from start to end is one span of the whole note, its fading edges included."""
    note = clip("01_create_file.ogg")
    assert speech_spans(note) == [(0, len(note))]


def test_leading_and_trailing_silence_trimmed() -> None:
    """Seconds of silence around the words are dropped, the words and 0.4 s around them are kept."""
    words = clip("03_run_tests.ogg")
    note = np.concatenate([silence(3.0), words, silence(4.0)])

    [(start, end)] = speech_spans(note)

    assert 2.5 * RATE <= start <= 3 * RATE
    assert 3 * RATE + len(words) <= end <= 3.5 * RATE + len(words)


def test_long_pause_shortened_and_both_parts_kept() -> None:
    """A 5 s pause between two requests becomes at most 0.8 s; every word of both is inside a span."""
    first, second = clip("03_run_tests.ogg"), clip("06_commit.ogg")
    note = np.concatenate([first, silence(5.0), second])
    second_at = len(first) + 5 * RATE

    spans = speech_spans(note)

    assert len(spans) == 2
    assert covered(spans, 0, len(first) - RATE // 10)
    assert covered(spans, second_at + RATE // 10, len(note))
    kept_pause = sum(end - start for start, end in spans) - len(first) - len(second)
    assert kept_pause <= 0.8 * RATE + 2 * 320


def test_speech_over_hiss_found_and_hiss_alone_dropped() -> None:
    """Words over -45 dBFS hiss are found; the hiss-only stretch after them is not speech."""
    words = clip("06_commit.ogg")
    note = hiss(len(words) / RATE + 4.0, -45.0)
    note[: len(words)] += words

    spans = speech_spans(note)

    audible = np.flatnonzero(np.abs(words) > 0.01)  # the words themselves, without the clip's quiet ends
    assert covered(spans, int(audible[0]), int(audible[-1]))
    assert sum(end - start for start, end in spans) < len(words) + RATE


def test_spans_sorted_disjoint_and_inside_the_note() -> None:
    """Spans come in order, do not overlap, and stay inside the samples."""
    note = clip("long_all10.ogg")
    spans = speech_spans(note)
    flat = [edge for span in spans for edge in span]
    assert flat == sorted(flat)
    assert all(a < b for a, b in spans)
    assert flat[0] >= 0
    assert flat[-1] <= len(note)


def test_long_note_split_into_whisper_windows() -> None:
    """A 100 s note becomes windows of at most 30 s of speech that keep almost all of the audio."""
    note = np.tile(clip("long_all10.ogg"), 3)[: 100 * RATE]

    windows = speech_windows(note)

    lengths = [sum(end - start for start, end in window) for window in windows]
    assert len(windows) >= 4
    assert all(length <= 30 * RATE for length in lengths)
    assert sum(lengths) > 0.8 * len(note)
    spans = [span for window in windows for span in window]
    assert spans == sorted(spans)


def test_a_shorter_limit_regroups_the_same_spans_at_their_pauses() -> None:
    """
    The 40 s note at the sized windows' 19 s limit: the same speech as at 30 s, every window ≤ 19 s, and each
    window ends where the gate found a pause (a span's end), never inside a span.
    """
    note = clip("long_all10.ogg")

    at_30 = speech_windows(note)
    at_19 = speech_windows(note, 19)

    assert [len(w) for w in at_30] == [8, 2]
    assert len(at_19) == 3
    assert all(0 < sum(end - start for start, end in window) <= 19 * RATE for window in at_19)
    assert [span for window in at_19 for span in window] == speech_spans(note)


@pytest.mark.parametrize("limit_s", [30, 19])
def test_unbroken_speech_longer_than_a_window_cut_in_a_pause(limit_s: int) -> None:
    """Speech with no pause long enough to drop is still cut into windows of the limit, each cut in a quiet frame."""
    note = np.tile(clip("01_create_file.ogg"), 20)  # ~83 s, pauses between repeats < 0.8 s

    windows = speech_windows(note, limit_s)

    spans = [span for window in windows for span in window]
    assert len(windows) >= 83 // limit_s + 1
    assert all(sum(end - start for start, end in window) <= limit_s * RATE for window in windows)
    assert sum(end - start for start, end in spans) == len(note)
    loudness = float(np.sqrt(np.mean(np.square(note))))
    for _, end in spans[:-1]:
        around = note[end - 160 : end + 160]
        assert float(np.sqrt(np.mean(np.square(around)))) < 0.05 * loudness


def test_slices_cut_in_pauses() -> None:
    """Slices are at most 30 s and end in a pause, not in the middle of a word."""
    note = np.tile(clip("long_all10.ogg"), 3)[: 100 * RATE]

    ends = slice_ends(note)

    starts = [0, *ends[:-1]]
    assert ends[-1] == len(note)
    assert all(0 < end - start <= 30 * RATE for start, end in zip(starts, ends, strict=True))
    loudness = float(np.sqrt(np.mean(np.square(note))))
    for end in ends[:-1]:
        around = note[end - 160 : end + 160]
        assert float(np.sqrt(np.mean(np.square(around)))) < 0.05 * loudness


@pytest.mark.parametrize("limit_s", [1.0, 0.5])
def test_a_limit_shorter_than_the_search_still_cuts_forward(limit_s: float) -> None:
    """Pieces of at most the limit, each ending after the last: the search never reaches before a piece's start."""
    note = clip("03_run_tests.ogg")

    ends = slice_ends(note, limit_s)

    starts = [0, *ends[:-1]]
    assert ends[-1] == len(note)
    assert all(0 < end - start <= limit_s * RATE for start, end in zip(starts, ends, strict=True))


def test_the_engine_path_never_imports_onnxruntime() -> None:
    """Finding speech and importing the engine's modules leave onnxruntime (Silero VAD's runtime) unloaded."""
    pytest.importorskip("faster_whisper", reason="faster-whisper (the local-stt extra) is not installed")
    script = (
        "import sys\n"
        "import faster_whisper\n"
        "from voicecoder.adapters.stt import local_whisper\n"
        "from pathlib import Path\n"
        f"samples = local_whisper._decode(Path({str(VOICE / '03_run_tests.ogg')!r}).read_bytes())\n"
        "assert local_whisper._speech_windows(samples)\n"
        "print('onnxruntime' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
