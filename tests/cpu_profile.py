"""
Where the suite's CPU goes: per test, the CPU of the pytest process and of the child processes it reaped.

Off unless ``VOICECODER_CPU_PROFILE`` names a directory; then each pytest process (each xdist worker) appends one
JSON line per test to ``<dir>/<pid>.jsonl`` and a final line with its whole-session totals. Wall time on a shared
machine says little; CPU seconds (user + sys) compare across runs::

    VOICECODER_CPU_PROFILE=/tmp/cpu python3 dev.py test
    .venv/bin/python -m tests.cpu_profile /tmp/cpu        # top 60 tests, then per-module sums

A session fixture is charged to the first test that uses it. Children count once they are reaped, so a server a
test starts and stops is charged to that test; a daemon (the PostgreSQL a worker starts) is never charged.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

ENV = "VOICECODER_CPU_PROFILE"
SESSION = "<session>"


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _append(record: dict[str, object]) -> None:
    directory = Path(os.environ[ENV])
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{os.getpid()}.jsonl").open("a") as sink:
        sink.write(json.dumps(record) + "\n")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    if not os.environ.get(ENV):
        return (yield)
    own, children, started = *_cpu(), time.monotonic()
    try:
        return (yield)
    finally:
        own_after, children_after = _cpu()
        _append(
            {
                "id": item.nodeid,
                "self": own_after - own,
                "children": children_after - children,
                "wall": time.monotonic() - started,
            }
        )


def pytest_sessionfinish() -> None:
    if os.environ.get(ENV):
        own, children = _cpu()
        _append({"id": SESSION, "self": own, "children": children, "wall": 0.0})


def report(directory: Path, top: int = 60) -> str:
    """The *top* tests by CPU, then the modules by summed CPU, from the JSON lines in *directory*."""
    tests: list[dict[str, object]] = []
    sessions: list[dict[str, object]] = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            (sessions if record["id"] == SESSION else tests).append(record)

    def cpu(record: dict[str, object]) -> float:
        return float(str(record["self"])) + float(str(record["children"]))

    processes = ", ".join(f"{cpu(s):.1f}" for s in sessions)
    lines = [
        f"{len(tests)} tests: {sum(map(cpu, tests)):.1f} CPU-s in tests; pytest processes (each in all): {processes}",
        "",
        f"{'cpu':>7} {'own':>7} {'kids':>7} {'wall':>7}  test",
    ]
    lines += [
        f"{cpu(r):7.2f} {float(str(r['self'])):7.2f} {float(str(r['children'])):7.2f} {float(str(r['wall'])):7.1f}  "
        f"{r['id']}"
        for r in sorted(tests, key=cpu, reverse=True)[:top]
    ]
    modules: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for record in tests:
        module = str(record["id"]).split("::", 1)[0]
        modules[module][0] += cpu(record)
        modules[module][1] += 1
    lines += ["", f"{'cpu':>7} {'tests':>5}  module"]
    lines += [
        f"{total:7.1f} {count:5.0f}  {module}"
        for module, (total, count) in sorted(modules.items(), key=lambda kv: -kv[1][0])
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(report(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3])) + "\n")
