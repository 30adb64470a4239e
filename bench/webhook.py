"""
Webhook ingress benchmark: acks/s, ack latency, processed vs sent, per-chat order, update → first reply.

Three processes on 127.0.0.1, pinned with ``taskset`` when it is available:

* the **bot** (core 1): the real :func:`serve_webhook` with the durable :class:`SqliteInbox` (fsync'd group
  commit) and the :class:`UpdateDispatcher`; its handler answers each update with one ``sendMessage`` POST
  to the reply sink (the trivial "/help" path) and checks per-chat order;
* the **load generator** (core 0): an aiohttp client with N keep-alive connections POSTing realistic Update
  JSON (unique ``update_id``, chats round robin, the secret header; each chat's updates one at a time, as
  Telegram delivers them), plus the reply sink (a stand-in for the Bot API's sendMessage);
* this orchestrator.

Phases: warm-up, measured load, drain (until processed == sent), then a low-load phase sending one update
at a time to measure update → first reply. Bounded in count and time; loopback only.

``--compare-aiogram`` (on by default) runs the same load, in the same invocation, against a minimal aiogram 3
webhook bot (``bench/aiogram_reference_bot.py``: ``SimpleRequestHandler`` with its default background
handling, ``/help`` answered with ``message.answer`` to the same fake Bot API, pinned to the same core) and
prints one table with both rows and the voicecoder/aiogram acks/s ratio against the ≥ 3× target
(TARGETS.md: absolute figures drift between runs, so both sides of a ratio are measured in one run).
aiogram is not a project dependency: it is installed into a throwaway virtualenv (``.tools/`` by default,
gitignored) with the standard ``venv`` and ``pip``; when that fails the comparison is skipped with the reason.
``--rounds N`` alternates the two stacks N times and reports medians.

Run: ``.venv/bin/python bench/webhook.py [--duration 10] [--warmup 2] [--connections 40] [--chats 50]
[--no-compare-aiogram] [--rounds 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

SECRET = "bench-secret-token_0123456789"
PATH = "/tg-bench-hook"
USER_BASE = 100_000
HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"
AIOGRAM_BOT = HERE.parent / "aiogram_reference_bot.py"
AIOGRAM_VERSION = "3.31.0"  # the version of the reference figure in TARGETS.md
AIOGRAM_VENV = HERE.parent.parent / ".tools" / "bench-aiogram-venv"
TARGET_RATIO = 3.0


# --------------------------------------------------------------------------------------------- bot process


async def run_bot(args: argparse.Namespace) -> None:
    import contextlib  # noqa: PLC0415

    import aiohttp  # noqa: PLC0415
    import anyio  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    from voicecoder.adapters.sqlite_inbox import SqliteInbox  # noqa: PLC0415
    from voicecoder.adapters.update_dispatcher import DispatchStats, UpdateDispatcher  # noqa: PLC0415
    from voicecoder.entrypoints.webhook import INGRESS, WebhookSettings, serve_webhook  # noqa: PLC0415

    last_by_chat: dict[int, int] = {}
    counters = {"processed": 0, "inversions": 0, "reply_errors": 0}

    def lane_of(update: dict[str, Any]) -> tuple[int, str] | None:
        if "message" in update:
            return int(update["message"]["chat"]["id"]), "message"
        return None

    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)))
        reply: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        if args.reply == "fake":
            from voicecoder.adapters.telegram_bot_api import PacingPolicy, TelegramBotApi  # noqa: PLC0415
            from voicecoder.adapters.telegram_messenger import TelegramMessenger  # noqa: PLC0415
            from voicecoder.adapters.telegram_updates import TelegramUpdateHandler  # noqa: PLC0415
            from voicecoder.testing.fake_bot_api import DEFAULT_TOKEN  # noqa: PLC0415
            from voicecoder.testing.fakes import build_voicecoder  # noqa: PLC0415

            client = await stack.enter_async_context(
                TelegramBotApi(
                    DEFAULT_TOKEN,
                    base_url=args.bot_api,
                    session=http,
                    pacing=PacingPolicy(per_chat_rate=0, global_rate=0),
                )
            )
            app, _ = build_voicecoder(
                messenger=TelegramMessenger(client), allowed_users=[USER_BASE + c for c in range(args.chats)]
            )
            reply = TelegramUpdateHandler(app, client)

        async def sink_reply(update: dict[str, Any]) -> None:
            chat = int(update["message"]["chat"]["id"])
            body = {"chat_id": chat, "text": f"help for #{update['update_id']}", "parse_mode": "HTML"}
            async with http.post(args.bot_api, json=body) as response:
                if response.status != 200:
                    counters["reply_errors"] += 1
                await response.read()

        if args.reply == "sink":
            reply = sink_reply

        async def handle(update: dict[str, Any]) -> None:
            chat = int(update["message"]["chat"]["id"])
            update_id = int(update["update_id"])
            if update_id < last_by_chat.get(chat, -1):
                counters["inversions"] += 1
            last_by_chat[chat] = update_id
            if reply is not None:
                await reply(update)
            counters["processed"] += 1

        settings = WebhookSettings(secret_token=SECRET, path=PATH)
        stats = DispatchStats()
        async with SqliteInbox(Path(args.inbox)) as inbox:
            dispatcher = UpdateDispatcher(inbox, handle, max_concurrency=args.concurrency, stats=stats)

            def add_stats(app: web.Application) -> None:
                async def bench_stats(_request: web.Request) -> web.Response:
                    ingress = app[INGRESS]
                    return web.json_response(
                        {
                            **counters,
                            "accepted": ingress.stats.accepted,
                            "duplicates": ingress.stats.duplicates,
                            "failed": stats.failed,
                            "backlog": dispatcher.backlog,
                            "commits": inbox.commits,
                            "writes": inbox.writes,
                            "cpu_s": time.process_time(),
                        }
                    )

                app.router.add_get("/bench/stats", bench_stats)

            async with anyio.create_task_group() as tg:
                port = await tg.start(
                    lambda task_status: serve_webhook(
                        settings,
                        inbox=inbox,
                        dispatcher=dispatcher,
                        lane_of=lane_of,
                        port=0,
                        configure_app=add_stats,
                        task_status=task_status,
                    )
                )
                await anyio.Path(args.port_file).write_text(str(port))


# --------------------------------------------------------------------------------------- load generator


def _update(update_id: int, chat: int) -> bytes:
    user = {
        "id": USER_BASE + chat,
        "is_bot": False,
        "first_name": "Bench",
        "username": f"u{chat}",
        "language_code": "en",
    }
    return json.dumps(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "from": user,
                "chat": {"id": USER_BASE + chat, "first_name": "Bench", "username": f"u{chat}", "type": "private"},
                "date": 1764000000,
                "text": "/help",
                "entities": [{"offset": 0, "length": 5, "type": "bot_command"}],
            },
        }
    ).encode()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_load(args: argparse.Namespace) -> None:
    import aiohttp  # noqa: PLC0415
    from aiohttp import web  # noqa: PLC0415

    replies: dict[int, float] = {}
    reply_waiters: dict[int, asyncio.Future[float]] = {}
    fake: Any = None
    runner: web.AppRunner | None = None
    token = ""
    if args.reply == "fake":
        from voicecoder.testing.fake_bot_api import DEFAULT_TOKEN, FakeBotApi, FakeUser  # noqa: PLC0415

        token = DEFAULT_TOKEN

        fake = FakeBotApi()
        await fake.start()
        for c in range(args.chats):
            fake.add_chat(FakeUser(USER_BASE + c, first_name="Bench", username=f"u{c}"))
        bot_api = fake.base_url
    else:

        async def send_message(request: web.Request) -> web.Response:
            now = time.perf_counter()
            body = await request.json()
            update_id = int(str(body["text"]).rsplit("#", 1)[1])
            replies.setdefault(update_id, now)
            waiter = reply_waiters.pop(update_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)
            return web.json_response({"ok": True, "result": {"message_id": update_id, "chat": {"id": body["chat_id"]}}})

        sink = web.Application()
        sink.router.add_post("/bot{token}/sendMessage", send_message)
        runner = web.AppRunner(sink, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bot_api = f"http://127.0.0.1:{runner.addresses[0][1]}/bot123:bench/sendMessage"
    print(json.dumps({"bot_api": bot_api, "token": token}), flush=True)
    bot_url = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()

    ids = itertools.count(1)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    sent = 0
    non_200 = 0
    measured_acks = 0
    latencies: list[float] = []
    measuring = False
    stop_at = 0.0

    connector = aiohttp.TCPConnector(limit=args.connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(chats: list[int]) -> None:
            nonlocal sent, non_200, measured_acks
            for chat in itertools.cycle(chats):
                if time.perf_counter() >= stop_at:
                    return
                update_id = next(ids)
                body = _update(update_id, chat)
                t0 = time.perf_counter()
                async with http.post(bot_url + PATH, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
                t1 = time.perf_counter()
                sent += 1
                if status != 200:
                    non_200 += 1
                if measuring and t1 <= stop_at:
                    measured_acks += 1
                    latencies.append(t1 - t0)

        # Each chat belongs to one connection: a chat's updates go one at a time, as Telegram sends them.
        groups = [[c for c in range(args.chats) if c % args.connections == w] for w in range(args.connections)]
        groups = [g for g in groups if g]
        # CPU is counted from here: start-up (imports, building the app) is not load.
        async with http.get(bot_url + "/bench/stats") as response:
            bot_cpu_before = float((await response.json())["cpu_s"])
        load_cpu_before = time.process_time()
        start = time.perf_counter()
        stop_at = start + args.warmup + args.duration

        async def flip() -> None:
            nonlocal measuring
            await asyncio.sleep(args.warmup)
            measuring = True

        measure_started = start + args.warmup
        await asyncio.gather(flip(), *(worker(g) for g in groups))
        measured_s = stop_at - measure_started

        load_cpu_s = time.process_time() - load_cpu_before
        async with http.get(bot_url + "/bench/stats") as response:
            bot_cpu_s = (await response.json())["cpu_s"] - bot_cpu_before
        # Drain: wait until the bot processed everything it acknowledged.
        drain_start = time.perf_counter()
        stats: dict[str, Any] = {}
        while time.perf_counter() - drain_start < args.drain_timeout:
            async with http.get(bot_url + "/bench/stats") as response:
                stats = await response.json()
            if stats["processed"] + stats["failed"] >= stats["accepted"] and stats["backlog"] == 0:
                break
            await asyncio.sleep(0.05)
        drain_s = time.perf_counter() - drain_start

        # Low load: one update at a time, time to the first reply.
        reply_latencies: list[float] = []
        low_acks: list[float] = []
        for n in range(args.low_load_count):
            update_id = next(ids)
            chat = n % args.chats
            waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            reply_waiters[update_id] = waiter
            seq = len(fake.transcript()) if fake is not None else 0
            t0 = time.perf_counter()
            wall0 = time.time()
            async with http.post(bot_url + PATH, data=_update(update_id, chat), headers=headers) as r:
                await r.read()
            low_acks.append(time.perf_counter() - t0)
            if args.reply == "sink":
                replied = await asyncio.wait_for(waiter, timeout=5)
                reply_latencies.append(replied - t0)
            elif args.reply == "fake":
                entries = await fake.wait_transcript(since=seq, chat_id=USER_BASE + chat, within=5)
                if entries:
                    reply_latencies.append(entries[0]["at"] - wall0)
            reply_waiters.pop(update_id, None)
            await asyncio.sleep(0.002)
        async with http.get(bot_url + "/bench/stats") as response:
            final = await response.json()

    if runner is not None:
        await runner.cleanup()
    if fake is not None:
        replies_seen = sum(1 for e in fake.transcript() if e.get("side") == "bot")
        await fake.close()
    else:
        replies_seen = len(replies)
    ms = 1000.0
    result = {
        "connections": args.connections,
        "load_cpu_s": load_cpu_s,
        "bot_cpu_s_at_end_of_load": bot_cpu_s,
        "wall_s": args.warmup + args.duration,
        "chats": args.chats,
        "measured_s": measured_s,
        "acks_per_s": measured_acks / measured_s,
        "ack_p50_ms": _pct(latencies, 0.50) * ms,
        "ack_p99_ms": _pct(latencies, 0.99) * ms,
        "ack_max_ms": max(latencies) * ms if latencies else float("nan"),
        "sent_under_load": sent,
        "non_200": non_200,
        "accepted_under_load": stats.get("accepted"),
        "processed_under_load": stats.get("processed"),
        "drain_s": drain_s,
        "inversions": final["inversions"],
        "reply_errors": final["reply_errors"],
        "failed": final["failed"],
        "group_commit_writes_per_commit": final["writes"] / max(1, final["commits"]),
        "low_load_n": len(low_acks),
        "low_load_ack_p50_ms": _pct(low_acks, 0.5) * ms,
        "reply_p50_ms": _pct(reply_latencies, 0.50) * ms,
        "reply_p99_ms": _pct(reply_latencies, 0.99) * ms,
        "reply_mean_ms": statistics.fmean(reply_latencies) * ms if reply_latencies else float("nan"),
        "sent_total": sent + len(low_acks),
        "processed_total": final["processed"],
        "replies_received": replies_seen,
    }
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------- orchestrator


def _pinned(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(core)]
    return []


def _bot_command(
    args: argparse.Namespace, stack: str, aiogram_python: str | None, bot_api: str, token: str, tmp: Path
) -> list[str]:
    port_file = tmp / "port"
    if stack == "aiogram":
        assert aiogram_python is not None
        return [
            *_pinned(1),
            aiogram_python,
            str(AIOGRAM_BOT),
            *("--bot-api", bot_api, "--token", token, "--secret", SECRET, "--path", PATH),
            *("--port-file", str(port_file)),
        ]
    return [
        *_pinned(1),
        sys.executable,
        *(["-m", "cProfile", "-o", args.profile_bot] if args.profile_bot else []),
        str(HERE),
        "--role",
        "bot",
        "--inbox",
        str(tmp / "inbox.sqlite3"),
        "--port-file",
        str(port_file),
        "--concurrency",
        str(args.concurrency),
        "--reply",
        args.reply,
        "--chats",
        str(args.chats),
        "--bot-api",
        bot_api,
    ]


def orchestrate(
    args: argparse.Namespace, stack: str = "voicecoder", aiogram_python: str | None = None
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    bot_env = env if stack == "voicecoder" else {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="vc-bench-", dir=args.tmp_dir) as tmp:
        common = ["--duration", str(args.duration), "--warmup", str(args.warmup)]
        common += ["--connections", str(args.connections), "--chats", str(args.chats)]
        common += ["--low-load-count", str(args.low_load_count), "--drain-timeout", str(args.drain_timeout)]
        common += ["--reply", args.reply]
        load = subprocess.Popen(
            [*_pinned(0), sys.executable, str(HERE), "--role", "load", *common],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        bot: subprocess.Popen[str] | None = None
        try:
            assert load.stdout is not None
            assert load.stdin is not None
            hello = json.loads(load.stdout.readline())
            port_file = Path(tmp) / "port"
            bot = subprocess.Popen(
                _bot_command(args, stack, aiogram_python, hello["bot_api"], hello["token"], Path(tmp)),
                env=bot_env,
                text=True,
            )
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text()):
                if time.monotonic() > deadline or bot.poll() is not None:
                    raise SystemExit(f"the {stack} bot did not start")
                time.sleep(0.02)
            load.stdin.write(f"http://127.0.0.1:{port_file.read_text()}\n")
            load.stdin.flush()
            budget = args.warmup + args.duration + args.drain_timeout + 60
            out, _ = load.communicate(timeout=budget)
            result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        finally:
            if bot is not None:
                bot.send_signal(signal.SIGTERM)
                try:
                    bot.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    bot.kill()
                    bot.wait()
            if load.poll() is None:
                load.kill()
                load.wait()
        result["pinned"] = bool(_pinned(0))
        result["stack"] = stack
        result["reply_path"] = {
            "fake": "/help via TelegramUpdateHandler → VoiceCoder → TelegramMessenger → fake Bot API (pacing off)",
            "sink": "one sendMessage POST per update to a minimal local sink",
            "none": "none (recorded no-op)",
        }[args.reply]
        if stack == "aiogram":
            result["reply_path"] = "/help via aiogram Router → message.answer → fake Bot API (background handling)"
        return result


def _report(result: dict[str, Any]) -> None:
    lost = result["sent_total"] - result["processed_total"] - result["failed"] - result["non_200"]
    print(f"webhook bench: {result['connections']} connections, {result['chats']} chats, pinned={result['pinned']}")
    print(f"  reply path              : {result['reply_path']}")
    wall = result["wall_s"]
    print(
        f"  CPU busy during load    : bot {result['bot_cpu_s_at_end_of_load'] / wall:.0%}, "
        f"load generator + sink {result['load_cpu_s'] / wall:.0%}"
    )
    print(
        f"  acks/s                  : {result['acks_per_s']:,.0f}  "
        f"(ack p50 {result['ack_p50_ms']:.2f} ms, p99 {result['ack_p99_ms']:.2f} ms, max {result['ack_max_ms']:.1f})"
    )
    print(f"  sent / processed        : {result['sent_total']} / {result['processed_total']} (lost {lost})")
    print(f"  non-200 acks            : {result['non_200']}, failed: {result['failed']}")
    print(f"  drain after load        : {result['drain_s']:.2f} s")
    print(f"  per-chat inversions     : {result['inversions']}")
    print(f"  writes per fsync        : {result['group_commit_writes_per_commit']:.1f}")
    print(
        f"  update → first reply    : p50 {result['reply_p50_ms']:.2f} ms, p99 {result['reply_p99_ms']:.2f} ms "
        f"(n={result['low_load_n']}, low load; ack p50 {result['low_load_ack_p50_ms']:.2f} ms)"
    )


# ---------------------------------------------------------------------------------- aiogram comparison


def _probe_aiogram(python: Path, version: str) -> bool:
    if not python.exists():
        return False
    try:
        probe = subprocess.run(
            [str(python), "-c", "import aiogram, aiohttp; print(aiogram.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == version


def _pip_failure(exc: subprocess.CalledProcessError | subprocess.TimeoutExpired | OSError) -> str:
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"timed out after {exc.timeout:.0f} s"
    if isinstance(exc, OSError):
        return str(exc)
    lines = [ln for ln in (exc.stderr or "").splitlines() if ln.strip() and "is ignored" not in ln]
    return lines[-1].strip() if lines else f"exit status {exc.returncode}"


def ensure_aiogram(venv: Path, version: str, timeout: float) -> tuple[str | None, str]:
    """
    A python with aiogram *version* in the throwaway virtualenv *venv* (created on first use), or the reason not.

    aiogram is not a project dependency: it lives only there. aiohttp is pinned to the project's own version
    when aiogram accepts it, so both bots run on the same HTTP stack; otherwise aiogram's own range decides.
    """
    python = venv / "bin" / "python"
    if _probe_aiogram(python, version):
        return str(python), f"aiogram {version} (cached in {venv})"
    print(f"setting up aiogram {version} in a throwaway virtualenv at {venv} ...", flush=True)
    from importlib.metadata import version as installed_version  # noqa: PLC0415

    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet", f"aiogram=={version}"]
    started = time.monotonic()
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        try:
            left = max(10.0, timeout - (time.monotonic() - started))
            aiohttp_pin = f"aiohttp=={installed_version('aiohttp')}"
            subprocess.run([*pip, aiohttp_pin], capture_output=True, text=True, timeout=left, check=True)
        except subprocess.CalledProcessError:
            left = max(10.0, timeout - (time.monotonic() - started))
            subprocess.run([*pip, "aiohttp"], capture_output=True, text=True, timeout=left, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return None, f"could not install aiogram {version} into {venv}: {_pip_failure(exc)}"
    if not _probe_aiogram(python, version):
        return None, f"aiogram {version} did not import from {venv}"
    return str(python), f"aiogram {version} (installed into {venv})"


def _median(values: list[float]) -> float:
    finite = [v for v in values if v == v]  # noqa: PLR0124 - drops NaN
    return statistics.median(finite) if finite else float("nan")


def _summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds for the rates and latencies, sums for the counts; the median round for the rest."""
    by_rate = sorted(rounds, key=lambda r: r["acks_per_s"])
    summary = dict(by_rate[len(by_rate) // 2])
    for key in ("acks_per_s", "ack_p50_ms", "ack_p99_ms", "reply_p50_ms", "reply_p99_ms"):
        summary[key] = _median([r[key] for r in rounds])
    for key in ("sent_total", "processed_total", "failed", "non_200", "inversions"):
        summary[key] = sum(r[key] for r in rounds)
    summary["rounds"] = len(rounds)
    summary["acks_per_s_rounds"] = [r["acks_per_s"] for r in rounds]
    return summary


def _comparison(ours: dict[str, Any], theirs: dict[str, Any], version: str) -> None:
    rounds = ours["rounds"]
    what = "median of " + str(rounds) + " alternating rounds" if rounds > 1 else "one round each"
    print(
        f"\nvoicecoder vs aiogram {version}, same load in this run ({what}; {ours['connections']} connections, "
        f"{ours['chats']} chats, pinned={ours['pinned']}):"
    )
    header = f"  {'stack':<11} {'acks/s':>9} {'ack p50':>10} {'ack p99':>10} {'processed/sent':>17} {'inversions':>11}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, r in (("voicecoder", ours), ("aiogram", theirs)):
        processed = f"{r['processed_total']}/{r['sent_total']}"
        print(
            f"  {name:<11} {r['acks_per_s']:>9,.0f} {r['ack_p50_ms']:>7.2f} ms {r['ack_p99_ms']:>7.2f} ms "
            f"{processed:>17} {r['inversions']:>11}"
        )
    ratio = ours["acks_per_s"] / theirs["acks_per_s"] if theirs["acks_per_s"] else float("inf")
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"  ratio voicecoder/aiogram acks/s: {ratio:.2f}× (target ≥ {TARGET_RATIO:.0f}×: {verdict})")
    print(
        f"  update → first reply p50 (low load): voicecoder {ours['reply_p50_ms']:.2f} ms, "
        f"aiogram {theirs['reply_p50_ms']:.2f} ms"
    )
    busy = [
        f"{name} {r['bot_cpu_s_at_end_of_load'] / r['wall_s']:.0%} / {r['load_cpu_s'] / r['wall_s']:.0%}"
        for name, r in (("voicecoder", ours), ("aiogram", theirs))
    ]
    print(f"  CPU busy during load, bot / load generator + fake Bot API: {', '.join(busy)}")
    if rounds > 1:
        per_round = ", ".join(
            f"{a:,.0f}/{b:,.0f}" for a, b in zip(ours["acks_per_s_rounds"], theirs["acks_per_s_rounds"], strict=True)
        )
        print(f"  acks/s per round (voicecoder/aiogram): {per_round}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--role", choices=["orchestrate", "bot", "load"], default="orchestrate")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=40)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64, help="dispatcher lanes running at once")
    parser.add_argument("--low-load-count", type=int, default=200)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--reply",
        choices=["fake", "sink", "none"],
        default="fake",
        help="fake: answer /help through TelegramMessenger to the fake Bot API; sink: one raw sendMessage; none",
    )
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    parser.add_argument("--tmp-dir", default=None, help="where the inbox file lives (a real disk: fsync counts)")
    parser.add_argument("--inbox")
    parser.add_argument("--port-file")
    parser.add_argument("--bot-api", default="")
    parser.add_argument("--profile-bot", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--compare-aiogram",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the same load against a minimal aiogram 3 webhook bot (throwaway virtualenv) and compare",
    )
    parser.add_argument("--aiogram-version", default=AIOGRAM_VERSION)
    parser.add_argument("--aiogram-venv", type=Path, default=AIOGRAM_VENV, help="where the throwaway venv lives")
    parser.add_argument("--aiogram-install-timeout", type=float, default=300.0)
    parser.add_argument("--rounds", type=int, default=1, help="with --compare-aiogram: alternate the stacks N times")
    args = parser.parse_args(argv)
    if args.role == "bot":
        import anyio  # noqa: PLC0415

        anyio.run(run_bot, args)
        return 0
    if args.role == "load":
        asyncio.run(run_load(args))
        return 0
    aiogram_python: str | None = None
    if args.compare_aiogram:
        if args.reply != "fake":
            print(f"aiogram comparison skipped: it needs --reply fake (the fake Bot API), not --reply {args.reply}")
        else:
            aiogram_python, note = ensure_aiogram(args.aiogram_venv, args.aiogram_version, args.aiogram_install_timeout)
            print(("aiogram comparison: " if aiogram_python else "aiogram comparison skipped: ") + note, flush=True)
    if aiogram_python is None:
        result = orchestrate(args)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            _report(result)
        return 0
    runs: dict[str, list[dict[str, Any]]] = {"voicecoder": [], "aiogram": []}
    for n in range(max(1, args.rounds)):
        order = ("voicecoder", "aiogram") if n % 2 == 0 else ("aiogram", "voicecoder")
        for stack in order:
            runs[stack].append(orchestrate(args, stack, aiogram_python))
    ours, theirs = _summary(runs["voicecoder"]), _summary(runs["aiogram"])
    if args.json:
        ratio = ours["acks_per_s"] / theirs["acks_per_s"] if theirs["acks_per_s"] else None
        print(json.dumps({**ours, "aiogram": theirs, "acks_ratio_vs_aiogram": ratio}, indent=2))
    else:
        _report(ours)
        _comparison(ours, theirs, args.aiogram_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
