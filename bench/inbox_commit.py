"""
The SQLite inbox alone under concurrent puts: how long a put waits, how long each COMMIT takes, and which commits ran
SQLite's automatic checkpoint.

*N* tasks on one event loop each put an update, claim it and mark it done, as the webhook and the dispatcher do, for
*S* seconds against a real file (``--dir``: a real disk, fsync counts). The process should be pinned to one core, as
the bot is in ``bench/webhook.py``. A commit is a checkpointing one when the WAL starts over right after it (the
frame count in the WAL-index header drops, see ``bench/webhook_trace.py``). Used for ADR 0036.
Run: ``taskset -c 1 .venv/bin/python bench/inbox_commit.py [--putters 40] [--seconds 6]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE.parent)]

from bench.webhook_trace import replace_attribute, wal_frames  # noqa: E402
from voicecoder.adapters.sqlite.inbox import SqliteInbox  # noqa: E402

BODY = (
    b'{"update_id":1,"message":{"message_id":1,"from":{"id":1,"is_bot":false,"first_name":"Bench","username":"u1",'
    b'"language_code":"en"},"chat":{"id":1,"first_name":"Bench","username":"u1","type":"private"},"date":1764000000,'
    b'"text":"/help","entities":[{"offset":0,"length":5,"type":"bot_command"}]}}'
)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else float("nan")


async def run(putters: int, seconds: float, directory: str | None) -> None:
    commits: list[tuple[float, int]] = []  # duration, WAL frames after it
    path_box: list[Path] = []

    class Connection(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql != "COMMIT":
                return super().execute(sql, *args)
            started = time.perf_counter()
            try:
                return super().execute(sql, *args)
            finally:
                commits.append((time.perf_counter() - started, wal_frames(path_box[0])))

    connect = sqlite3.connect

    def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, factory=Connection, **kwargs)

    replace_attribute(sqlite3, "connect", traced_connect)
    with tempfile.TemporaryDirectory(prefix="vc-inbox-bench-", dir=directory) as tmp:
        path_box.append(Path(tmp) / "inbox.sqlite3")
        waits: list[float] = []
        ids = itertools.count(1)
        end = time.monotonic() + seconds
        async with SqliteInbox(path_box[0]) as inbox:

            async def putter(lane: int) -> None:
                while time.monotonic() < end:
                    update_id = next(ids)
                    started = time.perf_counter()
                    await inbox.put(update_id, f"{lane}:message", BODY)
                    waits.append(time.perf_counter() - started)
                    inbox.claim_nowait(update_id)
                    await asyncio.sleep(0)  # the handler runs
                    inbox.mark_done_nowait(update_id)

            await asyncio.gather(*(putter(lane) for lane in range(putters)))
    durations = [d for d, _ in commits]
    checkpointing = [a[0] for a, b in itertools.pairwise(commits) if 0 <= b[1] < a[1]]
    print(
        f"{putters} putters, {seconds:g} s: {len(waits):,} puts ({len(waits) / seconds:,.0f}/s), put p50 "
        f"{_pct(waits, 0.5):.2f} ms, p99 {_pct(waits, 0.99):.2f} ms; {len(commits):,} commits, COMMIT p50 "
        f"{_pct(durations, 0.5):.2f} ms, p90 {_pct(durations, 0.9):.2f} ms, p99 {_pct(durations, 0.99):.2f} ms, "
        f"max {max(durations, default=0) * 1e3:.1f} ms; {len(checkpointing)} checkpointing commits, median "
        f"{_pct(checkpointing, 0.5):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--putters", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--dir", default=None, help="where the inbox file lives (a real disk)")
    args = parser.parse_args()
    asyncio.run(run(args.putters, args.seconds, args.dir))


if __name__ == "__main__":
    main()
