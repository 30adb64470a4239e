"""
Where an acked update's time goes, request by request: ``bench/webhook.py --trace`` (voicecoder's bot only).

The bench bot, started with ``--trace FILE``, wraps a few functions of the real stack (this process only; the code
under test is unchanged) and stamps each webhook request with ``perf_counter`` at:

* ``arrive``: the last bytes of the request reached aiohttp's protocol (``data_received``);
* ``start``: aiohttp's per-request task began (``_handle_request``);
* ``put``: the handler asked the inbox to store the update (checks, parse and routing done);
* ``handover``: the inbox handed the request to its writer thread (end of that loop iteration);
* ``batch``: the writer thread took it (so ``handover → batch`` is the wait for the commit before);
* ``commit`` / ``committed``: SQLite's ``COMMIT`` (the fsync) began / returned;
* ``resolved``: the event loop ran the commit's answer (the hop back from the writer);
* ``done``: the handler returned and the 200 was written.

It also records every garbage collection (``gc.callbacks``) and every event-loop callback that ran longer than
``--slow-ms`` (a long callback delays every other request). Only the measured window's updates are kept (the
bench numbers them from 100,000,000). :func:`summarise` prints, for all requests and for the slowest 1 %, the
median of each segment, plus the collections and long callbacks that overlapped the slow ones.
Stamping costs a few µs per request, so a traced run is a little slower than an untraced one: compare segments,
not the absolute figures, with an untraced run.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import itertools
import json
import math
import sqlite3
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

STAMPS = ("arrive", "start", "put", "handover", "batch", "commit", "committed", "resolved", "done")
SEGMENTS = (
    ("arrive", "start", "loop → handler task"),
    ("start", "put", "checks, parse, route"),
    ("put", "handover", "to the end of the loop iteration"),
    ("handover", "batch", "waiting for the writer (commit before)"),
    ("batch", "commit", "insert + marks"),
    ("commit", "committed", "COMMIT (fsync)"),
    ("committed", "resolved", "hop back to the loop"),
    ("resolved", "done", "resume handler, write the 200"),
)
MEASURED = (100_000_000, 900_000_000)
_IDX = {name: i for i, name in enumerate(STAMPS)}
now = time.perf_counter


def replace_attribute(owner: object, name: str, replacement: object) -> None:
    """Replace *owner*'s attribute *name* (a method or function of the stack under test) in this process."""
    setattr(owner, name, replacement)


class Tracer:
    def __init__(self, slow_ms: float) -> None:
        self.requests: list[list[float]] = []
        self.by_id: dict[int, list[float]] = {}
        # batch start, commit start, commit end, puts, frames in the WAL after it
        self.batches: list[tuple[float, float, float, int, int]] = []
        self.gcs: list[tuple[float, float, int, int]] = []  # start, duration, generation, collected
        self.slow: list[tuple[float, float, float, str]] = []  # start, duration, its thread's CPU, callback
        self.slow_s = slow_ms / 1000
        self._arrivals: dict[int, float] = {}
        self._current: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar("trace", default=None)
        self._commit = threading.local()
        self._gc_started = 0.0

    def install(self) -> None:
        from aiohttp import web_protocol  # noqa: PLC0415

        from voicecoder.adapters.sqlite import inbox as inbox_mod  # noqa: PLC0415

        tracer = self
        protocol = web_protocol.RequestHandler
        received = protocol.data_received

        def data_received(handler: Any, data: bytes) -> None:
            tracer._arrivals[id(handler)] = now()
            received(handler, data)

        replace_attribute(protocol, "data_received", data_received)
        handle_request = protocol._handle_request

        async def traced_request(handler: Any, request: Any, *args: Any) -> Any:
            rec = [float("nan")] * len(STAMPS)
            rec[_IDX["arrive"]] = tracer._arrivals.get(id(handler), float("nan"))
            rec[_IDX["start"]] = now()
            tracer._current.set(rec)
            result = await handle_request(handler, request, *args)
            rec[_IDX["done"]] = now()
            if not math.isnan(rec[_IDX["put"]]):  # a webhook update of the measured window
                tracer.requests.append(rec)
            return result

        replace_attribute(protocol, "_handle_request", traced_request)
        inbox_cls = inbox_mod.SqliteInbox
        put = inbox_cls.put

        async def traced_put(inbox: Any, update_id: int, *args: Any, **kwargs: Any) -> bool:
            rec = tracer._current.get()
            if rec is not None and MEASURED[0] <= update_id < MEASURED[1]:
                rec[_IDX["put"]] = now()
                rec.append(update_id)
                tracer.by_id[update_id] = rec
            return await put(inbox, update_id, *args, **kwargs)

        replace_attribute(inbox_cls, "put", traced_put)
        hand_over = inbox_cls._hand_over

        def traced_hand_over(inbox: Any) -> None:
            t = now()
            for req in inbox._held:
                rec = tracer.by_id.get(req.update_id) if req.kind == "put" else None
                if rec is not None:
                    rec[_IDX["handover"]] = t
            hand_over(inbox)

        replace_attribute(inbox_cls, "_hand_over", traced_hand_over)
        run_batch = inbox_cls._run_batch

        def traced_batch(inbox: Any, batch: list[Any]) -> None:
            t = now()
            tracer._commit.span = (float("nan"), float("nan"))
            recs = [tracer.by_id.get(r.update_id) for r in batch if r.kind == "put"]
            run_batch(inbox, batch)
            commit, committed = tracer._commit.span
            tracer.batches.append((t, commit, committed, len(recs), wal_frames(inbox.path)))
            for rec in recs:
                if rec is not None:
                    rec[_IDX["batch"]], rec[_IDX["commit"]], rec[_IDX["committed"]] = t, commit, committed

        replace_attribute(inbox_cls, "_run_batch", traced_batch)
        resolve = inbox_mod._resolve

        def traced_resolve(batch: list[Any]) -> None:
            t = now()
            for req in batch:
                rec = tracer.by_id.get(req.update_id) if req.kind == "put" else None
                if rec is not None:
                    rec[_IDX["resolved"]] = t
            resolve(batch)

        replace_attribute(inbox_mod, "_resolve", traced_resolve)

        class Connection(sqlite3.Connection):
            def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
                if sql != "COMMIT":
                    return super().execute(sql, *args)
                started = now()
                try:
                    return super().execute(sql, *args)
                finally:
                    tracer._commit.span = (started, now())

        connect = sqlite3.connect

        def traced_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            return connect(*args, factory=Connection, **kwargs)

        replace_attribute(sqlite3, "connect", traced_connect)  # the module the inbox calls

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                tracer._gc_started = now()
            else:
                t = now()
                tracer.gcs.append((tracer._gc_started, t - tracer._gc_started, info["generation"], info["collected"]))

        gc.callbacks.append(on_gc)
        run = asyncio.events.Handle._run

        def traced_run(handle: asyncio.Handle) -> None:
            started, cpu = now(), time.thread_time()
            run(handle)
            took = now() - started
            if took > tracer.slow_s:  # CPU far below the wall time: the thread was off its core (or lacked the GIL)
                tracer.slow.append((started, took, time.thread_time() - cpu, repr(handle)[:160]))

        replace_attribute(asyncio.events.Handle, "_run", traced_run)

    def dump(self, path: Path) -> None:
        path.write_text(
            json.dumps({"requests": self.requests, "batches": self.batches, "gcs": self.gcs, "slow": self.slow})
        )


def wal_frames(db: Path) -> int:
    """
    Frames in *db*'s WAL (``mxFrame`` of the WAL-index header in the ``-shm`` file; see SQLite's walformat).

    It drops when a commit starts the WAL over, which a write does after a checkpoint copied the whole WAL back.
    """
    try:
        with Path(f"{db}-shm").open("rb") as shm:
            header = shm.read(20)
    except OSError:
        return -1
    return int.from_bytes(header[16:20], sys.byteorder) if len(header) == 20 else -1


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summarise(path: Path) -> None:
    data = json.loads(path.read_text())
    rows = [r for r in data["requests"] if not any(math.isnan(v) for v in r[: len(STAMPS)])]
    if not rows:
        print(f"trace {path}: no complete request")
        return
    total = [r[_IDX["done"]] - r[_IDX["arrive"]] for r in rows]
    p99 = _pct(total, 0.99)
    slow = [r for r, t in zip(rows, total, strict=True) if t >= p99]
    print(
        f"\ntrace of {len(rows):,} acked updates (arrive → 200 written, in the bot): "
        f"p50 {_pct(total, 0.5) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, max {max(total) * 1e3:.2f} ms"
    )
    print(f"  {'segment':<42}{'all: median':>12}{'p99':>9}{'slowest 1 %: median':>21}{'share':>8}")
    slow_total = statistics.median(r[_IDX["done"]] - r[_IDX["arrive"]] for r in slow)
    for a, b, label in SEGMENTS:
        every = [r[_IDX[b]] - r[_IDX[a]] for r in rows]
        worst = [r[_IDX[b]] - r[_IDX[a]] for r in slow]
        print(
            f"  {label:<42}{statistics.median(every) * 1e3:>9.2f} ms{_pct(every, 0.99) * 1e3:>6.2f} ms"
            f"{statistics.median(worst) * 1e3:>18.2f} ms{statistics.median(worst) / slow_total:>8.0%}"
        )
    waited = sum(r[_IDX["batch"]] - r[_IDX["handover"]] > 0.0005 for r in slow)
    print(f"  slowest 1 %: {waited}/{len(slow)} waited > 0.5 ms for a commit that began before their hand-over")
    commits = [c[2] - c[1] for c in data["batches"] if not math.isnan(c[2])]
    batches = [c[2] - c[0] for c in data["batches"] if not math.isnan(c[2])]
    puts = [c[3] for c in data["batches"]]
    print(
        f"  commits: {len(commits):,}; COMMIT p50 {_pct(commits, 0.5) * 1e3:.2f} ms, p90 {_pct(commits, 0.9) * 1e3:.2f}"
        f" ms, p99 {_pct(commits, 0.99) * 1e3:.2f} ms, max {max(commits, default=0) * 1e3:.2f} ms; whole batch p99 "
        f"{_pct(batches, 0.99) * 1e3:.2f} ms; puts per commit median {statistics.median(puts or [0]):.0f}"
    )
    # A commit that starts the WAL over follows the commit whose automatic checkpoint copied it back.
    ckpts = [a for a, b in itertools.pairwise(data["batches"]) if 0 <= b[4] < a[4] and not math.isnan(a[2])]
    hit = sum(any(r[_IDX["batch"]] == a[0] or a[0] <= r[_IDX["handover"]] <= a[2] for a in ckpts) for r in slow)
    if ckpts:
        print(
            f"  automatic checkpoints: {len(ckpts)} (one per {len(data['batches']) / len(ckpts):.0f} commits), "
            f"their COMMIT median {statistics.median(a[2] - a[1] for a in ckpts) * 1e3:.2f} ms; slowest 1 % "
            f"committed by one or handed over while one ran: {hit}/{len(slow)}"
        )
    first, last = min(r[_IDX["arrive"]] for r in rows), max(r[_IDX["done"]] for r in rows)
    gcs = [g for g in data["gcs"] if first <= g[0] <= last]
    by_gen = {gen: [g[1] for g in gcs if g[2] == gen] for gen in (0, 1, 2)}
    print(
        "  collections in the window: "
        + ", ".join(f"gen {gen} × {len(d)} (max {max(d, default=0) * 1e3:.2f} ms)" for gen, d in by_gen.items())
    )
    slow_cbs = [s for s in data["slow"] if first <= s[0] <= last]
    print(f"  loop callbacks longer than the threshold in the window: {len(slow_cbs)}")
    print(
        f"    their wall time {sum(s[1] for s in slow_cbs) * 1e3:.1f} ms, "
        f"their CPU {sum(s[2] for s in slow_cbs) * 1e3:.1f} ms"
    )
    for _, took, cpu, what in sorted(slow_cbs, key=lambda s: -s[1])[:8]:
        print(f"    {took * 1e3:6.2f} ms (CPU {cpu * 1e3:5.2f} ms)  {what}")
    overlap_gc = sum(any(r[_IDX["arrive"]] <= g[0] <= r[_IDX["done"]] for g in gcs) for r in slow)
    overlap_cb = sum(any(r[_IDX["arrive"]] <= s[0] <= r[_IDX["done"]] for s in slow_cbs) for r in slow)
    print(
        f"  slowest 1 % overlapping a collection: {overlap_gc}/{len(slow)}, a long callback: {overlap_cb}/{len(slow)}"
    )
