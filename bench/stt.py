"""
Speech-to-text benchmark: the local faster-whisper engines on the shipped voice fixtures.

Each engine runs in its own child process (so its peak RSS is its own, read with ``os.wait4``): the
child loads the model through `LocalWhisperTranscriber` (the adapter the bot uses: intake checks, PyAV
decode from the OGG bytes, VAD, beam 5, int8, 2 CPU threads), transcribes the ten short English clips
and the 40 s note with ``language="en"``, and reports per-clip wall and CPU seconds. The parent prints:

* WER (fixture normalisation) on the ten short clips (corpus) and on the long note;
* wall RTF = transcription wall time / audio time (model load excluded, OGG decode included);
* CPU-s per audio-s = process CPU time (all threads) / audio time;
* model load time and the child's peak RSS (its own VmHWM; ``wait4``'s ``ru_maxrss`` as a fallback).

Each engine runs twice by default: with glibc's default malloc arenas and with ``MALLOC_ARENA_MAX=2``
(worker threads otherwise get their own arenas, which costs about 40-60 MB of peak RSS on the 40 s note).

Targets (2 cores): wall RTF ≤ 0.3 on the short clips, peak RSS ≤ 400 MB.

``--long-s 590`` adds one synthetic note of that length (the 40 s fixture repeated, encoded with PyAV's
libopus) per engine, to check the memory ceiling near the 600 s duration limit.

Run: ``.venv/bin/python bench/stt.py [--engines base,tiny.en] [--long-s 590] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))

from voicecoder.testing.contracts.transcriber import SHORT_CLIPS, voice_clip  # noqa: E402
from voicecoder.testing.wer import corpus_wer, wer  # noqa: E402

TARGET_RTF = 0.3
TARGET_RSS_MB = 400.0
LONG_CLIP = "long_all10.ogg"


def own_peak_mb() -> float | None:
    """
    This process's peak RSS (VmHWM) in MB, or None off Linux.

    Preferred over the parent's ``ru_maxrss`` from ``wait4``: Linux carries the forked pre-exec copy of
    the parent into the child's maxrss, so a big parent would inflate the child's figure.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def child(engine: str) -> dict[str, Any]:
    """Runs inside the child process: load the engine, transcribe every clip, return the measurements."""
    import anyio  # noqa: PLC0415

    from voicecoder.adapters.local_whisper_transcriber import LocalWhisperTranscriber  # noqa: PLC0415
    from voicecoder.domain.model import TranscriptionHints  # noqa: PLC0415

    transcriber = LocalWhisperTranscriber(model=engine)
    started = time.perf_counter()
    transcriber.load()
    load_s = time.perf_counter() - started
    clips: list[dict[str, Any]] = []

    async def run_all() -> None:
        for name in (*SHORT_CLIPS, LONG_CLIP):
            clip = voice_clip(name)
            audio = clip.audio()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            result = await transcriber.transcribe(audio, TranscriptionHints(language="en"))
            clips.append(
                {
                    "file": name,
                    "audio_s": clip.duration_s,
                    "wall_s": time.perf_counter() - wall0,
                    "cpu_s": time.process_time() - cpu0,
                    "reference": clip.text,
                    "text": result.text,
                }
            )

    anyio.run(run_all)
    return {"engine": engine, "load_s": load_s, "clips": clips, "vm_hwm_mb": own_peak_mb()}


def stress_child(engine: str, path: str) -> dict[str, Any]:
    """Runs inside the child process: one long synthetic note, for the memory ceiling."""
    import anyio  # noqa: PLC0415

    from voicecoder.adapters.local_whisper_transcriber import LocalWhisperTranscriber  # noqa: PLC0415
    from voicecoder.domain.model import Audio, TranscriptionHints  # noqa: PLC0415

    transcriber = LocalWhisperTranscriber(model=engine)
    transcriber.load()
    audio = Audio(Path(path).read_bytes())
    started = time.perf_counter()
    result = anyio.run(transcriber.transcribe, audio, TranscriptionHints(language="en"))
    wall_s = time.perf_counter() - started
    return {"engine": engine, "wall_s": wall_s, "audio_s": result.duration_s, "vm_hwm_mb": own_peak_mb()}


def make_long_note(seconds: float, path: Path) -> None:
    """A synthetic OGG/Opus note of *seconds*: the 40 s fixture repeated (PyAV's libopus encoder)."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from voicecoder.adapters.local_whisper_transcriber import _decode  # noqa: PLC0415

    one = _decode(voice_clip(LONG_CLIP).read())
    samples = np.tile(one, int(seconds * 16_000 // len(one)) + 1)[: int(seconds * 16_000)]
    with av.open(str(path), "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = 16_000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def run_engine(engine: str, arena_max: str | None = None, stress: Path | None = None) -> dict[str, Any] | str:
    """Run *engine* in a child process (optionally with MALLOC_ARENA_MAX); its result, or why it could not run."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    env.pop("MALLOC_ARENA_MAX", None)
    if arena_max:
        env["MALLOC_ARENA_MAX"] = arena_max
    proc = subprocess.Popen(
        [sys.executable, str(HERE), "--child", engine, *(["--stress-file", str(stress)] if stress else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        last = err.decode("utf-8", "replace").strip().splitlines()
        return last[-1] if last else f"exit status {proc.returncode}"
    result: dict[str, Any] = json.loads(out)
    result["peak_rss_mb"] = result.get("vm_hwm_mb") or usage.ru_maxrss / 1024  # Linux reports KiB
    result["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    short = [c for c in result["clips"] if c["file"] in SHORT_CLIPS]
    long = next(c for c in result["clips"] if c["file"] == LONG_CLIP)
    audio = sum(c["audio_s"] for c in short)
    return {
        "engine": result["engine"],
        "wer_short": corpus_wer((c["reference"], c["text"]) for c in short),
        "wer_long": wer(long["reference"], long["text"]),
        "rtf_short": sum(c["wall_s"] for c in short) / audio,
        "cpu_per_audio_s": sum(c["cpu_s"] for c in short) / audio,
        "rtf_long": long["wall_s"] / long["audio_s"],
        "mean_clip_wall_s": sum(c["wall_s"] for c in short) / len(short),
        "load_s": result["load_s"],
        "peak_rss_mb": result["peak_rss_mb"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--engines", default="base,tiny.en", help="comma-separated local models")
    parser.add_argument(
        "--arena-max",
        default="2",
        help="also run each engine with this MALLOC_ARENA_MAX (glibc malloc arenas; '' to skip)",
    )
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument(
        "--long-s",
        type=float,
        default=0,
        help="also measure one synthetic note of this many seconds (e.g. 590, near the 600 s limit)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stress-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(stress_child(args.child, args.stress_file) if args.stress_file else child(args.child)))
        return 0

    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        for arena in [None, args.arena_max] if args.arena_max else [None]:
            outcome = run_engine(engine, arena)
            if isinstance(outcome, str):
                skipped[engine] = outcome
                break
            row = summarise(outcome)
            row["malloc_arena_max"] = arena or "default"
            rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows, "skipped": skipped}, indent=2))
        return 0

    print(f"cores: {os.cpu_count()}  targets: wall RTF <= {TARGET_RTF}, peak RSS <= {TARGET_RSS_MB:.0f} MB")
    header = (
        f"{'engine':<10} {'arenas':>7} {'WER 10':>7} {'WER long':>9} {'RTF':>6} {'CPU-s/s':>8} "
        f"{'RTF long':>9} {'s/clip':>7} {'load s':>7} {'RSS MB':>7}  verdict"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ok = row["rtf_short"] <= TARGET_RTF and row["peak_rss_mb"] <= TARGET_RSS_MB
        print(
            f"{row['engine']:<10} {row['malloc_arena_max']:>7} "
            f"{row['wer_short']:>7.3f} {row['wer_long']:>9.3f} {row['rtf_short']:>6.3f} "
            f"{row['cpu_per_audio_s']:>8.3f} {row['rtf_long']:>9.3f} {row['mean_clip_wall_s']:>7.2f} "
            f"{row['load_s']:>7.2f} {row['peak_rss_mb']:>7.0f}  {'meets targets' if ok else 'MISSES targets'}"
        )
    for engine, reason in skipped.items():
        print(f"{engine:<10} not run: {reason}")
    if args.long_s:
        with tempfile.TemporaryDirectory() as tmp:
            note = Path(tmp) / "long.ogg"
            make_long_note(args.long_s, note)
            for row in rows:
                arena = None if row["malloc_arena_max"] == "default" else row["malloc_arena_max"]
                outcome = run_engine(row["engine"], arena, note)
                if isinstance(outcome, str):
                    print(f"{row['engine']:<10} long note not run: {outcome}")
                    continue
                print(
                    f"{row['engine']:<10} {row['malloc_arena_max']:>7}  {outcome['audio_s']:.0f} s note: "
                    f"RTF {outcome['wall_s'] / outcome['audio_s']:.3f}, peak RSS {outcome['peak_rss_mb']:.0f} MB"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
