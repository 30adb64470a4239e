"""Run every benchmark in bench/ (or the ones named) one after another; each prints its own table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALL = ("workspace", "webhook", "stt", "doctor", "agent", "cluster", "state_store")


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("-")] or list(ALL)
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(ALL)}")
        return 2
    failures = 0
    for name in names:
        print(f"\n=== bench/{name}.py ===", flush=True)
        failures += subprocess.run([sys.executable, str(HERE / f"{name}.py")], check=False).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
