"""
``voicecoder webhook set|info|delete``: manage the bot's webhook with readable answers.

The functions return the text to print; :func:`register` adds the sub-commands to an argparse parser
and :func:`run_webhook_command` executes the parsed arguments against a :class:`TelegramBotApi`.
Pending updates are kept unless ``--drop-pending`` is given. Output never contains the bot token or
the secret token, and a webhook URL is shown without its path (the path may be the token or a secret).
"""

from __future__ import annotations

import argparse
import os
import re
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs

from voicecoder.adapters.telegram_bot_api import TelegramBotApi, WebhookInfo
from voicecoder.domain.errors import ConfigurationError
from voicecoder.entrypoints.polling import ALLOWED_UPDATES

MAX_CERTIFICATE_BYTES = 3 << 20
TELEGRAM_PORTS = frozenset({443, 80, 88, 8443})
BACKLOG_WARNING = 100
RECENT_ERROR_S = 15 * 60
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…`` without credentials and path; the path may carry a token or a secret."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    hidden = "/…" if parts.path.strip("/") or parts.query else "/"
    return f"{parts.scheme}://{netloc}{hidden}"


# Documented webhook errors (getWebhookInfo.last_error_message) and what to do about each.
_FIXES: tuple[tuple[str, str], ...] = (
    (
        r"401",
        (
            "The bot answered 401: the secret token Telegram sends does not match WEBHOOK_SECRET. "
            "Run `voicecoder webhook set` again with the bot's current secret."
        ),
    ),
    (
        r"403",
        (
            "The bot answered 403: the source allow-list refused Telegram. If the bot is behind a reverse proxy, "
            "configure it as a trusted proxy (X-Forwarded-For), or turn the allow-list off."
        ),
    ),
    (r"404", "The bot answered 404: the URL path does not match the bot's webhook path. Set the webhook again."),
    (r"413", "The bot answered 413: the update was larger than the body limit; raise it."),
    (
        r"\b5\d\d\b",
        (
            "The bot (or its reverse proxy) answered with a server error: check that the bot is running "
            "(GET /readyz) and read its logs; 502/504 usually mean the proxy cannot reach it."
        ),
    ),
    (
        r"\b3\d\d\b",
        "The URL redirects; Telegram does not follow redirects. Use the final HTTPS URL.",
    ),
    (
        r"(?i)ssl|certificate",
        (
            "TLS failed: the certificate must be valid for the host name and sent with its full chain; for a "
            "self-signed certificate upload it with `webhook set --certificate FILE`."
        ),
    ),
    (
        r"(?i)connection refused",
        (
            "Nothing accepts connections at that address: start the bot, open the firewall, and use one of "
            "the ports 443, 80, 88 or 8443."
        ),
    ),
    (
        r"(?i)timed out|timeout",
        (
            "Telegram got no answer in time: the bot must answer within seconds (it only stores the update), "
            "so check the network path, firewall and proxy timeouts."
        ),
    ),
    (
        r"(?i)resolve host|name or service",
        "Telegram cannot resolve the host name: fix DNS, or pass the server's IPv4 with --ip-address.",
    ),
    (
        r"(?i)connection closed|reset",
        "The connection was closed before an answer: check the bot's logs and the proxy's idle timeouts.",
    ),
)


def fix_for(message: str) -> str:
    """The advice for a ``last_error_message``; a general hint when the message is unknown."""
    for pattern, fix in _FIXES:
        if re.search(pattern, message):
            return fix
    return "Check that the bot is reachable from the internet over HTTPS and answers 200 quickly."


@attrs.frozen
class Verdict:
    healthy: bool
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def describe_webhook(info: WebhookInfo, *, now: float | None = None) -> Verdict:
    """A readable health verdict for getWebhookInfo: URL (path hidden), backlog, last error with its fix, limits."""
    now = time.time() if now is None else now
    if not info.url:
        return Verdict(
            healthy=True,
            lines=(
                "No webhook is set: the bot receives updates by polling (`voicecoder serve --polling`).",
                f"Pending updates: {info.pending_update_count}",
            ),
        )
    lines = [f"Webhook URL: {redact_url(info.url)} (path hidden)"]
    healthy = True
    pending = info.pending_update_count
    if pending > BACKLOG_WARNING:
        healthy = False
        lines.append(f"⚠️ Pending updates: {pending} — Telegram is not getting 200s fast enough.")
    else:
        lines.append(f"Pending updates: {pending}")
    if info.last_error_date is not None:
        age = max(0, int(now - info.last_error_date))
        recent = age < RECENT_ERROR_S
        healthy = healthy and not recent
        mark = "⚠️" if recent else "ℹ️"
        message = info.last_error_message or "(no message)"
        lines.append(f"{mark} Last delivery error {_ago(age)}: {message}")
        lines.append(f"   Fix: {fix_for(message)}")
    else:
        lines.append("Last delivery error: none")
    if info.last_synchronization_error_date is not None:
        age = max(0, int(now - info.last_synchronization_error_date))
        lines.append(f"ℹ️ Telegram had a synchronization problem {_ago(age)} (on its side; nothing to do).")
    lines.append(f"Max connections: {info.max_connections if info.max_connections is not None else 'default (40)'}")
    if info.ip_address:
        lines.append(f"IP address: {info.ip_address}")
    lines.append(f"Custom certificate: {'yes' if info.has_custom_certificate else 'no'}")
    if info.allowed_updates is not None:
        allowed = set(info.allowed_updates)
        lines.append(f"Allowed updates: {', '.join(info.allowed_updates)}")
        missing = [u for u in ALLOWED_UPDATES if u not in allowed]
        if missing:
            healthy = False
            lines.append(f"⚠️ voicecoder needs {', '.join(missing)}: set the webhook again.")
    lines.insert(0, "✅ Webhook healthy" if healthy else "⚠️ Webhook needs attention")
    return Verdict(healthy=healthy, lines=tuple(lines))


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _check_url(url: str, *, allow_insecure: bool) -> None:
    parts = urllib.parse.urlsplit(url)
    if allow_insecure:
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigurationError("The webhook URL must be an http(s) URL with a host.")
        return
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError("Telegram delivers webhooks only to https:// URLs; pass an HTTPS URL.")
    try:
        port = parts.port or 443
    except ValueError as exc:
        raise ConfigurationError("The webhook URL has an invalid port.") from exc
    if port not in TELEGRAM_PORTS:
        raise ConfigurationError(f"Telegram delivers webhooks only to ports 443, 80, 88 or 8443, not {port}.")


async def set_webhook(
    api: TelegramBotApi,
    *,
    url: str,
    secret_token: str | None,
    max_connections: int = 40,
    allowed_updates: Sequence[str] = ALLOWED_UPDATES,
    drop_pending: bool = False,
    certificate: Path | None = None,
    ip_address: str | None = None,
    allow_insecure: bool = False,
) -> str:
    """
    Call setWebhook and report what is now set (read back with getWebhookInfo).

    Raises:
        ConfigurationError: The URL, secret, connection count or certificate is not acceptable.
        TelegramApiError: Telegram refused.
    """
    _check_url(url, allow_insecure=allow_insecure)
    if not secret_token:
        raise ConfigurationError(
            "A secret token is required (--secret-token or WEBHOOK_SECRET): the bot refuses requests without it."
        )
    if not _SECRET_RE.fullmatch(secret_token):
        raise ConfigurationError("The secret token must be 1-256 characters of A-Z, a-z, 0-9, _ and -.")
    if not 1 <= max_connections <= 100:
        raise ConfigurationError("--max-connections must be between 1 and 100.")
    cert_bytes: bytes | None = None
    if certificate is not None:
        try:
            cert_bytes = await anyio.Path(certificate).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"Cannot read the certificate file {certificate}: {exc.strerror}") from exc
        if len(cert_bytes) > MAX_CERTIFICATE_BYTES:
            raise ConfigurationError("The certificate file is larger than Telegram's 3 MB limit.")
    await api.set_webhook(
        url,
        secret_token=secret_token,
        max_connections=max_connections,
        allowed_updates=list(allowed_updates),
        drop_pending_updates=drop_pending,
        certificate=cert_bytes,
        ip_address=ip_address,
    )
    info = await api.get_webhook_info()
    kept = "dropped" if drop_pending else f"kept ({info.pending_update_count} pending)"
    return (
        f"Webhook set to {redact_url(url)} (path hidden) with the secret token; max connections "
        f"{max_connections}; updates: {', '.join(allowed_updates)}; pending updates {kept}.\n"
        f"{describe_webhook(info)}"
    )


async def webhook_info(api: TelegramBotApi, *, now: float | None = None) -> str:
    """The health verdict of the current webhook."""
    return str(describe_webhook(await api.get_webhook_info(), now=now))


async def delete_webhook(api: TelegramBotApi, *, drop_pending: bool = False) -> str:
    """Remove the webhook (pending updates kept unless *drop_pending*); the bot can then poll."""
    before = await api.get_webhook_info()
    await api.delete_webhook(drop_pending_updates=drop_pending)
    if not before.url:
        return "No webhook was set; nothing to delete." + (" Pending updates dropped." if drop_pending else "")
    kept = "dropped" if drop_pending else f"kept ({before.pending_update_count} pending; polling will receive them)"
    return f"Webhook {redact_url(before.url)} deleted; pending updates {kept}."


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add ``webhook set|info|delete`` to the CLI; the chosen action is in ``args.webhook_action``."""
    webhook = subparsers.add_parser("webhook", help="set, inspect or delete the Telegram webhook")
    actions = webhook.add_subparsers(dest="webhook_action", required=True)

    set_p = actions.add_parser("set", help="point Telegram at this bot's webhook URL")
    set_p.add_argument(
        "--url", help="the public HTTPS URL including the webhook path (default: $PUBLIC_URL + $WEBHOOK_PATH)"
    )
    set_p.add_argument(
        "--secret-token",
        default=os.environ.get("WEBHOOK_SECRET"),
        help="sent by Telegram in X-Telegram-Bot-Api-Secret-Token (default: $WEBHOOK_SECRET)",
    )
    set_p.add_argument("--max-connections", type=int, default=40, help="1-100 parallel deliveries (default 40)")
    set_p.add_argument(
        "--allowed-updates",
        default=",".join(ALLOWED_UPDATES),
        help="comma-separated update types (default: message,callback_query)",
    )
    set_p.add_argument("--drop-pending", action="store_true", help="drop updates Telegram is holding")
    set_p.add_argument("--certificate", type=Path, help="public key certificate for a self-signed setup")
    set_p.add_argument("--ip-address", help="fixed IPv4 address Telegram should use instead of DNS")
    set_p.add_argument("--allow-insecure", action="store_true", help=argparse.SUPPRESS)

    actions.add_parser("info", help="show the webhook's health: URL, backlog, last error and its fix")

    delete_p = actions.add_parser("delete", help="remove the webhook (to use polling)")
    delete_p.add_argument("--drop-pending", action="store_true", help="also drop updates Telegram is holding")
    return webhook


async def run_webhook_command(args: argparse.Namespace, api: TelegramBotApi) -> str:
    """
    Execute the parsed ``webhook`` sub-command; return the text to print.

    Raises:
        ConfigurationError: Invalid arguments.
        TelegramApiError: Telegram refused.
    """
    action = args.webhook_action
    if action == "set":
        allowed = [u.strip() for u in str(args.allowed_updates).split(",") if u.strip()]
        return await set_webhook(
            api,
            url=args.url,
            secret_token=args.secret_token,
            max_connections=args.max_connections,
            allowed_updates=allowed,
            drop_pending=args.drop_pending,
            certificate=args.certificate,
            ip_address=args.ip_address,
            allow_insecure=args.allow_insecure,
        )
    if action == "info":
        return await webhook_info(api)
    if action == "delete":
        return await delete_webhook(api, drop_pending=args.drop_pending)
    raise ConfigurationError(f"Unknown webhook action {action!r}; use set, info or delete.")


__all__ = [
    "Verdict",
    "delete_webhook",
    "describe_webhook",
    "fix_for",
    "redact_url",
    "register",
    "run_webhook_command",
    "set_webhook",
    "webhook_info",
]
