# mypy: ignore-errors
# ^ This file runs in the throwaway aiogram virtualenv that bench/webhook.py builds (aiogram is not a project
#   dependency), so the project's mypy cannot resolve its imports; ruff still checks it.
"""
The aiogram 3 side of ``bench/webhook.py --compare-aiogram``: a minimal webhook bot as its docs suggest.

aiohttp server through aiogram's ``SimpleRequestHandler`` + ``setup_application`` with its default
background handling (ack first, handle in a task), the secret token checked, and a ``/help`` handler
answering with ``message.answer(...)`` through a ``Bot`` whose session talks to the local fake Bot API.

For the bench it also serves ``GET /bench/stats`` with the keys the load generator reads (processed,
inversions, accepted, failed, backlog, cpu_s ...), counted the same way as the voicecoder bench bot:
an update is "processed" once its reply was sent; an inversion is a chat's update handled after a later one.

Run by the orchestrator only: ``<venv>/bin/python bench/aiogram_reference_bot.py --bot-api URL --token T
--secret S --path /hook --port-file F``. Loopback only; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command
from aiogram.types import ErrorEvent, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web


async def main(args: argparse.Namespace) -> None:
    counters = {"processed": 0, "inversions": 0, "reply_errors": 0, "failed": 0, "accepted": 0}
    last_by_chat: dict[int, int] = {}

    router = Router()

    @router.message(Command("help"))
    async def on_help(message: Message, event_update: Any) -> None:
        update_id = int(event_update.update_id)
        chat = message.chat.id
        if update_id < last_by_chat.get(chat, -1):
            counters["inversions"] += 1
        last_by_chat[chat] = update_id
        await message.answer(f"help for #{update_id}")
        counters["processed"] += 1

    @router.errors()
    async def on_error(_event: ErrorEvent) -> bool:
        counters["failed"] += 1
        return True

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    session = AiohttpSession(api=TelegramAPIServer.from_base(args.bot_api))
    bot = Bot(args.token, session=session)

    @web.middleware
    async def count_acks(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.path == args.path and response.status == 200:
            counters["accepted"] += 1
        return response

    app = web.Application(middlewares=[count_acks])
    webhook = SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=args.secret)
    webhook.register(app, path=args.path)
    setup_application(app, dispatcher, bot=bot)

    async def bench_stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                **counters,
                "duplicates": 0,
                "backlog": len(webhook._background_feed_update_tasks),  # its in-flight background tasks
                "commits": 0,
                "writes": 0,
                "cpu_s": time.process_time(),
                "main_cpu_s": time.thread_time(),
            }
        )

    app.router.add_get("/bench/stats", bench_stats)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        await loop.run_in_executor(None, Path(args.port_file).write_text, str(port))
        await stop.wait()
    finally:
        await runner.cleanup()
        await bot.session.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description="aiogram 3 reference webhook bot for bench/webhook.py")
    parser.add_argument("--bot-api", required=True, help="base URL of the local fake Bot API")
    parser.add_argument("--token", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--port-file", required=True)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
