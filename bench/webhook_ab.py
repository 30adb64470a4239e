"""
Whole-bench A/B of source trees: ``bench/webhook.py`` rounds of each tree, interleaved, order alternating per pair.

On a shared machine two sittings are never comparable, so trees are compared round by round in one sitting: pair
*n* runs the trees in order, pair *n + 1* in reverse. Each round is ``webhook.py --no-aiogram --no-stt`` of that
tree (its own bot, its own fake Bot API, its own wrk run) and prints one line; the end prints per tree the median of
each figure and the rounds of the main figures, then per pair whether the last tree's CPU per update was lower.

Run: ``.venv/bin/python bench/webhook_ab.py OLD_TREE NEW_TREE [--pairs 4] [--duration 10]``; a TREE is a directory
with ``src/``, ``bench/`` and ``tests/fixtures`` (e.g. ``git archive`` of a commit, unpacked) whose ``.venv`` or, if
it has none, this checkout's ``.venv`` runs it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIGURES = (
    ("main_us_per_ack", "main µs/update", "{:.0f}"),
    ("writer_us_per_ack", "writer µs/update", "{:.1f}"),
    ("acks_per_cpu_s", "acks/bot CPU-s", "{:,.0f}"),
    ("acks_per_s", "acks/s", "{:,.0f}"),
    ("ack_p50_ms", "p50 ms", "{:.2f}"),
    ("ack_p99_ms", "p99 ms", "{:.2f}"),
    ("main_switches_per_ack", "switches/update", "{:.2f}"),
    ("writes_per_commit", "writes/commit", "{:.1f}"),
    ("load_avg", "load avg", "{:.1f}"),
    ("lost", "lost", "{:.0f}"),
    ("inversions", "inversions", "{:.0f}"),
)


def python_of(tree: Path) -> str:
    own = tree / ".venv" / "bin" / "python"
    return str(own if own.exists() else HERE.parent / ".venv" / "bin" / "python")


def one_round(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One ``webhook.py`` run of *tree*: its voicecoder results (``--json``)."""
    command = [
        python_of(tree),
        str(tree / "bench" / "webhook.py"),
        *("--no-aiogram", "--no-stt", "--json"),
        *("--duration", str(args.duration), "--low-load-count", str(args.low_load_count)),
    ]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, check=False)
    start = done.stdout.find('{\n  "results"')
    if done.returncode not in {0, 1} or start < 0:  # 1: a target missed, the figures are still printed
        raise SystemExit(f"{tree}: webhook.py failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    parsed, _ = json.JSONDecoder().raw_decode(done.stdout[start:])
    result: dict[str, Any] = parsed["results"]["voicecoder"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--low-load-count", type=int, default=20)
    args = parser.parse_args(argv)
    trees: list[Path] = [t.resolve() for t in args.trees]
    rounds: dict[Path, list[dict[str, Any]]] = {t: [] for t in trees}
    for pair in range(args.pairs):
        for tree in trees if pair % 2 == 0 else trees[::-1]:
            result = one_round(tree, args)
            rounds[tree].append(result)
            shown = "  ".join(f"{label} {fmt.format(result[key])}" for key, label, fmt in FIGURES)
            print(f"pair {pair + 1} {tree.name}: {shown}", flush=True)
    print(f"\nmedians of {args.pairs} interleaved rounds per tree:")
    for tree in trees:
        medians = "  ".join(
            f"{label} {fmt.format(statistics.median(r[key] for r in rounds[tree]))}" for key, label, fmt in FIGURES
        )
        print(f"  {tree.name}: {medians}")
        for key in ("main_us_per_ack", "writer_us_per_ack", "ack_p99_ms"):
            print(f"      {key}: {' '.join(f'{r[key]:.1f}' for r in rounds[tree])}")
    if len(trees) >= 2:
        first, last = rounds[trees[0]], rounds[trees[-1]]
        for key in ("main_us_per_ack", "writer_us_per_ack"):
            lower = sum(b[key] < a[key] for a, b in zip(first, last, strict=True))
            print(f"  {trees[-1].name} lower than {trees[0].name} on {key}: {lower} of {len(first)} pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
