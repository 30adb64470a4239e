"""
The real webhook ingress wired like production, for the defect and fuzz tests, plus a raw HTTP/1.1 client.

`running_ingress` starts `serve_webhook` on 127.0.0.1 with the real `lane_of`, the durable `SqliteInbox`, the
`UpdateDispatcher` and the real `TelegramUpdateHandler` → `VoiceCoder` (fake ports) → `TelegramMessenger` →
`TelegramBotApi` → the local fake Bot API, so "acked and then failed" would show up in the dispatcher's counters.
`RawHttp` sends exactly the bytes it is given (non-UTF-8 header values, any body) over one keep-alive
connection, reconnecting when the server closes it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Self

import anyio
import anyio.abc
import attrs
from aiohttp import web
from anyio.streams.buffered import BufferedByteReceiveStream

from voicecoder.adapters.sqlite.inbox import InboxItem, SqliteInbox
from voicecoder.adapters.telegram.api import PacingPolicy, RetryPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import DispatchStats, Handler, UpdateDispatcher
from voicecoder.adapters.telegram.messenger import TelegramMessenger
from voicecoder.adapters.telegram.polling import UpdatePoller, run_polling
from voicecoder.adapters.telegram.routing import LaneOf, lane_of
from voicecoder.adapters.telegram.updates import TelegramUpdateHandler
from voicecoder.adapters.telegram.webhook import IngressStats, WebhookSettings, serve_webhook
from voicecoder.simulators.bot_api import DEFAULT_TOKEN, DEFAULT_USER, FakeBotApi


@attrs.define
class UpdateLog:
    """An `UpdateObserver` that records what the ingress and the dispatcher tell it, in order."""

    outcomes: list[str] = attrs.field(factory=list)
    attempts: list[float] = attrs.field(factory=list)
    done: list[tuple[str, float]] = attrs.field(factory=list)
    retries: list[tuple[int, str]] = attrs.field(factory=list)
    failures: list[tuple[int, str]] = attrs.field(factory=list)

    def outcome(self, name: str, /) -> None:
        self.outcomes.append(name)

    def attempted(self, seconds: float, /) -> None:
        self.attempts.append(seconds)

    def processed(self, lane: str, seconds: float, /) -> None:
        self.done.append((lane, seconds))

    def retried(self, item: InboxItem, error: str, /) -> None:
        self.retries.append((item.update_id, error))

    def failed(self, item: InboxItem, error: str, /) -> None:
        self.failures.append((item.update_id, error))


SECRET = "fuzz-Secret_token-0123456789"
PATH = "/tg-ingress-under-test"
ALLOWED = DEFAULT_USER.id


@attrs.define
class Ingress:
    port: int
    api: FakeBotApi
    inbox: SqliteInbox
    dispatcher: UpdateDispatcher
    stats: IngressStats
    dispatch: DispatchStats
    outcomes: list[str]


@asynccontextmanager
async def running_polling(
    api: TelegramBotApi,
    inbox: SqliteInbox,
    handler: Handler,
    *,
    lane_of: LaneOf = lane_of,
    stats: DispatchStats | None = None,
    **options: Any,
) -> AsyncIterator[UpdatePoller]:
    """`run_polling` in the background (no signal handling) until the block ends; *options* go to it as given."""
    stop = anyio.Event()
    dispatcher = UpdateDispatcher(inbox, handler, retry_delays=(0.01,), stats=stats)
    async with anyio.create_task_group() as tg:
        poller: UpdatePoller = await tg.start(
            functools.partial(
                run_polling,
                api,
                inbox=inbox,
                dispatcher=dispatcher,
                lane_of=lane_of,
                stop=stop,
                handle_signals=False,
                **options,
            )
        )
        try:
            yield poller
            await dispatcher.join()
        finally:
            stop.set()


async def start_webhook(
    tg: anyio.abc.TaskGroup,
    settings: WebhookSettings,
    *,
    inbox: SqliteInbox,
    dispatcher: UpdateDispatcher,
    stop: anyio.Event,
    lane_of: LaneOf = lane_of,
    **options: Any,
) -> int:
    """`serve_webhook` in *tg* on a free loopback port, no signal handling, until *stop*; its port once it listens."""
    port: int = await tg.start(
        functools.partial(
            serve_webhook,
            settings,
            inbox=inbox,
            dispatcher=dispatcher,
            lane_of=lane_of,
            port=0,
            stop=stop,
            handle_signals=False,
            **options,
        )
    )
    return port


@asynccontextmanager
async def running_ingress(tmp_path: Path, *, max_body_bytes: int = 1 << 20) -> AsyncIterator[Ingress]:
    """The production ingress on an ephemeral port; processing replies go to a local fake Bot API."""
    from voicecoder.testing.fakes import build_voicecoder  # noqa: PLC0415 - heavy; only the rig needs it

    updates = UpdateLog()
    outcomes = updates.outcomes
    stats = IngressStats(observer=updates)
    dispatch = DispatchStats()
    settings = WebhookSettings(secret_token=SECRET, path=PATH, max_body_bytes=max_body_bytes)
    stop = anyio.Event()
    async with (
        FakeBotApi(strict_chats=False) as api,
        TelegramBotApi(
            DEFAULT_TOKEN,
            base_url=api.base_url,
            retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02),
            pacing=PacingPolicy(per_chat_rate=0, global_rate=0),
        ) as client,
        SqliteInbox(tmp_path / "inbox.sqlite3") as inbox,
    ):
        messenger = TelegramMessenger(client)
        app, _ = build_voicecoder(messenger=messenger, allowed_users=(ALLOWED,))
        handler = TelegramUpdateHandler(app, client, messenger=messenger, bot_username="voicecoder_bot")
        dispatcher = UpdateDispatcher(inbox, handler, retry_delays=(0.01,), max_attempts=2, stats=dispatch)
        async with anyio.create_task_group() as tg:
            port = await start_webhook(
                tg, settings, inbox=inbox, dispatcher=dispatcher, stop=stop, stats=stats, retention_s=None
            )
            try:
                yield Ingress(port, api, inbox, dispatcher, stats, dispatch, outcomes)
            finally:
                stop.set()


class RawHttp:
    """A minimal HTTP/1.1 client over one keep-alive connection that sends header bytes exactly as given."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._stream: anyio.abc.SocketStream | None = None
        self._reader: BufferedByteReceiveStream | None = None

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()
        self._stream = self._reader = None

    async def post(self, path: str, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> int:
        """POST *body* with *headers* (Host and Content-Length are added); the response status."""
        head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        for attempt in (1, 2):
            if self._stream is None:
                self._stream = await anyio.connect_tcp("127.0.0.1", self._port)
                self._reader = BufferedByteReceiveStream(self._stream)
            try:
                await self._stream.send(head + body)
                return await self._response()
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.IncompleteRead, ConnectionError):
                await self.aclose()  # the server closed a kept-alive connection: retry once on a fresh one
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> int:
        assert self._reader is not None
        head = await self._reader.receive_until(b"\r\n\r\n", 65536)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get(b"content-length", b"0"))
        if length:
            await self._reader.receive_exactly(length)
        if fields.get(b"connection", b"").lower() == b"close":
            await self.aclose()
        return status


class RecordsAtLeast(logging.Handler):
    """Keeps every record at or above *level*, and every record that carries a traceback, whatever its level."""

    def __init__(self, level: int = logging.ERROR) -> None:
        super().__init__(logging.DEBUG)
        self.threshold = level
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= self.threshold or record.exc_info or record.exc_text:
            self.records.append(record)

    def lines(self) -> list[str]:
        formatter = logging.Formatter()
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            + (f"\n{formatter.formatException(r.exc_info)}" if r.exc_info else "")
            for r in self.records
        ]


@asynccontextmanager
async def watching_logs(level: int = logging.ERROR) -> AsyncIterator[RecordsAtLeast]:
    """Collect ERROR (or *level*) records and tracebacks from every logger while the block runs (at INFO, as served)."""
    handler = RecordsAtLeast(level)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


class ThirdPartyBotApi:
    """
    A Bot API emulator of the kind people run locally: getUpdates ignores ``timeout`` (it answers at once), and
    every method it does not implement is an HTTP 500 with an HTML page instead of a Bot API error.
    """

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.calls: list[tuple[str, float]] = []
        self.sent: list[dict[str, Any]] = []
        self.empty_answers: list[float] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def calls_to(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name.lower() == method.lower())

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append((method, time.monotonic()))
        params = await request.json() if request.can_read_body else {}
        if method.lower() == "getupdates":
            offset = params.get("offset") or 0
            batch = [u for u in self.updates if u["update_id"] >= offset]
            if not batch:
                self.empty_answers.append(time.monotonic())
            return web.json_response({"ok": True, "result": batch})
        if method.lower() == "sendmessage":
            self.sent.append(params)
            message = {"message_id": len(self.sent), "chat": {"id": params["chat_id"]}, "date": 1, "text": "x"}
            return web.json_response({"ok": True, "result": message})
        return web.Response(
            status=500, text="<html><body><h1>500 Internal Server Error</h1></body></html>", content_type="text/html"
        )
