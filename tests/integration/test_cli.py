"""The `voicecoder` command as an operator uses it, against the local fake Bot API."""

from __future__ import annotations

import json
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.loopback import free_port, wait_http
from tests.serve_rig import CLI, cli_env, run_cli
from voicecoder.simulators.bot_api import FakeBotApi

TOKEN = "6666666:cli-test-token-not-a-real-one-abcdefghij"


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN) as api:
        yield api


async def voicecoder(tmp_path: Path, bot_api: FakeBotApi, *args: str, **env: str) -> tuple[int, str]:
    bot = {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": bot_api.base_url,
        "DATA_DIR": str(tmp_path / "data"),
        "WORKSPACE_DIR": str(tmp_path / "ws"),
    }
    environment = cli_env(tmp_path, **{**bot, **env})
    code, out, err = await run_cli(tmp_path, environment, *args)
    return code, out + err


class TestWebhookCommands:
    async def test_set_uses_public_url_and_a_stable_secret(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """
        `webhook set` with no flags registers PUBLIC_URL + a generated path and secret, stored 0600 for `serve`.
        """
        # An address, not a name: `webhook set` resolves a name to compare it with Telegram's; tests never query DNS.
        code, out = await voicecoder(tmp_path, bot_api, "webhook", "set", PUBLIC_URL="https://203.0.113.10")
        info_code, info = await voicecoder(tmp_path, bot_api, "webhook", "info")

        assert code == 0, out
        identity = json.loads((tmp_path / "data" / "webhook.json").read_text())
        assert stat.S_IMODE((tmp_path / "data" / "webhook.json").stat().st_mode) == 0o600
        set_call = next(c for c in bot_api.calls if c.method.lower() == "setwebhook")
        assert set_call.params["url"] == "https://203.0.113.10" + identity["path"]
        assert set_call.params["secret_token"] == identity["secret"]
        assert info_code == 0
        assert "203.0.113.10" in info
        assert identity["secret"] not in out + info
        assert identity["path"] not in out + info
        assert TOKEN not in out + info

    async def test_set_without_url_explains(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """
        With neither --url nor PUBLIC_URL the command says what to set and changes nothing.
        """
        code, out = await voicecoder(tmp_path, bot_api, "webhook", "set")

        assert code == 2
        assert "PUBLIC_URL" in out
        assert not any(c.method.lower() == "setwebhook" for c in bot_api.calls)

    async def test_delete_keeps_pending_updates(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """
        `webhook delete` does not drop pending updates unless asked.
        """
        code, out = await voicecoder(tmp_path, bot_api, "webhook", "delete")

        assert code == 0, out
        call = next(c for c in bot_api.calls if c.method.lower() == "deletewebhook")
        assert not call.params.get("drop_pending_updates")

    async def test_bad_configuration_names_the_variable(self, tmp_path: Path, bot_api: FakeBotApi) -> None:
        """
        An invalid variable stops the command with its name and no traceback.
        """
        code, out = await voicecoder(tmp_path, bot_api, "doctor", LISTEN_PORT="not-a-port")

        assert code == 2
        assert "LISTEN_PORT" in out
        assert "Traceback" not in out


class TestSandboxCommand:
    async def test_starts_from_inside_a_git_checkout(self, tmp_path: Path) -> None:
        """
        README command 1 runs in the voicecoder checkout: the sandbox workspace must not nest in that repository.
        """
        checkout = tmp_path / "checkout"
        checkout.mkdir()
        await anyio.run_process(["git", "init", "-q", str(checkout)])
        port = free_port()
        process = await anyio.open_process(
            [*CLI, "sandbox", "--port", str(port)], env=cli_env(tmp_path / "home"), cwd=checkout
        )
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            async with aiohttp.ClientSession(headers={"X-Voicecoder-Sandbox": "1"}) as http:
                await http.post(f"http://127.0.0.1:{port}/api/send", json={"text": "/start"})
                with anyio.fail_after(30):
                    while True:
                        async with http.get(f"http://127.0.0.1:{port}/api/conversation") as response:
                            messages = (await response.json())["messages"]
                        if any("👋 Hi" in m["html"] for m in messages):
                            break
                        await anyio.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await process.wait()
            await process.aclose()

        assert (tmp_path / "home" / ".local" / "share" / "voicecoder" / "sandbox" / "workspace" / ".git").is_dir()
        assert process.returncode == 0

    async def test_opens_the_page_when_a_display_is_available(self, tmp_path: Path) -> None:
        """
        With a display, the sandbox opens its page in the user's browser ($BROWSER here) and says so; the URL is
        printed in a box either way.
        """
        opened = tmp_path / "opened.txt"
        browser = tmp_path / "browser.sh"
        browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
        browser.chmod(0o755)
        port = free_port()
        env = cli_env(tmp_path / "home", DISPLAY=":99", BROWSER=f"{browser} %s")
        process = await anyio.open_process([*CLI, "sandbox", "--port", str(port)], env=env, cwd=tmp_path)
        try:
            with anyio.fail_after(60):
                while not opened.exists() or not opened.read_text():
                    await anyio.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await process.wait()
            assert process.stdout is not None
            out = b"".join([chunk async for chunk in process.stdout]).decode()
            await process.aclose()

        url = f"http://127.0.0.1:{port}/"
        assert opened.read_text() == url
        assert f"│  voicecoder sandbox: {url}  │" in out
        assert "opened in your browser" in out
