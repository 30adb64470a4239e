"""
Offline N-best rescoring on the tuning clips: how `hypothesis_bias` would choose, for a grid of bonus and cap.

Decoding is deterministic and the bias only chooses among the beam's finished hypotheses, so one decode of the
tuning clips with every hypothesis kept (``bench/stt_ab.py --dump FILE nbest:nbest=1``) answers every setting:
each window's choice is made again here, the clip's windows joined, the spoken-forms post-pass applied with the
clip's own workspace names, as `CodeAwareTranscriber` does. Printed per setting: WER (bench scoring and the
fixtures' previous one) per tuning set and in all, and how many windows changed choice. ``--show B,C`` lists the
changed windows of one setting (tuning clips only: never run this on a held-out dump).

Run: ``.venv/bin/python bench/stt_nbest.py /tmp/dump.json [--variant nbest] [--show 0.1,0.1]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))
sys.path.insert(0, str(HERE.parent.parent))

from bench.stt import CORPUS, SETS, materialise  # noqa: E402
from bench.stt_normalise import corpus_wer  # noqa: E402
from voicecoder.adapters.stt.code_vocabulary import apply_spoken_forms, recognizer_terms  # noqa: E402
from voicecoder.adapters.stt.hypothesis_bias import HypothesisBias  # noqa: E402
from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary  # noqa: E402
from voicecoder.testing.wer import corpus_wer as fixture_wer  # noqa: E402

BONUSES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
CAPS = (1, 2, 3)  # in bonuses


def clip_sets(corpus_set: str) -> list[tuple[str, tuple[str, ...]]]:
    """(set name, workspace names) per clip, in the order `bench/stt_ab.py` ran them."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for name in SETS[corpus_set]:
        meta = json.loads((CORPUS / name / "transcripts.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as tmp:
            materialise(meta["workspace"], Path(tmp) / "project")
            names = WorkspaceVocabulary(Path(tmp) / "project").scan()
        out += [(name, names)] * len(meta["clips"])
    return out


def rescored(
    clips: dict[str, Any], sets: list[tuple[str, tuple[str, ...]]], bonus: float, cap: float
) -> tuple[list[tuple[str, str, str]], list[tuple[int, str, str]]]:
    """((set, reference, text) per clip, (clip, was, now) per changed window) under one setting."""
    rows, changed = [], []
    paired = zip(clips["pairs"], clips["windows"], sets, strict=True)
    for index, ((reference, _), windows, (name, names)) in enumerate(paired):
        bias = HypothesisBias.of(recognizer_terms(names), bonus=bonus, cap=cap)
        texts = []
        for window in windows:
            hypotheses = [(text, score) for text, score in window["hypotheses"]]
            chosen = bias.choose(hypotheses)
            if chosen:
                changed.append((index, hypotheses[0][0], hypotheses[chosen][0]))
            texts.append(hypotheses[chosen][0])
        rows.append((name, reference, apply_spoken_forms(" ".join(t for t in texts if t).strip(), names)))
    return rows, changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("dump", type=Path)
    parser.add_argument("--variant", default="nbest")
    parser.add_argument("--set", default="tuning-all")
    parser.add_argument("--show", help="bonus,cap: list the windows whose choice this setting changes")
    args = parser.parse_args()
    run = json.loads(args.dump.read_text())[args.variant]
    clips = {"pairs": run["pairs"], "windows": run["windows"]}
    sets = clip_sets(args.set)
    names = SETS[args.set]
    print(f"{'bonus':>6} {'cap':>6} " + " ".join(f"{n + ' WER (prev)':>22}" for n in (*names, "all")) + "  changed")
    for bonus in BONUSES:
        for times in CAPS if bonus else (1,):
            rows, changed = rescored(clips, sets, bonus, bonus * times)
            cells = []
            for name in (*names, "all"):
                pairs = [(ref, text) for group, ref, text in rows if name in {"all", group}]
                cells.append(f"{corpus_wer(pairs):.3f} ({fixture_wer(pairs):.3f})")
            print(f"{bonus:>6.3f} {bonus * times:>6.3f} " + " ".join(f"{c:>22}" for c in cells) + f"  {len(changed)}")
    if args.show:
        bonus, cap = (float(v) for v in args.show.split(","))
        rows, changed = rescored(clips, sets, bonus, cap)
        for index, was, now in changed:
            print(f"#{index + 1} {rows[index][1]!r}\n   was {was!r}\n   now {now!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
