"""The webhook bench's per-request trace: the WAL frame count it reads, and the summary it prints."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.webhook_trace import STAMPS, summarise, wal_frames


def test_wal_frames_follow_commits_and_restart_after_a_checkpoint(tmp_path: Path) -> None:
    """The count read from the -shm header grows with each commit and drops when a write starts the WAL over."""
    db = tmp_path / "inbox.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t (x BLOB)")
        counts = []
        for _ in range(3):
            conn.execute("INSERT INTO t VALUES (?)", (b"x" * 5000,))
            counts.append(wal_frames(db))
        busy, log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        conn.execute("INSERT INTO t VALUES (x'00')")  # the first write after a complete checkpoint restarts the WAL
        after = wal_frames(db)
    finally:
        conn.close()

    assert counts[0] > 0
    assert counts == sorted(set(counts))  # three commits, three larger counts
    assert (busy, log, copied) == (0, counts[-1], counts[-1])
    assert 0 < after < counts[-1]


def test_wal_frames_without_a_wal_index(tmp_path: Path) -> None:
    assert wal_frames(tmp_path / "missing.sqlite3") == -1


def _request(start: float, waited: float, commit: float) -> list[float]:
    """One traced request: 1 ms per segment, except the wait for the commit before and the COMMIT given."""
    times = [start]
    for name in STAMPS[1:]:
        step = {"batch": waited, "committed": commit}.get(name, 0.001)
        times.append(times[-1] + step)
    return times


def test_summary_names_where_the_slowest_waited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """98 quick requests and two that waited 20 ms for a commit before theirs, one behind a checkpoint: it says so."""
    requests = [_request(i * 0.01, 0.0001, 0.001) for i in range(98)]
    requests += [_request(3.0, 0.020, 0.001), _request(3.5, 0.020, 0.001)]
    # The first slow request is handed over (at 3.003) while batch 1 runs; batch 1's COMMIT also checkpointed,
    # which shows as the WAL's frame count dropping in the batch after it.
    batches = [
        [2.0, 2.001, 2.002, 12, 900],
        [3.0025, 3.010, 3.0225, 12, 1000],
        [3.523, 3.524, 3.525, 12, 3],
    ]
    trace = tmp_path / "trace.json"
    trace.write_text(json.dumps({"requests": requests, "batches": batches, "gcs": [], "slow": []}))

    summarise(trace)

    out = capsys.readouterr().out
    waiting = next(line for line in out.splitlines() if "waiting for the writer" in line)
    assert waiting.split()[-3:] == ["20.00", "ms", f"{20 / 27:.0%}"]  # 20 of the slow ones' 27 ms
    assert "slowest 1 %: 2/2 waited > 0.5 ms for a commit that began before their hand-over" in out
    assert "automatic checkpoints: 1 (one per 3 commits), their COMMIT median 12.50 ms" in out
    assert "committed by one or handed over while one ran: 1/2" in out
