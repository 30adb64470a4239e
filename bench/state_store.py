"""
State store write path: the single-process store (no fence) against a cluster worker's fenced store (ADR 0030).

Both write the same sessions and audit records to a SQLite file of their own in one directory, in alternating
rounds, so the machine's load falls on both alike. A fenced write adds one read of the ``owner_fence`` row inside
the transaction it already had; the embedded store runs exactly the statements it ran before the fence existed.
The process CPU time of the run is printed too.

Run: ``.venv/bin/python bench/state_store.py [--writes 1000] [--rounds 7] [--dir /dev/shm]``
(``python3 dev.py bench state_store``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

from voicecoder.adapters.sqlite.state_store import SqliteStateStore
from voicecoder.domain.model import AuditAction, AuditRecord, ChatId, Session

NOW = datetime.now(UTC)
WORKSPACE = "bench"


class _Owner:
    """The fence of a worker that owns the workspace at epoch 1 for the whole run."""

    def held(self) -> tuple[str, int] | None:
        return WORKSPACE, 1

    def refused(self) -> None:
        raise AssertionError("the bench's owner was refused")


async def _round(store: SqliteStateStore, writes: int) -> float:
    """Microseconds per write: *writes* / 2 session saves and as many audit appends, alternating."""
    await store.open()
    session = Session(chat_id=ChatId(1))
    start = time.perf_counter()
    for n in range(writes // 2):
        session.record_turn(f"t{n}", now=NOW)
        await store.save_session(session)
        await store.append_audit(AuditRecord(at=NOW, chat_id=ChatId(1), user_id=None, action=AuditAction.CHANGE))
    elapsed = time.perf_counter() - start
    await store.close()
    return elapsed / (writes // 2 * 2) * 1e6


async def main(writes: int, rounds: int, where: Path | None) -> None:
    cpu = time.process_time()
    results: dict[str, list[float]] = {"embedded (no fence)": [], "worker (fenced)": []}
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        for n in range(rounds):
            plain = SqliteStateStore(Path(tmp) / f"plain-{n}.sqlite3")
            fenced = SqliteStateStore(Path(tmp) / f"fenced-{n}.sqlite3", fence=_Owner())
            await fenced.take_over(WORKSPACE, 1)
            results["embedded (no fence)"].append(await _round(plain, writes))
            results["worker (fenced)"].append(await _round(fenced, writes))
        target = tmp
    base = statistics.median(results["embedded (no fence)"])
    print(f"{rounds} rounds x {writes} writes in {Path(target).parent} (synchronous=FULL, WAL)")
    print(f"{'store':22} {'median us/write':>16} {'min':>9} {'max':>9} {'vs embedded':>12}")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:22} {median:16.1f} {min(values):9.1f} {max(values):9.1f} {median / base:11.2f}x")
    print(f"process CPU: {time.process_time() - cpu:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: the temp dir)")
    args = parser.parse_args()
    anyio.run(main, args.writes, args.rounds, args.dir)
