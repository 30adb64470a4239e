"""
The arguments of ``voicecoder webhook set|info|delete`` and ``voicecoder selftest``.

Apart from `admin` and `selftest`, which run the commands, so that building the CLI's parser (every `voicecoder`
start, `serve` and a configuration error included) imports argparse only, not the Bot API client and aiohttp.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ALLOWED_UPDATES_HELP = "comma-separated update types (default: message,callback_query)"
"""Names `routing.ALLOWED_UPDATES`, which `webhook set` sends when the option is not given (a test keeps them equal)."""


def register_webhook(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``webhook set|info|delete`` to the CLI; the chosen action is in ``args.webhook_action``."""
    webhook = subparsers.add_parser("webhook", help="set, inspect or delete the Telegram webhook")
    actions = webhook.add_subparsers(dest="webhook_action", required=True)

    set_p = actions.add_parser("set", help="point Telegram at this bot's webhook URL")
    set_p.add_argument(
        "--url", help="the public HTTPS URL including the webhook path (default: $PUBLIC_URL + $WEBHOOK_PATH)"
    )
    set_p.add_argument(
        "--secret-token",
        help="sent by Telegram in X-Telegram-Bot-Api-Secret-Token (default: WEBHOOK_SECRET of the configuration)",
    )
    set_p.add_argument("--max-connections", type=int, default=40, help="1-100 parallel deliveries (default 40)")
    # None: `admin.run_webhook_command` sends routing.ALLOWED_UPDATES, the types the bot handles.
    set_p.add_argument("--allowed-updates", default=None, help=ALLOWED_UPDATES_HELP)
    set_p.add_argument("--drop-pending", action="store_true", help="drop updates Telegram is holding")
    set_p.add_argument("--certificate", type=Path, help="public key certificate for a self-signed setup")
    set_p.add_argument(
        "--ip-address", help="fixed IPv4 address Telegram should use instead of DNS (default: WEBHOOK_IP_ADDRESS)"
    )
    set_p.add_argument("--allow-insecure", action="store_true", help=argparse.SUPPRESS)

    actions.add_parser(
        "info",
        help="compare the webhook with the configuration: URL, IP, backlog, last error and its fix "
        "(exit 1 when something needs attention)",
    )

    delete_p = actions.add_parser("delete", help="remove the webhook (to use polling)")
    delete_p.add_argument("--drop-pending", action="store_true", help="also drop updates Telegram is holding")
    return webhook


def register_selftest(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``selftest`` to the CLI."""
    selftest = subparsers.add_parser(
        "selftest",
        help="test the running bot end to end (Telegram, webhook, a button press, a 30 s voice note) with figures",
    )
    selftest.add_argument(
        "--chat", type=int, help="the user (private chat) to test as (default: the first of ALLOWED_USER_IDS)"
    )
    selftest.add_argument(
        "--endpoint",
        help="post to this base URL instead of PUBLIC_URL, e.g. http://127.0.0.1:8080 to leave the proxy out",
    )
    selftest.add_argument("--no-voice", action="store_true", help="skip the voice note (nothing is uploaded)")
