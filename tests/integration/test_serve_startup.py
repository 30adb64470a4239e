"""
`voicecoder serve` as an operator starts it: every start-up failure is one ❌ line with its fix and exit code 1
(2 for bad configuration), never a traceback or an ExceptionGroup; what is only a diagnostic (getWebhookInfo,
setMyCommands) is a warning, and an unreachable Telegram does not stop polling.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.ingress_rig import ThirdPartyBotApi
from tests.loopback import free_port, wait_http
from tests.serve_rig import CLI, run_cli, serve_env
from voicecoder.simulators.bot_api import FakeBotApi, FakeUser

TOKEN = "6666666:serve-startup-token-not-a-real-one-abcdefgh"
DEV = FakeUser(1001, first_name="Dev")


@pytest.fixture(name="bot_api")
async def _bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN, time_scale=0.02) as api:
        yield api


def environment(tmp_path: Path, base_url: str, port: int, **extra: str) -> dict[str, str]:
    allowed = {"ALLOWED_USER_IDS": str(DEV.id)}
    return serve_env(tmp_path, token=TOKEN, bot_api_url=base_url, port=port, **{**allowed, **extra})


async def serve_once(tmp_path: Path, base_url: str, *args: str, **extra: str) -> tuple[int, str, str]:
    """Run `voicecoder serve` to its end; (exit code, stdout, stderr). *extra* variables override the defaults."""
    return await run_cli(tmp_path, environment(tmp_path, base_url, free_port(), **extra), "serve", *args)


def assert_one_line_failure(out: str, err: str, *expected: str) -> None:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("❌ "), out
    for text in expected:
        assert text in lines[0]
    for noise in ("Traceback", "ExceptionGroup", "exceptions)"):
        assert noise not in out + err, err
    assert TOKEN not in out + err
    assert TOKEN.split(":")[1] not in out + err


class TestStartupFailures:
    async def test_polling_while_a_webhook_is_set(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """The advice to delete the webhook is the one line, not buried in a 40-line ExceptionGroup."""
        async with aiohttp.ClientSession() as http:
            await http.post(f"{bot_api.base_url}/bot{TOKEN}/setWebhook", json={"url": "https://example.org/hook"})

        code, out, err = await serve_once(tmp_path, bot_api.base_url, "--polling")

        assert code == 1
        assert_one_line_failure(out, err, "A webhook is set", "voicecoder webhook delete")
        assert bot_api.calls_to("getUpdates") == []

    async def test_port_in_use(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """A taken LISTEN_PORT is one line naming the address and the fix."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]

            code, out, err = await serve_once(tmp_path, bot_api.base_url, LISTEN_PORT=str(port))

        assert code == 1
        assert_one_line_failure(out, err, f"Cannot listen on 127.0.0.1:{port}", "LISTEN_PORT")

    async def test_data_dir_is_not_a_directory(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """An unusable DATA_DIR is bad configuration: one line that names it, exit 2."""
        (tmp_path / "data-file").write_text("not a directory")

        code, out, err = await serve_once(tmp_path, bot_api.base_url, DATA_DIR=str(tmp_path / "data-file"))

        assert code == 2
        assert_one_line_failure(out, err, "Cannot use DATA_DIR", "writable directory")

    async def test_polling_with_a_rejected_token_is_bad_configuration(
        self, tmp_path: Path, bot_api: FakeBotApi
    ) -> None:
        """Telegram refusing the token (401) is bad configuration: exit 2, and the line says what to copy again."""
        other = "7777777:a-token-this-fake-bot-api-does-not-know-xyz"

        code, out, err = await serve_once(tmp_path, bot_api.base_url, "--polling", TELEGRAM_TOKEN=other)

        assert code == 2
        assert_one_line_failure(out, err, "TELEGRAM_TOKEN")
        assert other not in out + err

    @pytest.mark.parametrize(
        ("variable", "value", "named"),
        [("TELEGRAM_TOKEN", "", "TELEGRAM_TOKEN"), ("LISTEN_PORT", "not-a-port", "LISTEN_PORT")],
    )
    async def test_bad_configuration_is_exit_2(
        self, tmp_path: Path, bot_api: FakeBotApi, variable: str, value: str, named: str
    ) -> None:
        """A missing (empty: left out) or invalid variable is exit 2 with the variable's name."""
        code, out, err = await serve_once(tmp_path, bot_api.base_url, **{variable: value})

        assert code == 2
        assert_one_line_failure(out, err, named)


class RunningServe:
    def __init__(self, process: anyio.abc.Process, port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    @property
    def stderr(self) -> bytes:
        return self.log.read_bytes()

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            return await self.process.wait()


async def start_serve(tmp_path: Path, base_url: str, *args: str, **extra: str) -> RunningServe:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = await anyio.open_process(
            [*CLI, "serve", *args],
            env=environment(tmp_path, base_url, port, **extra),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    serve = RunningServe(process, port, log)
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
    except BaseException:
        await serve.stop()
        raise
    return serve


async def readyz(port: int) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status, await response.text()


class TestDegradedStart:
    async def test_polling_keeps_going_while_telegram_is_unreachable(self, tmp_path: Path) -> None:
        """`serve --polling` with nothing where Telegram should be stays up, and /readyz says why it is not ready."""
        dead = f"http://127.0.0.1:{free_port()}"
        serve = await start_serve(tmp_path, dead, "--polling")
        try:
            with anyio.fail_after(30):
                while "telegram unreachable" not in (body := await readyz(serve.port))[1]:
                    await anyio.sleep(0.1)
            alive = serve.process.returncode is None
        finally:
            code = await serve.stop()

        assert body[0] == 503
        assert alive
        assert code == 0
        assert b"Traceback" not in serve.stderr

    async def test_bot_api_that_answers_unknown_methods_with_a_500_page(self, tmp_path: Path) -> None:
        """
        setMyCommands and getWebhookInfo answered with HTTP 500 and an HTML page are warnings, each asked once;
        `serve --polling` runs and answers /help through the emulator.
        """
        async with ThirdPartyBotApi() as emulator:
            emulator.updates.append(
                {
                    "update_id": 1,
                    "message": {
                        "message_id": 1,
                        "from": DEV.to_json(),
                        "chat": DEV.chat_json(),
                        "date": 1764000000,
                        "text": "/help",
                    },
                }
            )
            serve = await start_serve(tmp_path, emulator.base_url, "--polling")
            try:
                with anyio.fail_after(30):
                    while not emulator.sent:
                        await anyio.sleep(0.05)
                status, _ = await readyz(serve.port)
            finally:
                code = await serve.stop()

        log = serve.stderr.decode()
        assert code == 0
        assert status == 200
        assert emulator.sent[0]["chat_id"] == DEV.id
        # Each purpose asks once, never retried: the start-up webhook check and the backlog gauge's first reading
        # (the gauge reads again only a minute later).
        assert (emulator.calls_to("getWebhookInfo"), emulator.calls_to("setMyCommands")) == (2, 1)
        assert "could not check whether a webhook is set" in log
        assert "setMyCommands failed" in log
        assert "Traceback" not in log
        assert "retry" not in log
