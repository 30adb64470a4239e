"""
Regression tests for the eight ingress and transport defects of issue 13, each through real servers on 127.0.0.1.

1. deeply nested JSON → 400, never 500;  2. a non-UTF-8 secret header → 401;  3. shape checks at every level
(an Update is always acked; what cannot be routed is ignored, never stored or failed);  5. polling retries forever
and never spins;  6. polling sets the receive time;  7. the token's secret half is redacted too;  8. a Bot API
server that answers unknown methods with a 500 and an HTML page does not stop `serve`.  (4, start-up failures as
one line, is in test_serve_startup.py.)
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from tests.ingress_rig import (
    ALLOWED,
    PATH,
    SECRET,
    RawHttp,
    ThirdPartyBotApi,
    UpdateLog,
    running_ingress,
    running_polling,
    watching_logs,
)
from tests.loopback import free_port
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.api import RetryPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import DispatchStats
from voicecoder.adapters.telegram.polling import Backoff
from voicecoder.adapters.telegram.webhook import MAX_JSON_DEPTH, SECRET_HEADER, json_too_deep
from voicecoder.simulators.bot_api import DEFAULT_TOKEN, FakeBotApi, FakeUser

SECRET_HEADER_BYTES = SECRET_HEADER.encode()
JSON_HEADERS = [(b"Content-Type", b"application/json"), (SECRET_HEADER_BYTES, SECRET.encode())]


def message_update(update_id: int, *, user: int = ALLOWED, text: str = "/help", **message: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "message_id": update_id,
        "from": {"id": user, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": user, "type": "private", "first_name": "Ada"},
        "date": 1764000000,
        "text": text,
    }
    base.update(message)
    return {"update_id": update_id, "message": {k: v for k, v in base.items() if v is not ...}}


class TestDeepNesting:
    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 100_000 + b"]" * 100_000,
            b"[" * 950 + b"]" * 950,
            b"[" * 990 + b"]" * 990,
            b'{"a":' * 5000 + b"1" + b"}" * 5000,
            b'{"update_id": 1, "message": ' + b"[" * 3000 + b"]" * 3000 + b"}",
            b"[" * 200_000,  # never closed
        ],
        ids=["100k-arrays", "950", "990", "5k-objects", "inside-an-update", "unclosed"],
    )
    async def test_is_400_without_a_traceback(self, tmp_path: Path, body: bytes) -> None:
        """Nesting past the limit is refused before parsing: 400, no ERROR log, nothing stored."""
        async with watching_logs() as logs, running_ingress(tmp_path) as ingress:
            http = RawHttp(ingress.port)
            status = await http.post(PATH, JSON_HEADERS, body)
            await http.aclose()
            depth = await ingress.inbox.depth()

        assert (status, depth, logs.lines()) == (400, 0, [])

    async def test_an_update_within_the_limit_is_processed(self, tmp_path: Path) -> None:
        """Nesting well inside the limit (deeper than any real Update) is still an ordinary update."""
        nested: Any = "leaf"
        for _ in range(MAX_JSON_DEPTH - 5):
            nested = [nested]
        update = message_update(7, extra=nested)

        async with running_ingress(tmp_path) as ingress:
            http = RawHttp(ingress.port)
            status = await http.post(PATH, JSON_HEADERS, json.dumps(update).encode())
            await http.aclose()
            with anyio.fail_after(10):
                while ingress.dispatch.processed < 1:
                    await anyio.sleep(0.01)

        assert status == 200
        assert ingress.outcomes == ["acked"]

    @pytest.mark.parametrize(
        ("text", "deep"),
        [
            (b'{"a": "' + b"[" * 500 + b'"}', False),  # brackets inside a string do not nest
            (b'{"a": "\\"' + b"[" * 500 + b'"}', False),  # nor after an escaped quote
            (b'{"a": "\\\\"' + b", " + b"[" * 500, True),  # an escaped backslash ends the escape
            (b"[" * 65 + b"]" * 65, True),
            (b"[" * 64 + b"]" * 64, False),
            (b"[]" * 10_000, False),
        ],
    )
    def test_depth_scan_understands_strings(self, text: bytes, deep: bool) -> None:
        """The depth check counts only structural brackets, escapes included, without recursion."""
        assert json_too_deep(text, MAX_JSON_DEPTH) is deep


class TestSecretHeader:
    @pytest.mark.parametrize(
        "value",
        [b"caf\xe9", b"\xff\xfe\xfd", SECRET.encode() + b"\xe9", b"\xc3\x28", "ünïcødé".encode()],
        ids=["latin1", "invalid-utf8", "secret-plus-byte", "broken-sequence", "utf8-non-ascii"],
    )
    async def test_non_utf8_or_non_ascii_secret_is_401(self, tmp_path: Path, value: bytes) -> None:
        """A secret header that is not the secret is 401, whatever its bytes: never a 500, never a traceback."""
        body = json.dumps(message_update(1)).encode()
        async with watching_logs() as logs, running_ingress(tmp_path) as ingress:
            http = RawHttp(ingress.port)
            status = await http.post(PATH, [(b"Content-Type", b"application/json"), (SECRET_HEADER_BYTES, value)], body)
            await http.aclose()
            depth = await ingress.inbox.depth()

        assert (status, depth, logs.lines()) == (401, 0, [])


class TestMalformedHttp:
    @pytest.mark.parametrize(
        ("headers", "body"),
        [
            ([(b"Content-Encoding", b"gzip")], b"this is not gzip"),
            ([(b"Content-Encoding", b"deflate")], b"\x00\x01 nor deflate"),
            ([(SECRET_HEADER_BYTES, b"\x00\x01")], b"{}"),  # control characters HTTP forbids in a header value
            ([(b"X-Odd", b"\x7f\x00")], b"{}"),
        ],
        ids=["bad-gzip", "bad-deflate", "control-bytes-in-secret", "control-bytes-elsewhere"],
    )
    async def test_is_400_and_one_info_line(
        self, tmp_path: Path, headers: list[tuple[bytes, bytes]], body: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        What aiohttp itself refuses (a body that does not decode, a header byte HTTP forbids) is 400 and an INFO
        line, not an ERROR traceback anyone could repeat to fill the log.
        """
        caplog.set_level(logging.INFO)
        async with watching_logs() as logs, running_ingress(tmp_path) as ingress:
            http = RawHttp(ingress.port)
            status = await http.post(PATH, [*JSON_HEADERS[:1], (SECRET_HEADER_BYTES, SECRET.encode()), *headers], body)
            await http.aclose()

        assert (status, logs.lines()) == (400, [])
        assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


class TestBodies:
    """How a body arrives does not change what is stored: in one packet with its head, in pieces, compressed."""

    async def test_a_body_in_pieces_or_compressed_is_stored_as_sent(self, tmp_path: Path) -> None:
        """
        A body still arriving when the handler starts (sent in two writes with a pause) is read to its end, and a
        gzip body is stored decompressed; both are acked and stored byte for byte as the update's JSON.
        """
        pieces = json.dumps(message_update(31)).encode()
        packed = json.dumps(message_update(32)).encode()
        async with running_ingress(tmp_path) as ingress:
            async with await anyio.connect_tcp("127.0.0.1", ingress.port) as stream:
                head = b"".join(
                    (
                        b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                        b"".join(name + b": " + value + b"\r\n" for name, value in JSON_HEADERS),
                        b"Content-Length: " + str(len(pieces)).encode() + b"\r\nConnection: close\r\n\r\n",
                    )
                )
                await stream.send(head + pieces[:10])
                await anyio.sleep(0.2)  # the handler runs meanwhile and finds the body incomplete
                await stream.send(pieces[10:])
                answer = await BufferedByteReceiveStream(stream).receive_until(b"\r\n", 1024)
            http = RawHttp(ingress.port)
            gzipped = await http.post(PATH, [*JSON_HEADERS, (b"Content-Encoding", b"gzip")], gzip.compress(packed))
            await http.aclose()
            first, second = await ingress.inbox.get(31), await ingress.inbox.get(32)

        assert answer.startswith(b"HTTP/1.1 200")
        assert gzipped == 200
        assert first is not None
        assert second is not None
        assert (first.body, second.body) == (pieces, packed)


class TestShapeChecks:
    @pytest.mark.parametrize(
        "update",
        [
            message_update(11, message_id=...),
            message_update(12, message_id="12"),
            message_update(13, chat=...),
            message_update(14, chat={"type": "private"}),
            message_update(15, chat={"id": "15"}),
            message_update(16, chat=[1]),
            {"update_id": 17, "message": {"message_id": 1, "chat": {"id": -100}, "date": 1, "text": "no from"}},
            {"update_id": 18, "message": {**message_update(18)["message"], "from": {"id": "x"}}},
            {"update_id": 19, "message": {**message_update(19)["message"], "from": {"id": 7, "is_bot": True}}},
            {"update_id": 20, "message": {**message_update(20)["message"], "sender_chat": {"id": -1}, "from": None}},
            message_update(21, voice={"duration": 2}),
            message_update(22, voice="AwACAgIAAx"),
            message_update(23, document=[]),
            {"update_id": 24, "callback_query": {"id": 5, "from": {"id": ALLOWED}, "data": "status"}},
            {"update_id": 25, "callback_query": {"id": "5", "from": None, "data": "status"}},
            {"update_id": 26, "callback_query": {"id": "5", "from": {"id": ALLOWED}, "message": {"chat": {"id": 1}}}},
            {"update_id": 27, "message": None},
            {"update_id": 28, "message": "text"},
            {"update_id": 29, **message_update(29), "callback_query": {"id": "5", "from": {"id": ALLOWED}}},
            {"update_id": 30, "channel_post": {"message_id": 1, "chat": {"id": -100, "type": "channel"}, "date": 1}},
            {"update_id": -1, **{k: v for k, v in message_update(0).items() if k != "update_id"}},
            {"update_id": 2**64, **{k: v for k, v in message_update(0).items() if k != "update_id"}},
        ],
    )
    async def test_unroutable_update_is_acked_ignored_and_never_a_failure(
        self, tmp_path: Path, update: dict[str, Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        An Update with the right secret is always acked 200; what cannot be routed is ignored: one log line, the
        "ignored" outcome, nothing stored, no processing failure.
        """
        caplog.set_level(logging.INFO, logger="voicecoder.adapters.telegram.webhook")
        async with running_ingress(tmp_path) as ingress:
            http = RawHttp(ingress.port)
            status = await http.post(PATH, JSON_HEADERS, json.dumps(update).encode())
            await http.aclose()
            counts = await ingress.inbox.counts()

        ignored = [r for r in caplog.records if "ignored update" in r.getMessage()]
        assert status == 200
        assert ingress.outcomes == ["ignored"]
        assert (counts.pending, counts.done, counts.failed) == (0, 0, 0)
        assert (ingress.dispatch.submitted, ingress.dispatch.failed) == (0, 0)
        assert len(ignored) == 1
        assert ignored[0].levelno == logging.INFO

    async def test_a_real_update_is_still_processed(self, tmp_path: Path) -> None:
        """The same ingress processes a well-formed /help and answers it through the Bot API."""
        async with running_ingress(tmp_path) as ingress:
            http = RawHttp(ingress.port)
            status = await http.post(PATH, JSON_HEADERS, json.dumps(message_update(40)).encode())
            await http.aclose()
            replies = await ingress.api.wait_transcript(chat_id=ALLOWED, within=10)
            await ingress.dispatcher.join()
            stored = await ingress.inbox.get(40)

        assert status == 200
        assert stored is not None
        assert any(e.get("kind") == "send" for e in replies)
        assert (ingress.dispatch.processed, ingress.dispatch.failed) == (1, 0)


# --- polling ---------------------------------------------------------------------------------------------------


@pytest.fixture(name="emulator")
async def _emulator() -> AsyncIterator[ThirdPartyBotApi]:
    async with ThirdPartyBotApi() as emulator:
        yield emulator


class Seen:
    def __init__(self) -> None:
        self.ids: list[int] = []

    async def __call__(self, update: dict[str, Any]) -> None:
        self.ids.append(update["update_id"])


FAST = Backoff(first=0.02, cap=0.1)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.json()


class TestPollingResilience:
    async def test_retries_until_telegram_is_reachable_and_readyz_says_so(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        With nothing listening where Telegram should be, polling keeps trying (one warning, not one per try) and
        /readyz says "telegram unreachable"; once Telegram answers, the waiting update is processed.
        """
        caplog.set_level(logging.INFO, logger="voicecoder.adapters.telegram.polling")
        telegram_port, health_port = free_port(), free_port()
        seen = Seen()
        async with (
            TelegramBotApi(DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{telegram_port}") as api,
            SqliteInbox(tmp_path / "inbox.db") as inbox,
            running_polling(
                api, inbox, seen, poll_timeout_s=1, backoff=FAST, health=("127.0.0.1", health_port)
            ) as poller,
        ):
            with anyio.fail_after(20):
                while poller.failures < 5:
                    await anyio.sleep(0.01)
            down_status, down = await readyz(health_port)
            async with FakeBotApi(DEFAULT_TOKEN, port=telegram_port) as telegram:
                await telegram.send_text("/help", user=FakeUser(ALLOWED))
                await until(lambda: bool(seen.ids))
                up_status, up = await readyz(health_port)

        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        recovered = [r for r in caplog.records if "answers again" in r.getMessage()]
        assert down_status == 503
        assert down["checks"]["telegram"].startswith("telegram unreachable")
        assert (up_status, up["checks"]["telegram"]) == (200, "ok")
        # One line for the start-up diagnostic, one for the state change: none per failed try.
        assert len(warnings) == 2, warnings
        assert "could not check whether a webhook is set" in warnings[0]
        assert "telegram unreachable" in warnings[1]
        assert len(recovered) == 1

    async def test_5xx_at_start_is_retried_not_fatal(self, tmp_path: Path) -> None:
        """getWebhookInfo and getUpdates failing with 5xx at start: polling carries on and gets the message."""
        seen = Seen()
        async with (
            FakeBotApi(DEFAULT_TOKEN, time_scale=0.01) as fake,
            TelegramBotApi(DEFAULT_TOKEN, base_url=fake.base_url, retry=RetryPolicy(base_delay=0.01)) as api,
            SqliteInbox(tmp_path / "inbox.db") as inbox,
        ):
            fake.fail_next("getWebhookInfo", 5, code=500)
            fake.fail_next("getUpdates", 3, code=502)
            await fake.send_text("/help", user=FakeUser(ALLOWED))
            async with running_polling(api, inbox, seen, poll_timeout_s=1, backoff=FAST):
                await until(lambda: bool(seen.ids))

        assert len(seen.ids) == 1
        assert len(fake.calls_to("getWebhookInfo")) == 1  # a diagnostic: asked once, not retried five times

    async def test_never_spins_when_the_server_ignores_timeout(
        self, tmp_path: Path, emulator: ThirdPartyBotApi
    ) -> None:
        """Against an emulator that answers getUpdates at once, two empty answers are at least 1 s apart."""
        async with (
            TelegramBotApi(DEFAULT_TOKEN, base_url=emulator.base_url) as api,
            SqliteInbox(tmp_path / "inbox.db") as inbox,
            running_polling(api, inbox, Seen()),
        ):
            await until(lambda: len(emulator.empty_answers) >= 4)

        gaps = [b - a for a, b in zip(emulator.empty_answers, emulator.empty_answers[1:], strict=False)]
        assert min(gaps) >= 1.0, gaps

    async def test_receive_time_is_set_on_the_polling_path(self, tmp_path: Path, emulator: ThirdPartyBotApi) -> None:
        """The processed duration of a polled update is the real time since it arrived, not since 1970."""
        log = UpdateLog()
        stats = DispatchStats(observer=log)
        emulator.updates.append(message_update(900))
        started = time.monotonic()
        async with (
            TelegramBotApi(DEFAULT_TOKEN, base_url=emulator.base_url) as api,
            SqliteInbox(tmp_path / "inbox.db") as inbox,
            running_polling(api, inbox, Seen(), stats=stats),
        ):
            await until(lambda: bool(log.done))

        assert 0.0 <= log.done[0][1] <= time.monotonic() - started


class TestUnknownMethodsAnswer500:
    async def test_polling_starts_and_works_with_warnings_only(
        self, tmp_path: Path, emulator: ThirdPartyBotApi, caplog: pytest.LogCaptureFixture
    ) -> None:
        """
        getWebhookInfo answered by a 500 HTML page is a warning (asked once), polling still delivers the update.
        """
        caplog.set_level(logging.WARNING)
        emulator.updates.append(message_update(77))
        seen = Seen()
        async with (
            TelegramBotApi(DEFAULT_TOKEN, base_url=emulator.base_url) as api,
            SqliteInbox(tmp_path / "inbox.db") as inbox,
            running_polling(api, inbox, seen),
        ):
            await until(lambda: bool(seen.ids))

        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert seen.ids == [77]
        assert emulator.calls_to("getWebhookInfo") == 1
        assert len(warnings) == 1
        assert "could not check whether a webhook is set" in warnings[0]
        assert "HTTP 500" in warnings[0]
