"""
TelegramBotApi against answers other Bot API servers and the proxies in front of them give (ADR 0044).

A real aiohttp server on 127.0.0.1 plays the server: it answers from a script and records every request.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from voicecoder.adapters.telegram.api import PacingPolicy, RetryPolicy, TelegramApiError, TelegramBotApi

TOKEN = "123456:conformance-token-AAAAAAAAAAAAAAAAAAAA"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, max_retry_after=60)
NO_PACING = PacingPolicy(per_chat_rate=0, global_rate=0)
Answer = tuple[int, dict[str, str], bytes]
OK: Answer = (200, {}, b'{"ok":true,"result":true}')


class Scripted:
    """Answers each request with the next scripted answer (the last one repeats); records raw paths."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.paths: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.raw_path)
        status, headers, body = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return web.Response(status=status, headers=headers, body=body)


@asynccontextmanager
async def client_of(server: Scripted, *, local_files: Path | None = None) -> AsyncIterator[TelegramBotApi]:
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with TelegramBotApi(
            TOKEN, base_url=f"http://127.0.0.1:{port}", retry=FAST, pacing=NO_PACING, timeout=5, local_files=local_files
        ) as api:
            yield api
    finally:
        await runner.cleanup()


PROXY_502 = (502, {"Content-Type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1></body></html>")


class TestAnswers:
    @pytest.mark.parametrize(
        "failure",
        [PROXY_502, (408, {"Connection": "close"}, b"<h1>Request Timeout</h1>")],
        ids=["html-502", "html-408"],
    )
    async def test_a_proxys_html_502_or_408_is_retried(self, failure: Answer) -> None:
        server = Scripted(failure, OK)
        async with client_of(server) as api:
            result = await api.call("sendMessage", {"chat_id": 1, "text": "x"})

        assert result is True
        assert len(server.paths) == 2

    async def test_a_proxys_html_502_that_stays_is_an_error_naming_the_cause(self) -> None:
        server = Scripted(PROXY_502)
        async with client_of(server) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.call("getMe")

        assert (info.value.code, len(server.paths)) == (502, FAST.attempts)
        assert "not the Bot API's JSON" in info.value.description

    @pytest.mark.parametrize(
        "answer",
        [
            (404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"),
            (200, {"Content-Type": "text/html"}, b"<html>captive portal</html>"),
            (200, {}, b"[]"),
            (200, {}, b'"ok"'),
            (200, {}, b"null"),
            (200, {}, b"42"),
        ],
        ids=["html-404", "html-200", "list", "string", "null", "number"],
    )
    async def test_an_answer_that_is_not_a_json_object_is_not_sent_again(self, answer: Answer) -> None:
        """Below 500 the server took the request: sending it again could duplicate a message, and would not help."""
        server = Scripted(answer)
        async with client_of(server) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.call("sendMessage", {"chat_id": 1, "text": "x"})

        assert len(server.paths) == 1
        assert info.value.code == answer[0]
        assert "TELEGRAM_API_BASE_URL" in info.value.description

    @pytest.mark.parametrize(
        ("status", "body", "code", "description"),
        [
            (400, {"ok": False, "description": "Bad Request: chat not found"}, 400, "Bad Request: chat not found"),
            (403, {"ok": False}, 403, "HTTP 403"),
            (200, {"ok": False, "description": "refused"}, 400, "refused"),
            (400, {"ok": False, "error_code": True, "description": "odd"}, 400, "odd"),
        ],
        ids=["no-code", "no-code-no-description", "ok-false-with-200", "bool-code"],
    )
    async def test_ok_false_without_an_error_code(self, status: int, body: object, code: int, description: str) -> None:
        server = Scripted((status, {}, json.dumps(body).encode()))
        async with client_of(server) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.call("sendMessage", {"chat_id": 1, "text": "x"})

        assert (info.value.code, info.value.description) == (code, description)
        assert len(server.paths) == 1

    async def test_retry_after_in_parameters_wins_over_the_header(self) -> None:
        """With both, the Bot API's own field counts: 0 s here, where the header's hour would have given up."""
        flood = {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": 0}}
        server = Scripted((429, {"Retry-After": "3600"}, json.dumps(flood).encode()), OK)
        async with client_of(server) as api:
            assert await api.call("sendMessage", {"chat_id": 1, "text": "x"}) is True

        assert len(server.paths) == 2

    @pytest.mark.parametrize("header", ["0", "Thu, 01 Jan 2015 00:00:00 GMT"], ids=["seconds", "past-date"])
    async def test_retry_after_header_alone_on_a_proxys_429(self, header: str) -> None:
        server = Scripted((429, {"Retry-After": header, "Content-Type": "text/html"}, b"<h1>slow down</h1>"), OK)
        async with client_of(server) as api:
            assert await api.call("getMe") is True

        assert len(server.paths) == 2

    async def test_a_retry_after_date_too_far_ahead_gives_up_with_the_wait(self) -> None:
        server = Scripted((429, {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, b""))
        async with client_of(server) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.call("getMe")

        assert info.value.code == 429
        assert info.value.retry_after is not None
        assert info.value.retry_after > FAST.max_retry_after
        assert len(server.paths) == 1


class TestDownloads:
    @pytest.mark.parametrize(
        ("file_path", "raw"),
        [
            ("voice/file_12.oga", "voice/file_12.oga"),
            ("voice/a%2Fb.oga", "voice/a%252Fb.oga"),
            ("voice/a b?c#d.oga", "voice/a%20b%3Fc%23d.oga"),
        ],
        ids=["plain", "percent-2f", "reserved"],
    )
    async def test_a_relative_path_is_sent_as_one_opaque_path(self, file_path: str, raw: str) -> None:
        """Every byte that is not plain is percent-encoded: the server reads back exactly getFile's file_path."""
        server = Scripted((200, {}, b"audio"))
        async with client_of(server) as api:
            assert await api.download_file(file_path) == b"audio"

        assert server.paths == [f"/file/bot{TOKEN}/{raw}"]

    @pytest.mark.parametrize(
        "file_path", ["../../etc/passwd", f"voice/../../bot{TOKEN}/getMe", "voice/./x.oga", "a\\..\\b", "a\nb"]
    )
    async def test_a_path_that_would_leave_the_file_directory_is_refused(self, file_path: str) -> None:
        server = Scripted((200, {}, b"secret"))
        async with client_of(server) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.download_file(file_path)

        assert info.value.code == 400
        assert TOKEN.split(":")[1] not in str(info.value)
        assert server.paths == []

    async def test_an_absolute_path_without_local_mode_configured_is_refused(self, tmp_path: Path) -> None:
        """A --local server's path is not fetched or read: the error names the setting, and hides the token."""
        target = tmp_path / TOKEN / "voice" / "file_0.oga"
        target.parent.mkdir(parents=True)
        target.write_bytes(b"audio")
        server = Scripted((200, {}, b"audio"))
        async with client_of(server) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.download_file(str(target))

        assert info.value.code == 400
        assert "TELEGRAM_LOCAL_FILES_DIR" in info.value.description
        assert TOKEN.split(":")[1] not in str(info.value)
        assert server.paths == []

    async def test_local_mode_reads_inside_its_directory_only(self, tmp_path: Path) -> None:
        root = tmp_path / "bot-api"
        voice = root / TOKEN / "voice" / "file_0.oga"
        voice.parent.mkdir(parents=True)
        voice.write_bytes(b"OggS audio")
        outside = tmp_path / "private.txt"
        outside.write_text("private")
        (root / TOKEN / "voice" / "link.oga").symlink_to(outside)
        server = Scripted((200, {}, b"from http"))
        async with client_of(server, local_files=root) as api:
            read = await api.download_file(str(voice))
            refused = []
            for path in (str(outside), str(root / TOKEN / "voice" / "link.oga"), f"{root}/../private.txt"):
                with pytest.raises(TelegramApiError) as info:
                    await api.download_file(path)
                refused.append((info.value.code, "outside" in info.value.description))
            with pytest.raises(TelegramApiError) as missing:
                await api.download_file(str(root / "gone.oga"))
            with pytest.raises(TelegramApiError) as big:
                await api.download_file(str(voice), max_bytes=4)

        assert read == b"OggS audio"
        assert refused == [(400, True)] * 3
        assert missing.value.code == 404
        assert big.value.code == 413
        assert server.paths == []

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
    async def test_local_mode_never_blocks_on_a_fifo(self, tmp_path: Path) -> None:
        fifo = tmp_path / "voice.oga"
        os.mkfifo(fifo)
        async with client_of(Scripted(OK), local_files=tmp_path) as api:
            with pytest.raises(TelegramApiError) as info:
                await api.download_file(str(fifo))

        assert info.value.code == 400


async def test_telegram_local_files_dir_reaches_the_bot_api_client(tmp_path: Path) -> None:
    """TELEGRAM_LOCAL_FILES_DIR, through Config and the container, is where getFile's absolute paths are read."""
    from voicecoder.bootstrap.telegram import build_telegram  # noqa: PLC0415 - only this test builds the container
    from voicecoder.config import Config  # noqa: PLC0415

    voice = tmp_path / "api" / TOKEN / "voice" / "file_1.oga"
    voice.parent.mkdir(parents=True)
    voice.write_bytes(b"OggS")
    env = {"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_LOCAL_FILES_DIR": str(tmp_path / "api")}
    config = Config.from_env(env, dotenv=None)
    api = build_telegram(config).bot_api()
    try:
        data = await api.download_file(str(voice))
    finally:
        await api.close()

    assert config.telegram_local_files == tmp_path / "api"
    assert data == b"OggS"
