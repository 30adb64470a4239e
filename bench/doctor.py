"""
`voicecoder doctor` wall time: the target is ≤ 2 s when Telegram is reachable.

Runs the real command as a fresh process (interpreter start, imports and all) against the local fake Bot API
(Telegram reachable, a few ms away) with an empty workspace and data dir, N times, and prints the median and the
worst run next to `python -c pass` measured in the same run, so the machine's load is visible. A second row runs
it with Telegram unreachable (a closed port): the network is reported as down within the same budget.

Run: ``.venv/bin/python bench/doctor.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))

from voicecoder.simulators.bot_api import FakeBotApi  # noqa: E402

TARGET_S = 2.0


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.stdout


async def main(runs: int) -> int:
    async with FakeBotApi() as fake:
        with tempfile.TemporaryDirectory() as tmp, socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            root = Path(tmp)
            base = {
                "PATH": os.environ["PATH"],
                "HOME": str(root),
                "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
                "HF_HUB_OFFLINE": "1",
                "TELEGRAM_TOKEN": fake.token,
                "ALLOWED_USER_IDS": "1",
                "WORKSPACE_DIR": str(root / "ws"),
                "DATA_DIR": str(root / "data"),
            }
            cases = {
                "python -c pass (interpreter start)": ([sys.executable, "-c", "pass"], base),
                "doctor, Telegram reachable": (
                    [sys.executable, "-m", "voicecoder.entrypoints.cli", "doctor"],
                    {**base, "TELEGRAM_API_BASE_URL": fake.base_url},
                ),
                "doctor, network down": (
                    [sys.executable, "-m", "voicecoder.entrypoints.cli", "doctor"],
                    {**base, "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{closed.getsockname()[1]}"},
                ),
            }
            print(f"{'case':<36} {'median s':>9} {'worst s':>8}  target")
            met = True
            for label, (argv, env) in cases.items():
                times = []
                for _ in range(runs):
                    elapsed, out = await asyncio.to_thread(timed, argv, env, root)
                    times.append(elapsed)
                    if label.startswith("doctor") and "telegram" not in out:
                        print(f"unexpected output:\n{out}")
                        return 1
                median = statistics.median(times)
                goal = f"≤ {TARGET_S:g} s" if label.startswith("doctor") else ""
                if goal:
                    met = met and median <= TARGET_S
                print(f"{label:<36} {median:>9.2f} {max(times):>8.2f}  {goal}")
            created = await asyncio.to_thread(lambda: sorted(p.name for p in root.iterdir()))
            print(f"\nfiles doctor created: {created or 'none'}")
            print(f"target ≤ {TARGET_S:g} s (median): {'met' if met else 'NOT met'}")
            return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    sys.exit(asyncio.run(main(parser.parse_args().runs)))
