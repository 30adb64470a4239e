from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from tests.ingress_rig import start_webhook
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.telegram.admin import (
    delete_webhook,
    run_webhook_command,
    set_webhook,
    webhook_info,
)
from voicecoder.adapters.telegram.api import RetryPolicy, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.operator_args import ALLOWED_UPDATES_HELP, register_webhook
from voicecoder.adapters.telegram.routing import ALLOWED_UPDATES
from voicecoder.adapters.telegram.webhook import WebhookSettings
from voicecoder.domain.errors import ConfigurationError
from voicecoder.simulators.bot_api import FakeBotApi

SECRET = "Admin-Secret_0123456789abcdef"
HOOK_PATH = "/tg-very-secret-path"


def lane_of(update: dict[str, Any]) -> tuple[int, str] | None:
    return (int(update["message"]["chat"]["id"]), "message") if "message" in update else None


@pytest.fixture(name="fake")
async def _fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(time_scale=0.01, webhook_timeout=2) as fake:
        yield fake


@pytest.fixture(name="api")
async def _api(fake: FakeBotApi) -> AsyncIterator[TelegramBotApi]:
    async with TelegramBotApi(
        fake.token, base_url=fake.base_url, retry=RetryPolicy(attempts=2, base_delay=0.01)
    ) as api:
        yield api


def assert_no_secrets(text: str, fake: FakeBotApi) -> None:
    assert fake.token not in text
    assert fake.token.split(":")[1] not in text
    assert SECRET not in text
    assert HOOK_PATH not in text


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


class TestSetWebhook:
    async def test_set_then_info(self, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """set registers URL, secret, connections and update types; neither output shows a secret."""
        report = await set_webhook(
            api, url=f"http://127.0.0.1:9{HOOK_PATH}", secret_token=SECRET, max_connections=10, allow_insecure=True
        )
        info = await api.get_webhook_info()
        shown = str(await webhook_info(api))
        out = str(report)

        assert (info.url, info.max_connections, info.allowed_updates) == (
            f"http://127.0.0.1:9{HOOK_PATH}",
            10,
            ("message", "callback_query"),
        )
        assert fake.calls_to("setWebhook")[-1].params["secret_token"] == SECRET
        assert report.ok
        assert "✅ setWebhook: Telegram now delivers to http://127.0.0.1:9/…" in out
        assert "pending updates kept" in out
        assert "✅ Matches PUBLIC_URL + WEBHOOK_PATH." in out
        assert "✅ Webhook healthy" in shown
        assert_no_secrets(out + shown, fake)

    async def test_keeps_pending_unless_dropped(self, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """Setting the webhook keeps what Telegram holds; --drop-pending drops it."""
        await fake.send_text("waiting")

        kept = str(await set_webhook(api, url="http://127.0.0.1:9/a", secret_token=SECRET, allow_insecure=True))
        dropped = str(
            await set_webhook(
                api, url="http://127.0.0.1:9/b", secret_token=SECRET, drop_pending=True, allow_insecure=True
            )
        )

        assert "pending updates kept" in kept
        assert "Pending updates: 1" in kept
        assert "pending updates dropped" in dropped
        assert "Pending updates: 0" in dropped
        assert fake.pending_update_count == 0

    async def test_certificate_and_ip_address_are_sent(
        self, fake: FakeBotApi, api: TelegramBotApi, tmp_path: Path
    ) -> None:
        """A self-signed certificate is uploaded and the fixed IP passed on."""
        cert = tmp_path / "cert.pem"
        cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

        await set_webhook(
            api,
            url="http://127.0.0.1:9/x",
            secret_token=SECRET,
            certificate=cert,
            ip_address="203.0.113.7",
            allow_insecure=True,
        )
        info = await api.get_webhook_info()

        assert (info.has_custom_certificate, info.ip_address) == (True, "203.0.113.7")

    @pytest.mark.parametrize(
        ("url", "secret", "connections", "message"),
        [
            ("http://example.org/hook", SECRET, 40, "https://"),
            ("https://example.org:8080/hook", SECRET, 40, "ports 443, 80, 88 or 8443"),
            ("https://example.org/hook", None, 40, "secret token is required"),
            ("https://example.org/hook", "bad secret!", 40, "A-Z, a-z"),
            ("https://example.org/hook", SECRET, 101, "between 1 and 100"),
        ],
    )
    async def test_refuses_what_telegram_would_refuse(
        self, fake: FakeBotApi, api: TelegramBotApi, url: str, secret: str | None, connections: int, message: str
    ) -> None:
        """Bad URLs, ports, secrets and connection counts are refused locally with the fix; Telegram is not called."""
        with pytest.raises(ConfigurationError, match=message):
            await set_webhook(api, url=url, secret_token=secret, max_connections=connections)

        assert fake.calls_to("setWebhook") == []

    async def test_missing_certificate_file(self, api: TelegramBotApi, tmp_path: Path) -> None:
        """An unreadable certificate path is a configuration error naming the file."""
        with pytest.raises(ConfigurationError, match="certificate file"):
            await set_webhook(
                api, url="https://example.org/h", secret_token=SECRET, certificate=tmp_path / "missing.pem"
            )


class TestWebhookInfo:
    async def test_no_webhook(self, api: TelegramBotApi) -> None:
        """Without a webhook the verdict says polling is in use."""
        assert "No webhook is set" in str(await webhook_info(api))

    async def test_wrong_secret_is_diagnosed(self, tmp_path: Path, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """Telegram delivering with a secret the bot does not accept shows the 401 error and how to fix it."""
        stop = anyio.Event()

        async def handler(update: dict[str, Any]) -> None:
            return None

        async with SqliteInbox(tmp_path / "inbox.db") as inbox, anyio.create_task_group() as tg:
            port = await start_webhook(
                tg,
                WebhookSettings(secret_token="the-bots-real-secret", path=HOOK_PATH),
                inbox=inbox,
                dispatcher=UpdateDispatcher(inbox, handler),
                stop=stop,
                lane_of=lane_of,
            )
            await set_webhook(api, url=f"http://127.0.0.1:{port}{HOOK_PATH}", secret_token=SECRET, allow_insecure=True)
            await fake.send_text("hello")
            await eventually(lambda: any(status == 401 for _, status in fake.webhook_deliveries))
            shown = str(await webhook_info(api))
            await api.delete_webhook(drop_pending_updates=True)
            stop.set()

        assert "⚠️ Webhook needs attention" in shown
        assert "401" in shown
        assert "does not match WEBHOOK_SECRET" in shown
        assert_no_secrets(shown, fake)

    async def test_server_error_is_diagnosed(self, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """A bot answering 500 shows Telegram's error text and the server-error advice."""

        async def broken(_request: web.Request) -> web.Response:
            return web.Response(status=500)

        app = web.Application()
        app.router.add_post(HOOK_PATH, broken)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            await set_webhook(api, url=f"http://127.0.0.1:{port}{HOOK_PATH}", secret_token=SECRET, allow_insecure=True)
            await fake.send_text("hello")
            await eventually(lambda: any(status == 500 for _, status in fake.webhook_deliveries))
            shown = str(await webhook_info(api))
        finally:
            await api.delete_webhook(drop_pending_updates=True)
            await runner.cleanup()

        assert "Wrong response from the webhook: 500" in shown
        assert "server error" in shown


class TestDeleteWebhook:
    async def test_delete_keeps_pending(self, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """Deleting keeps pending updates, so polling receives them."""
        await set_webhook(api, url=f"http://127.0.0.1:9{HOOK_PATH}", secret_token=SECRET, allow_insecure=True)
        await fake.send_text("held")

        out = str(await delete_webhook(api))

        assert "kept (1 pending" in out
        assert (await api.get_webhook_info()).url == ""
        assert fake.pending_update_count == 1
        assert_no_secrets(out, fake)

    async def test_delete_drop_pending(self, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """--drop-pending drops what Telegram holds."""
        await set_webhook(api, url="http://127.0.0.1:9/h", secret_token=SECRET, allow_insecure=True)
        await fake.send_text("held")

        out = str(await delete_webhook(api, drop_pending=True))

        assert "dropped" in out
        assert fake.pending_update_count == 0

    async def test_delete_without_webhook(self, api: TelegramBotApi) -> None:
        """Deleting when none is set says so."""
        assert "No webhook was set" in str(await delete_webhook(api))


class TestCommandLine:
    def _parser(self) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="voicecoder")
        register_webhook(parser.add_subparsers(dest="command"))
        return parser

    async def test_set_info_delete_through_argparse(self, fake: FakeBotApi, api: TelegramBotApi) -> None:
        """The registered sub-commands parse and run: set, info, delete."""
        parser = self._parser()
        set_args = parser.parse_args(
            [
                "webhook",
                "set",
                "--url",
                f"http://127.0.0.1:9{HOOK_PATH}",
                "--secret-token",
                SECRET,
                "--max-connections",
                "5",
                "--allow-insecure",
            ]
        )

        outputs = [str(await run_webhook_command(set_args, api))]
        info = await api.get_webhook_info()
        outputs.append(str(await run_webhook_command(parser.parse_args(["webhook", "info"]), api)))
        outputs.append(str(await run_webhook_command(parser.parse_args(["webhook", "delete", "--drop-pending"]), api)))

        assert info.max_connections == 5
        assert info.allowed_updates == ALLOWED_UPDATES  # not given: the types the bot handles
        assert "setWebhook: Telegram now delivers" in outputs[0]
        assert "Registered URL" in outputs[1]
        assert "deleted" in outputs[2]
        assert (await api.get_webhook_info()).url == ""
        for out in outputs:
            assert_no_secrets(out, fake)

    def test_help_names_the_default_update_types(self) -> None:
        """--allowed-updates' help states the default `webhook set` sends, which the parser leaves to routing."""
        assert ALLOWED_UPDATES_HELP.endswith(f"(default: {','.join(ALLOWED_UPDATES)})")

    def test_action_is_required(self) -> None:
        """`webhook` alone is a usage error."""
        with pytest.raises(SystemExit):
            self._parser().parse_args(["webhook"])
