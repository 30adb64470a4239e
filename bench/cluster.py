"""
Cluster benchmark: the embedded SQLite mode and the PostgreSQL cluster, measured side by side in one run.

Everything runs on this machine: a throw-away PostgreSQL (Debian's, as the tests start it), `voicecoder serve`
processes in each role, the fake Bot API, and the load generator (aiohttp, in this process; its CPU is shown).

* acks/s and ack p50/p99: C concurrent senders POST /help updates (unique update_id, 50 chats, secret header) for
  D seconds to (a) the embedded `serve` (SQLite inbox, its dispatcher answering every /help), (b) one
  `--role ingress` replica, (c) two replicas, each request to the next one (per-request balancing);
* claim-to-start p50/p99: one update at a time through an ingress to a worker: from the row's commit
  (`received_at`) to the worker's claim (`claimed_at`), and update → first reply at the fake Bot API;
* failover: two workers of one host; kill -9 (then SIGSTOP) of the owner, time until the other owns the workspace
  and until a new update is answered. The lease ttl is printed beside it: failover is about one ttl by design.

The fsync of this VM's disk is far faster than a real disk's; absolute latencies are optimistic, ratios are not.
Run: ``.venv/bin/python bench/cluster.py [--duration 5] [--concurrency 20] [--ttl 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from tests.cluster_rig import (  # noqa: E402
    SECRET_HEADER,
    TOKEN,
    WEBHOOK_SECRET,
    RoleProcess,
    lease_row,
    running_role,
    running_worker,
)
from tests.loopback import wait_http  # noqa: E402

from voicecoder.simulators.bot_api import FakeBotApi, FakeUser  # noqa: E402
from voicecoder.testing.postgres_server import PostgresServer  # noqa: E402

CHATS = 50
USER_BASE = 5_000_000


def update(update_id: int, chat: int, text: str = "/help") -> bytes:
    sender = {"id": chat, "first_name": "B"}
    message = {"message_id": update_id, "date": int(time.time()), "chat": {"id": chat, "type": "private"}}
    entities = [{"offset": 0, "length": len(text), "type": "bot_command"}] if text.startswith("/") else []
    return json.dumps(
        {"update_id": update_id, "message": {**message, "from": sender, "text": text, "entities": entities}}
    ).encode()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def load(hooks: list[str], *, duration: float, concurrency: int, first_id: int) -> dict[str, Any]:
    """C senders, each owning its chats (one update of a chat at a time, as Telegram sends); per-request balancing."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_id = first_id
    turn = 0
    deadline = time.monotonic() + duration
    cpu0, wall0 = cpu_s(), time.monotonic()

    async def sender(n: int, http: aiohttp.ClientSession) -> None:
        nonlocal next_id, turn
        chats = [USER_BASE + c for c in range(CHATS) if c % concurrency == n] or [USER_BASE + n]
        i = 0
        while time.monotonic() < deadline:
            update_id, next_id = next_id, next_id + 1
            hook, turn = hooks[turn % len(hooks)], turn + 1
            body = update(update_id, chats[i % len(chats)])
            i += 1
            started = time.perf_counter()
            async with http.post(hook, data=body, headers={SECRET_HEADER: WEBHOOK_SECRET}) as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(sender(n, http) for n in range(concurrency)))
    wall = time.monotonic() - wall0
    return {
        "acks_per_s": statuses.get(200, 0) / wall,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "non_200": sum(v for k, v in statuses.items() if k != 200),
        "load_cpu": (cpu_s() - cpu0) / wall,
        "next_id": next_id,
    }


async def wait_for(what: str, predicate: Callable[[], bool], within: float = 60.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def set_webhook(bot_api: FakeBotApi, url: str) -> None:
    async with aiohttp.ClientSession() as http:
        await http.post(f"{bot_api.base_url}/bot{TOKEN}/setWebhook", json={"url": url, "secret_token": WEBHOOK_SECRET})


def embedded_env(bot_api: FakeBotApi) -> dict[str, str]:
    return {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": bot_api.base_url,
        "ALLOWED_USER_IDS": ",".join(str(USER_BASE + c) for c in range(CHATS)),
        "STT_PROVIDER": "local",
        "CLAUDE_BINARY": str(ROOT / "tests" / "fakes" / "fake_claude.py"),
        "LOG_LEVEL": "WARNING",
    }


async def acks(args: argparse.Namespace, server: PostgresServer, tmp: Path) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    next_id = 1
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot_api:
        with running_role(tmp, "all", None, name="embedded", **embedded_env(bot_api)) as embedded:
            await wait_http(embedded.url + "/healthz", timeout=60.0)
            results["embedded SQLite (serve)"] = await load(
                [embedded.hook], duration=args.duration, concurrency=args.concurrency, first_id=next_id
            )
        with (
            server.database("bench_acks") as url,
            running_role(tmp, "ingress", url, name="i1", LOG_LEVEL="WARNING") as one,
        ):
            await wait_http(one.url + "/readyz", timeout=60.0)
            next_id = results["embedded SQLite (serve)"]["next_id"]
            results["1 ingress + PostgreSQL"] = await load(
                [one.hook], duration=args.duration, concurrency=args.concurrency, first_id=next_id
            )
            with running_role(tmp, "ingress", url, name="i2", LOG_LEVEL="WARNING") as two:
                await wait_http(two.url + "/readyz", timeout=60.0)
                next_id = results["1 ingress + PostgreSQL"]["next_id"]
                results["2 ingress + PostgreSQL"] = await load(
                    [one.hook, two.hook], duration=args.duration, concurrency=args.concurrency, first_id=next_id
                )
    return results


async def cluster_latency_and_failover(args: argparse.Namespace, server: PostgresServer, tmp: Path) -> dict[str, Any]:
    # A chat per sample: Telegram's ~1 message/s per chat (which the bot keeps to) would otherwise be measured.
    users = [FakeUser(USER_BASE + n, first_name="B") for n in range(args.samples + 4)]
    ids = [u.id for u in users]
    figures: dict[str, Any] = {}
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot_api:
        for user in users:
            bot_api.add_chat(user)
        with server.database("bench_cluster") as url, running_role(tmp, "ingress", url, name="ci") as ingress:
            await wait_http(ingress.url + "/readyz", timeout=60.0)
            await set_webhook(bot_api, ingress.hook)
            extra = {"LOG_LEVEL": "INFO", "ttl": str(args.ttl)}
            with running_worker(tmp, url, bot_api.base_url, "w1", host="h1", users=ids, **extra) as w1:
                await wait_for("a lease", lambda: lease_row(url)[0] is not None)
                with running_worker(tmp, url, bot_api.base_url, "w2", host="h1", users=ids, **extra) as w2:
                    replies = [await round_trip(bot_api, user) for user in users[: args.samples]]
                    with psycopg.connect(url) as conn:
                        rows = conn.execute(
                            "SELECT extract(epoch FROM claimed_at) - received_at FROM voicecoder_inbox "
                            "WHERE claimed_at IS NOT NULL"
                        ).fetchall()
                    claim = [float(r[0]) for r in rows]
                    figures["claim_p50_ms"] = percentile(claim, 0.5) * 1000
                    figures["claim_p99_ms"] = percentile(claim, 0.99) * 1000
                    figures["reply_p50_ms"] = percentile(replies, 0.5) * 1000
                    figures["reply_p99_ms"] = percentile(replies, 0.99) * 1000
                    figures["kill9"] = await failover(bot_api, users[-1], url, [w1, w2], pause=False)
                    # A fresh standby for the pause: the killed worker is gone.
                    with running_worker(tmp, url, bot_api.base_url, "w3", host="h1", users=ids, **extra) as w3:
                        await wait_for("w3 ready", lambda: "waiting for a lease" in w3.output())
                        live = [w for w in (w1, w2, w3) if w.process.poll() is None]
                        figures["sigstop"] = await failover(bot_api, users[-2], url, live, pause=True)
    figures["ttl"] = args.ttl
    return figures


async def round_trip(bot_api: FakeBotApi, user: FakeUser) -> float:
    before = len(bot_api.bot_messages(user.id))
    started = time.monotonic()
    await bot_api.send_text("/status", user=user)
    await wait_for("a reply", lambda: len(bot_api.bot_messages(user.id)) > before)
    return time.monotonic() - started


async def failover(
    bot_api: FakeBotApi, user: FakeUser, url: str, workers: list[RoleProcess], *, pause: bool
) -> dict[str, float]:
    owner_id, epoch = lease_row(url)
    owner = next(w for w in workers if owner_id and owner_id in w.output() and w.process.poll() is None)
    if pause:
        owner.process.send_signal(signal.SIGSTOP)
    else:
        owner.kill()
    try:
        taken = await wait_for("a takeover", lambda: lease_row(url)[1] > epoch)
        answered = taken + await round_trip(bot_api, user)
    finally:
        if pause:
            owner.process.send_signal(signal.SIGCONT)
    return {"takeover_s": taken, "answered_s": answered}


def report(ack: dict[str, dict[str, Any]], cluster: dict[str, Any], args: argparse.Namespace) -> None:
    base = ack["embedded SQLite (serve)"]["acks_per_s"]
    print(f"\nwebhook acks, {args.concurrency} concurrent senders, {args.duration:g} s each (load side: this process)")
    header = f"{'mode':<26}{'acks/s':>9}{'vs embedded':>13}{'ack p50 ms':>12}{'ack p99 ms':>12}{'non-200':>9}"
    print(header + f"{'load CPU':>10}")
    for name, row in ack.items():
        print(
            f"{name:<26}{row['acks_per_s']:>9.0f}{row['acks_per_s'] / base:>12.2f}x{row['p50_ms']:>12.1f}"
            f"{row['p99_ms']:>12.1f}{row['non_200']:>9}{row['load_cpu']:>9.0%}"
        )
    print(f"\ncluster (lease ttl {cluster['ttl']:g} s, workers poll every 100 ms)")
    print(f"{'figure':<46}{'value':>12}")
    rows = [
        ("claim after commit p50 / p99 (ms)", f"{cluster['claim_p50_ms']:.0f} / {cluster['claim_p99_ms']:.0f}"),
        ("update → first reply p50 / p99 (ms)", f"{cluster['reply_p50_ms']:.0f} / {cluster['reply_p99_ms']:.0f}"),
        ("kill -9 of the owner → takeover (s)", f"{cluster['kill9']['takeover_s']:.2f}"),
        ("kill -9 of the owner → next update answered (s)", f"{cluster['kill9']['answered_s']:.2f}"),
        ("SIGSTOP of the owner → takeover (s)", f"{cluster['sigstop']['takeover_s']:.2f}"),
        ("SIGSTOP of the owner → next update answered (s)", f"{cluster['sigstop']['answered_s']:.2f}"),
    ]
    for name, value in rows:
        print(f"{name:<46}{value:>12}")


async def main_async(args: argparse.Namespace) -> int:
    server = PostgresServer.start_new()
    try:
        with tempfile.TemporaryDirectory(prefix="voicecoder-bench-cluster-") as tmp:
            ack = await acks(args, server, Path(tmp))
            cluster = await cluster_latency_and_failover(args, server, Path(tmp))
    finally:
        server.destroy()
    report(ack, cluster, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--ttl", type=float, default=2.0)
    parser.add_argument("--samples", type=int, default=20)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
