"""
The bot's main-thread CPU per /help answered, without the ack path: A/B of source trees in interleaved rounds.

``bench/webhook.py`` gives the whole bot's CPU per update, but on a shared machine two sittings are not comparable
and a 5 % change drowns in their noise. This measures the processing half alone, in one process pinned to the
bot's core: ``TelegramUpdateHandler`` → ``VoiceCoder`` → ``TelegramMessenger`` → ``TelegramBotApi`` against the
bench's fake Bot API (its own process, on the load core), then the dispatcher's observer (the Prometheus counts and
the "update processed" JSON log line through the redacting handler, written to /dev/null), 40 updates at a time as
under the bench's load. It prints the thread CPU per update of each round and the median per tree.

Run: ``.venv/bin/python bench/webhook_cpu.py [TREE ...] [--pairs 6] [--updates 4000]``; a TREE is a directory with
``src/`` and ``bench/`` (e.g. ``git archive`` of a commit, unpacked); none: this checkout alone. With two trees,
each pair runs them in alternating order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOAD_CORE, BOT_CORE = 0, 1
CONCURRENT = 40


def pinned(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if (os.cpu_count() or 1) > core and shutil.which("taskset") else []


async def measure(port: int, count: int) -> float:
    """Main-thread CPU µs per /help answered through the fake Bot API on *port* (the tree is first on sys.path)."""
    import aiohttp  # noqa: PLC0415 - imported once the tree is on sys.path
    from webhook_shapes import BOT_TOKEN, USER_BASE, text_update  # noqa: PLC0415

    from voicecoder.adapters.prometheus_metrics import Metrics, UpdateMetrics  # noqa: PLC0415
    from voicecoder.adapters.telegram.api import PacingPolicy, TelegramBotApi  # noqa: PLC0415
    from voicecoder.adapters.telegram.messenger import TelegramMessenger  # noqa: PLC0415
    from voicecoder.adapters.telegram.updates import TelegramUpdateHandler  # noqa: PLC0415
    from voicecoder.testing.fakes import build_voicecoder  # noqa: PLC0415

    pacing = PacingPolicy(per_chat_rate=0, global_rate=0)
    async with (
        aiohttp.ClientSession() as http,
        TelegramBotApi(BOT_TOKEN, base_url=f"http://127.0.0.1:{port}", session=http, pacing=pacing) as client,
    ):
        messenger = TelegramMessenger(client)
        app, _ = build_voicecoder(messenger=messenger, allowed_users=[USER_BASE + c for c in range(50)])
        handler = TelegramUpdateHandler(app, client, messenger=messenger)
        observer = UpdateMetrics(Metrics())
        warm = 200
        updates = [json.loads(text_update(n, n % 50)) for n in range(warm + count)]

        async def one(update: dict[str, object]) -> None:
            started = time.perf_counter()
            await handler(update)
            observer.attempted(time.perf_counter() - started)
            observer.processed(f"{update['update_id']}:message", 0.0123)

        for update in updates[:warm]:
            await one(update)
        pending = iter(updates[warm:])

        async def worker() -> None:
            for update in pending:
                await one(update)

        before = time.thread_time()
        await asyncio.gather(*(worker() for _ in range(CONCURRENT)))
        return (time.thread_time() - before) / count * 1e6


def child(tree: Path, count: int) -> None:
    sys.path[:0] = [str(tree / "src"), str(tree / "bench")]
    from webhook_shapes import BOT_TOKEN, SECRET  # noqa: PLC0415

    import voicecoder  # noqa: PLC0415 - from the tree just put first
    from voicecoder.entrypoints.logs import configure_logging  # noqa: PLC0415

    if not Path(voicecoder.__file__ or "").is_relative_to(tree / "src"):
        raise SystemExit(f"voicecoder was imported from {voicecoder.__file__}, not from {tree / 'src'}")
    sink = subprocess.Popen(
        [*pinned(LOAD_CORE), sys.executable, str(tree / "bench" / "webhook_sink.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=tree / "bench",
    )
    assert sink.stdout is not None
    assert sink.stdin is not None
    port = json.loads(sink.stdout.readline())["port"]
    with Path(os.devnull).open("w") as devnull:
        stderr, sys.stderr = sys.stderr, devnull  # the log handler writes to the stderr of its configuration
        configure_logging(fmt="json", level="INFO", secrets=[BOT_TOKEN, SECRET])
        sys.stderr = stderr
        try:
            print(json.dumps({"us": asyncio.run(measure(port, count))}))
        finally:
            sink.stdin.write(b'{"do": "quit"}\n')
            sink.stdin.flush()
            sink.wait(10)


def run_round(tree: Path, count: int) -> float:
    out = subprocess.run(
        [*pinned(BOT_CORE), sys.executable, __file__, "--child", str(tree), "--updates", str(count)],
        check=True,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    ).stdout
    value: float = json.loads(out.strip().splitlines()[-1])["us"]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("trees", nargs="*", type=Path, help="source trees to compare (default: this checkout)")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--updates", type=int, default=4000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child.resolve(), args.updates)
        return 0
    trees = [t.resolve() for t in args.trees] or [HERE.parent]
    rounds: dict[Path, list[float]] = {tree: [] for tree in trees}
    for n in range(args.pairs):
        for tree in trees if n % 2 == 0 else list(reversed(trees)):
            rounds[tree].append(run_round(tree, args.updates))
    print(f"main-thread CPU per /help answered (µs; {args.updates} updates, {CONCURRENT} at a time, per round):")
    for tree, values in rounds.items():
        shown = " ".join(f"{v:.0f}" for v in values)
        print(f"  {tree}: {shown}  median {statistics.median(values):.1f}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
