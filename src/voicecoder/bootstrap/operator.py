"""
What the operator commands (`voicecoder webhook …`, `voicecoder selftest`) run against Telegram.

The Bot API client and the commands' adapters are imported when a command runs: registering the commands with the
CLI's parser happens on every `voicecoder` start and needs argparse only. `webhook …` builds the container's chat
side alone (`voicecoder.bootstrap.telegram`), never the whole container.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from voicecoder.adapters.telegram.operator_args import register_selftest, register_webhook

if TYPE_CHECKING:
    from voicecoder.adapters.telegram.admin import Report
    from voicecoder.config import Config

MISMATCH_WARNING = (
    "⚠️ --secret-token is not the secret `serve` checks (WEBHOOK_SECRET, or the one kept in "
    "DATA_DIR/webhook.json): every delivery gets 401 until they agree. Set WEBHOOK_SECRET to it and "
    "restart, or run `webhook set` without --secret-token."
)
_API_MODULE = "voicecoder.adapters.telegram.api"


def register_operator_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``webhook set|info|delete`` and ``selftest`` to the CLI."""
    register_webhook(subparsers)
    register_selftest(subparsers)


def telegram_failure_of(error: BaseException) -> str | None:
    """What a failed Bot API call means for the operator (network, token, Telegram's words); None for other errors."""
    # A TelegramApiError can only exist once its module is loaded: a process that stopped before talking to
    # Telegram (a configuration error) answers None without importing the client and aiohttp to find out.
    api = sys.modules.get(_API_MODULE)
    if api is None or not isinstance(error, api.TelegramApiError):
        return None
    from voicecoder.adapters.telegram.webhook_health import telegram_failure  # noqa: PLC0415

    return telegram_failure(error)


async def webhook_report(config: Config, args: argparse.Namespace, *, foreign_secret: bool = False) -> Report:
    """
    Run the parsed ``webhook`` sub-command with the configured bot; *foreign_secret* adds the mismatch warning.

    Raises:
        ConfigurationError: Invalid arguments.
        TelegramApiError: Telegram refused `info` or `delete`.
    """
    from voicecoder.adapters.telegram import admin  # noqa: PLC0415 - see the module docstring
    from voicecoder.adapters.telegram.webhook_health import expectation  # noqa: PLC0415
    from voicecoder.bootstrap.runtime import bot_api_session  # noqa: PLC0415
    from voicecoder.bootstrap.telegram import build_telegram  # noqa: PLC0415 - the chat side only, not the container

    action = args.webhook_action
    expected = None
    if action in {"set", "info"}:
        expected = await expectation(
            transport=config.transport,
            url=config.webhook_url or (args.url if action == "set" else None),
            fixed_ip=config.webhook_ip_address,
        )
    async with bot_api_session(build_telegram(config)) as api:
        report = await admin.run_webhook_command(args, api, expected=expected)
    if action == "set" and foreign_secret:
        report = admin.Report(ok=False, lines=(*report.lines, MISMATCH_WARNING))
    return report


async def run_selftest(config: Config, args: argparse.Namespace, *, print_line: Callable[[str], None]) -> int:
    """`voicecoder selftest`: every step that applies, printed as it finishes; 0 when all passed."""
    from voicecoder.adapters.telegram import selftest  # noqa: PLC0415 - see the module docstring

    return await selftest.run_selftest(config, args, print_line=print_line)


__all__ = ["register_operator_commands", "run_selftest", "telegram_failure_of", "webhook_report"]
