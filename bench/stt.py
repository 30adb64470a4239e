"""
Speech-to-text benchmark: the embedded engine on the held-out corpus of unseen voices, per voice and overall.

The corpus (``bench/stt_corpus/heldout``, made by ``bench/make_stt_corpus.py``) is 50 coding requests spoken by
10 espeak-ng voices and variants at 130-190 wpm that no setting was tuned on; ``heldout2`` is a second such set
written later from the same recipe (nobody has seen its errors), and ``all-heldout`` runs both in one process
and reports each and both together. Each set's synthetic project (the files and functions the requests name,
and distractors) is materialised as a git workspace, so the hints come from the real `WorkspaceVocabulary`
scan, as in the bot.

One child process per engine (so its peak RSS is its own VmHWM) loads `LocalWhisperTranscriber` and runs every
clip twice: *plain* (language "en", no hints: the engine alone) and *code-aware* (`CodeAwareTranscriber`: the
coding vocabulary and the workspace's names as hints, plus the spoken-forms post-pass: what the bot runs).
It prints, per voice and overall: WER of both (scored with `bench.stt_normalise`, Whisper's English-normaliser
conventions; the code-aware WER also with the fixtures' older, narrower normalisation for comparison), wall
RTF and CPU-seconds per audio-second of the code-aware run (model load excluded, OGG decode included), and
the child's peak RSS; plus the ten project fixture clips and the 40 s note for comparison with earlier figures.
The load average is printed because the machine is shared: wall RTF drifts with it, CPU-s per audio-s much less.

Targets (2 cores): corpus WER ≤ 0.20, wall RTF ≤ 0.3, peak RSS ≤ 400 MB.

Run: ``.venv/bin/python bench/stt.py [--engines base] [--set heldout|heldout2|all-heldout|tuning|tuning2|tuning-all]
[--window full|sized] [--json] [--save FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE.parent.parent))

from bench.stt_normalise import corpus_wer  # noqa: E402
from voicecoder.testing.voice_clips import SHORT_CLIPS, voice_clip  # noqa: E402
from voicecoder.testing.wer import corpus_wer as fixture_wer  # noqa: E402

TARGET_WER = 0.20
TARGET_RTF = 0.3
TARGET_RSS_MB = 400.0
CORPUS = HERE.parent / "stt_corpus"
#: ``--set`` name -> the corpus folders it runs, in order.
SETS = {
    "heldout": ("heldout",),
    "heldout2": ("heldout2",),
    "all-heldout": ("heldout", "heldout2"),
    "tuning": ("tuning",),
    "tuning2": ("tuning2",),
    "tuning-all": ("tuning", "tuning2"),
}
#: The ``--set`` names of clips settings may be tuned on (`bench/stt_ab.py` runs these).
TUNING_SETS = ("tuning-all", "tuning", "tuning2")


def own_peak_mb() -> float | None:
    """This process's peak RSS (VmHWM) in MB, or None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def materialise(workspace: dict[str, Any], root: Path) -> None:
    """The corpus's synthetic project as a git repository: its files, functions and branches."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", workspace["branches"][0]], cwd=root, check=True, env=env)
    for name in workspace["files"]:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        symbols = workspace["symbols"].get(name, [])
        lines = [f"class {s}:\n    pass\n" if s[:1].isupper() else f"def {s}():\n    pass\n" for s in symbols]
        path.write_text("\n".join(lines) or "placeholder\n")
    for branch in workspace["branches"][1:]:
        ref = root / ".git" / "refs" / "heads" / branch
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text("0" * 40 + "\n")


async def heard(transcriber: Any, audio: Any, hints: Any) -> str:
    """What *transcriber* heard; a note it heard no speech in scores as every word missed (not a crash)."""
    from voicecoder.domain.errors import NoSpeechError  # noqa: PLC0415

    try:
        return str((await transcriber.transcribe(audio, hints)).text)
    except NoSpeechError:
        return ""


def child(engine: str, corpus_set: str, window: str) -> dict[str, Any]:
    """Runs inside the child process: load the engine, transcribe every clip, return the measurements."""
    import anyio  # noqa: PLC0415

    from voicecoder.adapters.stt import CodeAwareTranscriber, LocalWhisperTranscriber, WorkspaceVocabulary  # noqa: PLC0415
    from voicecoder.adapters.stt.whisper_window import encoder_windows_named  # noqa: PLC0415
    from voicecoder.domain.model import Audio, TranscriptionHints  # noqa: PLC0415

    whisper = LocalWhisperTranscriber(model=engine, encoder_windows=encoder_windows_named(window))
    code_aware = CodeAwareTranscriber(whisper)
    started = time.perf_counter()
    whisper.load()
    load_s = time.perf_counter() - started
    clips: list[tuple[dict[str, Any], bytes, str, tuple[str, ...]]] = []
    terms: dict[str, int] = {}
    for name in SETS[corpus_set]:
        folder = CORPUS / name
        meta = json.loads((folder / "transcripts.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as tmp:  # each set hears the names of its own project
            materialise(meta["workspace"], Path(tmp) / "project")
            names = WorkspaceVocabulary(Path(tmp) / "project").scan()
        terms[name] = len(names)
        clips += [(c, (folder / c["file"]).read_bytes(), name, names) for c in meta["clips"]]
    # The fixtures hear the last set's workspace names (held-out 2's under all-heldout, as under --set heldout2).
    for name in (*SHORT_CLIPS, "long_all10.ogg"):
        clip = voice_clip(name)
        entry = {"file": name, "text": clip.text, "voice": "fixtures (en-us)", "duration_s": clip.duration_s}
        clips.append((entry, clip.read(), "fixtures", names))
    rows: list[dict[str, Any]] = []

    async def run_all() -> None:
        for clip, data, group, names in clips:
            plain = await heard(whisper, Audio(data), TranscriptionHints(language="en"))
            wall0, cpu0 = time.perf_counter(), time.process_time()
            aware = await heard(code_aware, Audio(data), TranscriptionHints(keyterms=names, language="en"))
            rows.append(
                {
                    "group": group,
                    "file": clip["file"],
                    "voice": clip["voice"],
                    "audio_s": clip["duration_s"],
                    "wall_s": time.perf_counter() - wall0,
                    "cpu_s": time.process_time() - cpu0,
                    "reference": clip["text"],
                    "plain": plain,
                    "aware": aware,
                }
            )

    anyio.run(run_all)
    return {"engine": engine, "load_s": load_s, "rows": rows, "vm_hwm_mb": own_peak_mb(), "terms": terms}


def run_engine(engine: str, corpus_set: str, window: str) -> dict[str, Any] | str:
    """Run *engine* in a child process; its result, or why it could not run."""
    # No allocator settings here: the engine sets its own (local_whisper._bound_allocators), as in the bot.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    env.pop("MALLOC_ARENA_MAX", None)
    env.pop("MKL_DISABLE_FAST_MM", None)
    proc = subprocess.run(
        [sys.executable, str(HERE), "--child", engine, "--set", corpus_set, "--window", window],
        capture_output=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        last = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return last[-1] if last else f"exit status {proc.returncode}"
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    audio = sum(r["audio_s"] for r in rows)
    return {
        "clips": len(rows),
        "wer_plain": corpus_wer((r["reference"], r["plain"]) for r in rows),
        "wer_aware": corpus_wer((r["reference"], r["aware"]) for r in rows),
        "wer_aware_fixture": fixture_wer((r["reference"], r["aware"]) for r in rows),
        "rtf": sum(r["wall_s"] for r in rows) / audio,
        "cpu_per_audio_s": sum(r["cpu_s"] for r in rows) / audio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--engines", default="base", help="comma-separated local models")
    parser.add_argument(
        "--set", default="heldout", choices=tuple(SETS), help="which corpus (all-heldout: both held-out sets)"
    )
    parser.add_argument(
        "--window", default="sized", choices=("full", "sized"), help="the encoder-window policy (WHISPER_WINDOW)"
    )
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--save", type=Path, help="also write the measurements (every transcript) to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.set, args.window)))
        return 0
    load_before = os.getloadavg()
    results = {}
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        results[engine] = run_engine(engine, args.set, args.window)
    if args.save:
        args.save.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    load_after = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}  load average before/after: {load_before[0]:.1f}/{load_after[0]:.1f}  "
        f"corpus: {args.set}  WHISPER_WINDOW={args.window}  targets: WER <= {TARGET_WER}, wall RTF <= {TARGET_RTF}, "
        f"peak RSS <= {TARGET_RSS_MB:.0f} MB"
    )
    for engine, outcome in results.items():
        if isinstance(outcome, str):
            print(f"{engine}: not run: {outcome}")
            continue
        several = len(SETS[args.set]) > 1
        by_voice: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in outcome["rows"]:
            by_voice[
                f"{row['group']} {row['voice']}" if several and row["group"] != "fixtures" else row["voice"]
            ].append(row)
        header = (
            f"{'voice':<24} {'clips':>5} {'WER plain':>10} {'WER code-aware':>15} {'(fixture norm.)':>16} "
            f"{'RTF':>6} {'CPU-s/s':>8}"
        )
        terms = ", ".join(f"{n} {c}" for n, c in outcome["terms"].items())
        print(f"\n{engine}: model load {outcome['load_s']:.2f} s, workspace terms: {terms}")
        print(header)
        print("-" * len(header))
        corpus_rows = [r for r in outcome["rows"] if r["group"] != "fixtures"]
        for voice, rows in sorted(by_voice.items(), key=lambda item: (item[0].startswith("fixtures"), item[0])):
            s = summarise(rows)
            print(
                f"{voice:<24} {s['clips']:>5.0f} {s['wer_plain']:>10.3f} {s['wer_aware']:>15.3f} "
                f"{s['wer_aware_fixture']:>16.3f} {s['rtf']:>6.3f} {s['cpu_per_audio_s']:>8.3f}"
            )
        total = summarise(corpus_rows)
        peak = outcome["vm_hwm_mb"] or 0.0
        print("-" * len(header))
        for name in SETS[args.set] if several else ():
            s = summarise([r for r in corpus_rows if r["group"] == name])
            print(
                f"{name + ' overall':<24} {s['clips']:>5.0f} {s['wer_plain']:>10.3f} {s['wer_aware']:>15.3f} "
                f"{s['wer_aware_fixture']:>16.3f} {s['rtf']:>6.3f} {s['cpu_per_audio_s']:>8.3f}"
            )
        print(
            f"{args.set + ' overall':<24} {total['clips']:>5.0f} {total['wer_plain']:>10.3f} "
            f"{total['wer_aware']:>15.3f} {total['wer_aware_fixture']:>16.3f} {total['rtf']:>6.3f} "
            f"{total['cpu_per_audio_s']:>8.3f}   peak RSS {peak:.0f} MB"
        )
        met = total["wer_aware"] <= TARGET_WER and total["rtf"] <= TARGET_RTF and peak <= TARGET_RSS_MB
        print(f"verdict: {'meets the targets' if met else 'MISSES a target'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
