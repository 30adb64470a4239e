"""
The voicecoder side of ``bench/webhook.py``: the production ingress answering /help through the real chat path.

``serve_webhook`` with the durable ``SqliteInbox`` (an update is on disk before its 200) and the
``UpdateDispatcher``, the real ``lane_of``, ``TelegramUpdateHandler`` → ``VoiceCoder`` (fake agent and workspace:
/help touches neither) → ``TelegramMessenger`` → ``TelegramBotApi`` → the bench's fake Bot API. As in ``serve``, the
Prometheus observer counts every outcome and logs "update processed" once per update (JSON lines, as production
sets ``LOG_FORMAT``, through the redacting handler; stderr is discarded unless the bench runs with ``--verbose``).
With ``--stt`` the transcriber is the real local faster-whisper model, so a voice note is downloaded and
transcribed in this process.

It serves ``GET /bench/stats`` (processed, per-chat inversions, acked, failed, backlog, group-commit counts, CPU
seconds) and writes its port to ``--port-file``. Run by the orchestrator only, pinned to the bot's core.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web
from webhook_shapes import BOT_TOKEN, PATH, SECRET, USER_BASE

from voicecoder.adapters.prometheus_metrics import Metrics, UpdateMetrics
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.api import PacingPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import DispatchStats, UpdateDispatcher
from voicecoder.adapters.telegram.http_server import Routes
from voicecoder.adapters.telegram.messenger import TelegramMessenger
from voicecoder.adapters.telegram.routing import lane_of
from voicecoder.adapters.telegram.updates import TelegramUpdateHandler
from voicecoder.adapters.telegram.webhook import IngressStats, WebhookSettings, serve_webhook
from voicecoder.entrypoints.gc_tuning import settle_heap
from voicecoder.entrypoints.logs import configure_logging
from voicecoder.testing.fakes import build_voicecoder


def switches(native_id: int | None) -> int:
    """Context switches (voluntary + involuntary) of one thread of this process so far; 0 when unknown."""
    try:
        status = Path(f"/proc/self/task/{native_id}/status").read_text()
    except OSError:
        return 0
    return sum(
        int(line.split()[1])
        for line in status.splitlines()
        if line.endswith(tuple("0123456789")) and "ctxt_switches" in line
    )


def writer_cpu_s(inbox: SqliteInbox) -> float:
    """CPU seconds of the inbox's writer thread so far (SQLite's work, the commit's system calls); 0 when unknown."""
    thread = getattr(getattr(inbox, "_writer", None), "_thread", None)
    if thread is None or thread.ident is None:
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except OSError:
        return 0.0


async def run(args: argparse.Namespace) -> None:
    last_by_chat: dict[int, int] = {}
    counters = {"processed": 0, "inversions": 0, "heard": 0}
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)))
        client = await stack.enter_async_context(
            TelegramBotApi(
                BOT_TOKEN, base_url=args.bot_api, session=http, pacing=PacingPolicy(per_chat_rate=0, global_rate=0)
            )
        )
        overrides: dict[str, Any] = {}
        if args.stt:
            from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber  # noqa: PLC0415

            transcriber = LocalWhisperTranscriber()
            await anyio.to_thread.run_sync(transcriber.load)  # loaded before the load starts, as after a first note
            overrides["transcriber"] = transcriber
        messenger = TelegramMessenger(client)
        app, _ = build_voicecoder(
            messenger=messenger, allowed_users=[USER_BASE + c for c in range(args.chats)], **overrides
        )
        handler = TelegramUpdateHandler(app, client, messenger=messenger)

        async def handle(update: dict[str, Any]) -> None:
            chat = int(update["message"]["chat"]["id"])
            update_id = int(update["update_id"])
            if update_id < last_by_chat.get(chat, -1):
                counters["inversions"] += 1
            last_by_chat[chat] = update_id
            await handler(update)
            counters["processed"] += 1
            counters["heard"] += "voice" in update["message"]

        settings = WebhookSettings(secret_token=SECRET, path=PATH)
        observer = UpdateMetrics(Metrics())  # what the container gives serve's dispatcher and webhook
        dispatch = DispatchStats(observer=observer)
        ingress = IngressStats(observer=observer)
        inbox = await stack.enter_async_context(SqliteInbox(Path(args.inbox)))
        dispatcher = UpdateDispatcher(inbox, handle, max_concurrency=args.concurrency, stats=dispatch)

        def add_stats(routes: Routes) -> None:
            async def bench_stats(_request: web.BaseRequest) -> web.Response:
                return web.json_response(
                    {
                        **counters,
                        "accepted": ingress.accepted,
                        "failed": dispatch.failed,
                        "backlog": dispatcher.backlog,
                        "commits": inbox.commits,
                        "writes": inbox.writes,
                        "cpu_s": time.process_time(),
                        # this handler runs on the event loop's thread: the ack path and the processing, no writer
                        "main_cpu_s": time.thread_time(),
                        "writer_cpu_s": writer_cpu_s(inbox),
                        "main_switches": switches(threading.main_thread().native_id),
                        "writer_switches": switches(
                            getattr(getattr(inbox._writer, "_thread", None), "native_id", None)
                        ),
                    }
                )

            routes.add_get("/bench/stats", bench_stats)

        async with anyio.create_task_group() as tg:
            port = await tg.start(
                functools.partial(
                    serve_webhook,
                    settings,
                    inbox=inbox,
                    dispatcher=dispatcher,
                    lane_of=lane_of,
                    port=0,
                    configure_app=add_stats,
                    stats=ingress,
                    retention_s=None,
                )
            )
            settle_heap()  # what `voicecoder serve` does once started
            await anyio.Path(args.port_file).write_text(str(port))


def main() -> None:
    parser = argparse.ArgumentParser(description="voicecoder bot for bench/webhook.py")
    parser.add_argument("--inbox", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--bot-api", required=True)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stt", action="store_true", help="transcribe voice notes with the local model")
    parser.add_argument("--trace", default="", help="stamp each request on its way (bench/webhook_trace.py) into FILE")
    parser.add_argument("--slow-ms", type=float, default=2.0, help="with --trace: record loop callbacks this long")
    args = parser.parse_args()
    configure_logging(fmt="json", level="INFO", secrets=[BOT_TOKEN, SECRET])
    tracer = None
    if args.trace:
        from webhook_trace import Tracer  # noqa: PLC0415

        tracer = Tracer(args.slow_ms)
        tracer.install()
    anyio.run(run, args)
    if tracer is not None:
        tracer.dump(Path(args.trace))


if __name__ == "__main__":
    main()
