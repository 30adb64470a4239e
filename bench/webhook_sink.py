"""
The load side of ``bench/webhook.py`` besides wrk: a fake Bot API cheap enough not to be the bottleneck, and the
low-load driver that measures update → first reply.

The fake Bot API is a bare ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, Content-Length bodies) answering
``/bot<token>/<method>`` the way the Bot API does: ``{"ok": true, "result": ...}`` with a Message for sendMessage
and editMessageText (what aiogram and voicecoder both parse), True for the rest, getFile and ``/file/bot…`` for
the voice note of the STT phase. It parses JSON, urlencoded and multipart parameters (aiogram sends forms) and
notes the arrival time of every reply per chat.

Run by the orchestrator only, pinned to the load core: it prints ``{"port": N}`` and then obeys one JSON command
per stdin line, answering each with one JSON line: ``stats`` (replies so far and its CPU seconds), ``low``
(send updates one at a time to the bot and time the first reply of each), ``voice`` (send one voice update) and
``quit``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

BOT = {"id": 7000000001, "is_bot": True, "first_name": "VoiceCoder", "username": "voicecoder_bot"}
OK_TRUE = b'{"ok":true,"result":true}'


def _response(body: bytes, status: bytes = b"200 OK", content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type + b"\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def _params(head: bytes, body: bytes) -> dict[str, Any]:
    lowered = head.lower()
    if b"application/json" in lowered:
        parsed = json.loads(body) if body else {}
        return parsed if isinstance(parsed, dict) else {}
    if b"application/x-www-form-urlencoded" in lowered:
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}
    if b"multipart/form-data" in lowered:
        params: dict[str, Any] = {}
        for part in body.split(b"\r\n--"):
            header, _, value = part.partition(b"\r\n\r\n")
            marker = header.find(b'name="')
            if marker >= 0:
                name = header[marker + 6 : header.find(b'"', marker + 6)].decode()
                params[name] = value.rsplit(b"\r\n", 1)[0].decode(errors="replace")
        return params
    return {}


class FakeBotApiSink:
    """Answers Bot API calls; ``on_reply(chat_id, monotonic time)`` for every message the bot sends."""

    def __init__(self, voice: bytes, on_reply: Callable[[int, float], None]) -> None:
        self.voice = voice
        self.on_reply = on_reply
        self.replies = 0
        self.calls: dict[str, int] = {}
        self._message_ids = 0

    def handle(self, head: bytes, body: bytes) -> bytes:
        target = head.split(b" ", 2)[1].decode()
        if target.startswith("/file/"):
            return _response(self.voice, content_type=b"audio/ogg")
        method = target.rsplit("/", 1)[-1].lower()
        self.calls[method] = self.calls.get(method, 0) + 1
        if method in {"sendmessage", "editmessagetext", "senddocument"}:
            params = _params(head, body)
            chat_id = int(params.get("chat_id", 0))
            self.replies += 1
            self.on_reply(chat_id, time.monotonic())
            self._message_ids += 1
            message = {
                "message_id": int(params.get("message_id") or self._message_ids),
                "from": BOT,
                "chat": {"id": chat_id, "type": "private", "first_name": "Bench"},
                "date": int(time.time()),
                "text": "ok",
            }
            return _response(json.dumps({"ok": True, "result": message}).encode())
        if method == "getfile":
            file = {"file_id": "voice", "file_unique_id": "v", "file_size": len(self.voice), "file_path": "voice/n.oga"}
            return _response(json.dumps({"ok": True, "result": file}).encode())
        if method == "getme":
            return _response(json.dumps({"ok": True, "result": BOT}).encode())
        return _response(OK_TRUE)


class _Connection(asyncio.Protocol):
    def __init__(self, sink: FakeBotApiSink) -> None:
        self._sink = sink
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            assert self._transport is not None
            self._transport.write(self._sink.handle(head, body))


# --- low-load driver -------------------------------------------------------------------------------------------


class RawClient:
    """One keep-alive connection to the bot's webhook."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, secret: str) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(*self._address)
        assert self._reader is not None
        self._writer.write(
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self._reader.readexactly(length)
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    from webhook_shapes import text_update, voice_update  # noqa: PLC0415 - the bench's own helpers, on sys.path

    voice = Path(sys.argv[1]).read_bytes() if len(sys.argv) > 1 else b""  # noqa: ASYNC240 - once, before serving
    waiters: dict[int, asyncio.Future[float]] = {}

    def on_reply(chat_id: int, at: float) -> None:
        waiter = waiters.pop(chat_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(at)

    sink = FakeBotApiSink(voice, on_reply)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(sink), "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := await stdin.readline():
        command = json.loads(line)
        if command["do"] == "quit":
            break
        if command["do"] == "stats":
            answer: dict[str, Any] = {"replies": sink.replies, "cpu_s": time.process_time(), "calls": sink.calls}
        elif command["do"] == "voice":
            client = RawClient("127.0.0.1", command["port"])
            body = voice_update(command["update_id"], command["chat"], command["user_base"])
            answer = {"status": await client.post(command["path"], body, command["secret"])}
            client.close()
        else:  # "low": one update at a time, time to the first reply
            client = RawClient("127.0.0.1", command["port"])
            acks: list[float] = []
            replies: list[float] = []
            missing = 0
            for n in range(command["count"]):
                chat = n % command["chats"]
                user = command["user_base"] + chat
                waiter: asyncio.Future[float] = loop.create_future()
                waiters[user] = waiter
                body = text_update(command["first_id"] + n, chat, command["user_base"])
                started = time.monotonic()
                await client.post(command["path"], body, command["secret"])
                acks.append(time.monotonic() - started)
                try:
                    replies.append(await asyncio.wait_for(waiter, 5) - started)
                except TimeoutError:
                    missing += 1
                waiters.pop(user, None)
                await asyncio.sleep(0.005)  # low load: the bot is idle when the next update comes
            client.close()
            answer = {
                "n": len(acks),
                "missing": missing,
                "ack_p50_ms": _pct(acks, 0.5) * 1000,
                "reply_p50_ms": _pct(replies, 0.5) * 1000,
                "reply_p99_ms": _pct(replies, 0.99) * 1000,
            }
        print(json.dumps(answer), flush=True)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
