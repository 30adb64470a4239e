"""
``voicecoder webhook set|info|delete``: manage the bot's webhook with readable answers.

Each command returns a :class:`Report`: the lines to print and whether everything is fine (the CLI's exit
code; `webhook info` exits non-zero when something needs attention, so cron or a monitor can alert).
`webhook set` reports each step's own outcome: a webhook that was set stays reported as set even when reading
it back fails. Pending updates are kept unless ``--drop-pending`` is given. Output never contains the bot
token or the secret token, and a webhook URL's path is shown only as a fingerprint (the path is a secret).
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import anyio
import attrs

from voicecoder.adapters.telegram.api import TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram.identity import check_secret
from voicecoder.adapters.telegram.routing import ALLOWED_UPDATES
from voicecoder.adapters.telegram.webhook_health import (
    Expectation,
    Verdict,
    describe_webhook,
    fix_for,
    redact_url,
    shown_url,
    telegram_failure,
)
from voicecoder.domain.errors import ConfigurationError

MAX_CERTIFICATE_BYTES = 3 << 20
TELEGRAM_PORTS = frozenset({443, 80, 88, 8443})


@attrs.frozen
class Report:
    """What a webhook command prints, and whether all is well (exit code 0) or something needs attention (1)."""

    ok: bool
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


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
    expected: Expectation | None = None,
) -> Report:
    """
    Call setWebhook, then read it back with getWebhookInfo; report each step's own outcome.

    *expected* is what the configuration says (PUBLIC_URL + WEBHOOK_PATH): the read-back is judged against it,
    so a ``--url`` that `serve` would not answer is flagged. Without it the URL just set is expected.

    Raises:
        ConfigurationError: The URL, secret, connection count or certificate is not acceptable (nothing was sent).
    """
    _check_url(url, allow_insecure=allow_insecure)
    if not secret_token:
        raise ConfigurationError(
            "A secret token is required (--secret-token or WEBHOOK_SECRET): the bot refuses requests without it."
        )
    check_secret(secret_token, name="The secret token (--secret-token or WEBHOOK_SECRET)")
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
    try:
        await api.set_webhook(
            url,
            secret_token=secret_token,
            max_connections=max_connections,
            allowed_updates=list(allowed_updates),
            drop_pending_updates=drop_pending,
            certificate=cert_bytes,
            ip_address=ip_address,
        )
    except TelegramApiError as exc:
        lines = [f"❌ setWebhook failed, nothing was changed: {telegram_failure(exc)}"]
        if exc.code not in {0, 401, 404}:
            lines.append(f"   Fix: {fix_for(exc.description)}")
        return Report(ok=False, lines=tuple(lines))
    done = (
        f"✅ setWebhook: Telegram now delivers to {shown_url(url)} with the secret token; max connections "
        f"{max_connections}; updates: {', '.join(allowed_updates)}; pending updates "
        f"{'dropped' if drop_pending else 'kept'}."
    )
    try:
        info = await api.get_webhook_info()
    except TelegramApiError as exc:
        return Report(
            ok=False,
            lines=(
                done,
                f"⚠️ Reading it back (getWebhookInfo) failed: {telegram_failure(exc)}",
                "   The webhook is set; check it later with `voicecoder webhook info`.",
            ),
        )
    verdict = describe_webhook(info, expected=expected or Expectation(url=url))
    return Report(ok=verdict.healthy, lines=(done, "Read back with getWebhookInfo:", *verdict.lines))


async def webhook_info(api: TelegramBotApi, *, expected: Expectation | None = None, now: float | None = None) -> Report:
    """
    The health verdict of the current webhook, compared with *expected*.

    Raises:
        TelegramApiError: getWebhookInfo failed.
    """
    verdict: Verdict = describe_webhook(await api.get_webhook_info(), expected=expected, now=now)
    return Report(ok=verdict.healthy, lines=verdict.lines)


async def delete_webhook(api: TelegramBotApi, *, drop_pending: bool = False) -> Report:
    """
    Remove the webhook (pending updates kept unless *drop_pending*); the bot can then poll.

    Raises:
        TelegramApiError: deleteWebhook failed.
    """
    try:
        before = await api.get_webhook_info()
    except TelegramApiError as exc:
        before = None
        looked = f"(could not read the current webhook first: {telegram_failure(exc)})"
    await api.delete_webhook(drop_pending_updates=drop_pending)
    if before is None:
        what = "dropped" if drop_pending else "kept"
        return Report(ok=True, lines=(f"✅ deleteWebhook: no webhook is set now; pending updates {what}.", looked))
    if not before.url:
        dropped = " Pending updates dropped." if drop_pending else ""
        return Report(ok=True, lines=("No webhook was set; nothing to delete." + dropped,))
    kept = "dropped" if drop_pending else f"kept ({before.pending_update_count} pending; polling will receive them)"
    return Report(ok=True, lines=(f"Webhook {redact_url(before.url)} deleted; pending updates {kept}.",))


async def run_webhook_command(
    args: argparse.Namespace, api: TelegramBotApi, *, expected: Expectation | None = None
) -> Report:
    """
    Execute the parsed ``webhook`` sub-command against *api*; *expected* is what the configuration says.

    Raises:
        ConfigurationError: Invalid arguments.
        TelegramApiError: Telegram refused `info` or `delete`.
    """
    action = args.webhook_action
    if action == "set":
        given = args.allowed_updates
        allowed = ALLOWED_UPDATES if given is None else [u.strip() for u in str(given).split(",") if u.strip()]
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
            expected=expected,
        )
    if action == "info":
        return await webhook_info(api, expected=expected)
    if action == "delete":
        return await delete_webhook(api, drop_pending=args.drop_pending)
    raise ConfigurationError(f"Unknown webhook action {action!r}; use set, info or delete.")


__all__ = [
    "Report",
    "Verdict",
    "delete_webhook",
    "describe_webhook",
    "fix_for",
    "redact_url",
    "run_webhook_command",
    "set_webhook",
    "webhook_info",
]
