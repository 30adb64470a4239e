"""What the operator commands (`voicecoder webhook …`, `voicecoder selftest`) run against Telegram."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from voicecoder.adapters.telegram import admin, selftest
from voicecoder.adapters.telegram.api import TelegramApiError
from voicecoder.adapters.telegram.webhook_health import expectation, telegram_failure
from voicecoder.bootstrap.container import build_container
from voicecoder.bootstrap.runtime import lifetime
from voicecoder.config import Config

MISMATCH_WARNING = (
    "⚠️ --secret-token is not the secret `serve` checks (WEBHOOK_SECRET, or the one kept in "
    "DATA_DIR/webhook.json): every delivery gets 401 until they agree. Set WEBHOOK_SECRET to it and "
    "restart, or run `webhook set` without --secret-token."
)


def register_operator_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``webhook set|info|delete`` and ``selftest`` to the CLI."""
    admin.register(subparsers)
    selftest.register(subparsers)


def telegram_failure_of(error: BaseException) -> str | None:
    """What a failed Bot API call means for the operator (network, token, Telegram's words); None for other errors."""
    return telegram_failure(error) if isinstance(error, TelegramApiError) else None


async def webhook_report(config: Config, args: argparse.Namespace, *, foreign_secret: bool = False) -> admin.Report:
    """
    Run the parsed ``webhook`` sub-command with the configured bot; *foreign_secret* adds the mismatch warning.

    Raises:
        ConfigurationError: Invalid arguments.
        TelegramApiError: Telegram refused `info` or `delete`.
    """
    action = args.webhook_action
    expected = None
    if action in {"set", "info"}:
        expected = await expectation(
            transport=config.transport,
            url=config.webhook_url or (args.url if action == "set" else None),
            fixed_ip=config.webhook_ip_address,
        )
    container = build_container(config)
    async with lifetime(container, bot_api=True):
        report = await admin.run_webhook_command(args, container.telegram.bot_api(), expected=expected)
    if action == "set" and foreign_secret:
        report = admin.Report(ok=False, lines=(*report.lines, MISMATCH_WARNING))
    return report


async def run_selftest(config: Config, args: argparse.Namespace, *, print_line: Callable[[str], None]) -> int:
    """`voicecoder selftest`: every step that applies, printed as it finishes; 0 when all passed."""
    return await selftest.run_selftest(config, args, print_line=print_line)


__all__ = ["register_operator_commands", "run_selftest", "telegram_failure_of", "webhook_report"]
