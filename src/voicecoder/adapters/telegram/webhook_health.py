"""
How healthy the bot's webhook is, judged from getWebhookInfo against what the configuration expects.

One verdict serves `voicecoder webhook info` (which exits non-zero when something needs attention),
`voicecoder doctor`, /info in the chat and the ``pending_update_count`` gauge. It compares the registered URL
(path included, shown only as a fingerprint: the path is a secret) with PUBLIC_URL + WEBHOOK_PATH, and the
address Telegram delivers to with the host's own address when that is known; it judges the last delivery
error by its age, so an error fixed hours ago does not raise an alarm forever.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import socket
import time
import urllib.parse
from collections.abc import Callable
from typing import Literal

import anyio
import anyio.abc
import attrs

from voicecoder.adapters.telegram.api import RetryPolicy, TelegramApiError, TelegramBotApi, WebhookInfo
from voicecoder.domain.model import Diagnostic

log = logging.getLogger(__name__)

BACKLOG_WARNING = 100
"""More updates than this waiting at Telegram means deliveries are not getting 200s fast enough."""
RECENT_ERROR_S = 15 * 60
"""A delivery error younger than this needs attention; an older one is history."""
NEEDED_UPDATES: tuple[str, ...] = ("message", "callback_query")
UNRESOLVED_IP = "<unknown>"  # what the Bot API server reports before it resolved the host


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


def path_fingerprint(url: str) -> str:
    """Six hex digits of SHA-256 over the URL's path and query: enough to tell two paths apart, not to guess one."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return hashlib.sha256(target.encode()).hexdigest()[:6]


def shown_url(url: str) -> str:
    """The URL as voicecoder prints it: host shown, path replaced by its fingerprint."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    if not (parts.path.strip("/") or parts.query):
        return redact_url(url)
    return f"{redact_url(url)} (path #{path_fingerprint(url)})"


@attrs.frozen
class UrlParts:
    scheme: str
    host: str
    port: int | None
    path: str
    query: str

    @classmethod
    def of(cls, url: str) -> UrlParts:
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        default = {"https": 443, "http": 80}.get(parts.scheme.lower())
        return cls(
            scheme=parts.scheme.lower(),
            host=(parts.hostname or "").lower().rstrip("."),
            port=port if port is not None else default,
            path=parts.path or "/",
            query=parts.query,
        )


def url_differences(registered: str, configured: str) -> list[str]:
    """What differs between two webhook URLs, in words that never show a path."""
    a, b = UrlParts.of(registered), UrlParts.of(configured)
    found = []
    if a.scheme != b.scheme:
        found.append(f"scheme differs (registered {a.scheme}, configured {b.scheme})")
    if a.host != b.host:
        found.append(f"host differs (registered {a.host or '?'}, configured {b.host or '?'})")
    if a.port != b.port:
        found.append(f"port differs (registered {a.port}, configured {b.port})")
    if (a.path, a.query) != (b.path, b.query):
        found.append(
            f"path differs (registered #{path_fingerprint(registered)}, configured #{path_fingerprint(configured)})"
        )
    return found


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
    (
        r"404",
        (
            "The bot answered 404: the URL path does not match the bot's WEBHOOK_PATH. Run `voicecoder webhook set` "
            "with the same configuration the service uses."
        ),
    ),
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


def telegram_failure(exc: TelegramApiError) -> str:
    """What a failed Bot API call means for the operator: network down, token refused, or Telegram's own words."""
    if exc.code == 0:
        return (
            f"Cannot reach Telegram: the network is down or blocked ({exc.description} calling {exc.method}). "
            "Check this server's internet connection, DNS and outbound HTTPS (port 443) to the Bot API."
        )
    if exc.code in {401, 404}:
        return (
            f"Telegram refused the bot token ({exc.code} {exc.description}): check TELEGRAM_TOKEN "
            "(copy it again from @BotFather)."
        )
    return f"Telegram answered {exc.method} with {exc.code}: {exc.description}"


@attrs.frozen
class Expectation:
    """What the configuration says the webhook should look like."""

    transport: Literal["webhook", "polling", "telethon"] = "webhook"
    url: str | None = None
    """PUBLIC_URL + WEBHOOK_PATH; None when PUBLIC_URL or the path is not configured."""
    ip_addresses: tuple[str, ...] = ()
    """The host's IPv4 addresses when known (WEBHOOK_IP_ADDRESS, or what the URL's host resolves to)."""
    ip_source: str = ""
    """Where *ip_addresses* came from, for the message."""


@attrs.frozen
class Verdict:
    healthy: bool
    lines: tuple[str, ...]
    problems: tuple[str, ...] = ()
    """One short phrase per thing that needs attention (empty when healthy)."""

    def __str__(self) -> str:
        return "\n".join(self.lines)


def describe_webhook(info: WebhookInfo, *, expected: Expectation | None = None, now: float | None = None) -> Verdict:
    """A readable health verdict for getWebhookInfo, compared with *expected* when given."""
    now = time.time() if now is None else now
    expected = expected or Expectation()
    lines: list[str] = []
    problems: list[str] = []
    if not info.url:
        if expected.transport == "webhook" and expected.url is not None:
            problems.append("no webhook is set")
            lines.append(
                "⚠️ No webhook is set, but TRANSPORT=webhook: Telegram holds the updates. "
                "Run `voicecoder webhook set` (or serve with --polling)."
            )
        else:
            lines.append("No webhook is set: the bot receives updates by polling (`voicecoder serve --polling`).")
        lines.append(f"Pending updates: {info.pending_update_count}")
    else:
        lines.append(f"Registered URL: {shown_url(info.url)}")
        if expected.transport == "polling":
            problems.append("a webhook is set while TRANSPORT=polling")
            lines.append(
                "⚠️ TRANSPORT=polling, but a webhook is set: getUpdates fails with 409 Conflict. "
                "Run `voicecoder webhook delete` (pending updates are kept)."
            )
        elif expected.url is None:
            lines.append("ℹ️ PUBLIC_URL or WEBHOOK_PATH is not configured here, so the URL was not compared.")
        else:
            differences = url_differences(info.url, expected.url)
            if differences:
                problems.append("the registered URL differs from PUBLIC_URL + WEBHOOK_PATH")
                lines.append(f"⚠️ Configured URL: {shown_url(expected.url)}: " + "; ".join(differences) + ".")
                lines.append(
                    "   Fix: run `voicecoder webhook set` with the configuration `serve` uses; until then "
                    "deliveries go somewhere the bot does not listen."
                )
            else:
                lines.append("✅ Matches PUBLIC_URL + WEBHOOK_PATH.")
        lines.extend(_backlog_lines(info, problems))
        lines.extend(_error_lines(info, now, problems))
        lines.extend(_ip_lines(info, expected, problems))
        lines.append(f"Max connections: {info.max_connections if info.max_connections is not None else 'default (40)'}")
        lines.append(f"Custom certificate: {'yes' if info.has_custom_certificate else 'no'}")
        if info.allowed_updates is not None:
            lines.append(f"Allowed updates: {', '.join(info.allowed_updates)}")
            missing = [u for u in NEEDED_UPDATES if u not in set(info.allowed_updates)]
            if missing:
                problems.append(f"{', '.join(missing)} not allowed")
                lines.append(f"⚠️ voicecoder needs {', '.join(missing)}: run `voicecoder webhook set` again.")
    healthy = not problems
    if info.url or problems:
        lines.insert(0, "✅ Webhook healthy" if healthy else "⚠️ Webhook needs attention: " + "; ".join(problems))
    return Verdict(healthy=healthy, lines=tuple(lines), problems=tuple(problems))


def _backlog_lines(info: WebhookInfo, problems: list[str]) -> list[str]:
    pending = info.pending_update_count
    if pending > BACKLOG_WARNING:
        problems.append(f"{pending} updates pending")
        return [f"⚠️ Pending updates: {pending} — Telegram is not getting 200s fast enough."]
    return [f"Pending updates: {pending}"]


def _error_lines(info: WebhookInfo, now: float, problems: list[str]) -> list[str]:
    lines = []
    if info.last_error_date is not None:
        age = max(0, int(now - info.last_error_date))
        recent = age < RECENT_ERROR_S
        message = info.last_error_message or "(no message)"
        if recent:
            problems.append(f"delivery error {_ago(age)}")
        lines.append(f"{'⚠️' if recent else 'ℹ️'} Last delivery error {_ago(age)}: {message}")
        history = "   (older than 15 min: history, not a current fault)"
        lines.append(f"   Fix: {fix_for(message)}" if recent else history)
    else:
        lines.append("Last delivery error: none")
    if info.last_synchronization_error_date is not None:
        age = max(0, int(now - info.last_synchronization_error_date))
        lines.append(f"ℹ️ Telegram had a synchronization problem {_ago(age)} (on its side; nothing to do).")
    return lines


def _ip_lines(info: WebhookInfo, expected: Expectation, problems: list[str]) -> list[str]:
    address = info.ip_address
    if not address or address == UNRESOLVED_IP:
        return ["IP address: not resolved by Telegram yet"]
    if not expected.ip_addresses:
        return [f"IP address: {address}"]
    if address in expected.ip_addresses:
        return [f"IP address: {address} (matches {expected.ip_source})"]
    problems.append("Telegram delivers to a different IP address")
    says = ", ".join(expected.ip_addresses)
    return [
        f"⚠️ IP address: Telegram delivers to {address}, but {expected.ip_source} says {says}.",
        (
            "   Fix: if the server moved, run `voicecoder webhook set` again so Telegram resolves the host afresh "
            "(or set WEBHOOK_IP_ADDRESS to the server's public IPv4)."
        ),
    ]


def _ago(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


async def host_ipv4(host: str, *, within_s: float = 1.0) -> tuple[str, ...]:
    """The IPv4 addresses *host* resolves to here (the literal for an address); () when unknown or slow."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        return (str(literal),) if literal.version == 4 else ()
    with anyio.move_on_after(within_s):
        try:
            found = await anyio.getaddrinfo(host, 443, family=socket.AF_INET, type=socket.SOCK_STREAM)
        except OSError:
            return ()
        return tuple(sorted({str(entry[4][0]) for entry in found}))
    return ()


async def expectation(
    *,
    transport: Literal["webhook", "polling", "telethon"],
    url: str | None,
    fixed_ip: str | None = None,
    resolve: bool = True,
) -> Expectation:
    """What to compare getWebhookInfo with: the configured URL and, when known, the host's IPv4 address."""
    if fixed_ip:
        return Expectation(transport, url, (fixed_ip,), "WEBHOOK_IP_ADDRESS")
    host = UrlParts.of(url).host if url else ""
    if not host or not resolve:
        return Expectation(transport, url)
    addresses = await host_ipv4(host)
    return Expectation(transport, url, addresses, f"DNS of {host}" if addresses else "")


async def poll_pending_updates(
    api: TelegramBotApi,
    record: Callable[[int], None],
    *,
    every_s: float = 60.0,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Read ``pending_update_count`` from getWebhookInfo every *every_s* and hand it to *record*, until cancelled.

    A failed read is logged once per failure streak and retried at the next tick; it never stops the bot.
    """
    task_status.started()
    failing = False
    while True:
        try:
            info = await api.get_webhook_info(attempts=1)  # a gauge: the next tick is the retry
        except TelegramApiError as exc:
            if not failing:
                log.warning("pending update count unavailable: %s", telegram_failure(exc))
            failing = True
        else:
            if failing:
                log.info("pending update count available again")
            failing = False
            record(info.pending_update_count)
        await anyio.sleep(every_s)


QUICK_TIMEOUT_S = 1.5
"""One try, this long: `doctor` must answer within about two seconds, with the network up or down."""


async def telegram_diagnostics(
    token: str, *, base_url: str, expected: Expectation, now: float | None = None
) -> list[Diagnostic]:
    """
    Reachability and token (getMe), then the webhook verdict (getWebhookInfo): one quick try each, no retries.

    A network failure is reported as such (not as a bad token), and the webhook is then not asked about.
    """
    async with TelegramBotApi(token, base_url=base_url, timeout=QUICK_TIMEOUT_S, retry=RetryPolicy(attempts=1)) as api:
        started = time.perf_counter()
        try:
            me = await api.get_me()
        except TelegramApiError as exc:
            network = exc.code == 0
            return [
                Diagnostic(
                    "telegram",
                    ok=False,
                    detail=telegram_failure(exc),
                    fix="check the network path to Telegram" if network else "check TELEGRAM_TOKEN",
                )
            ]
        elapsed_ms = (time.perf_counter() - started) * 1000
        results = [
            Diagnostic(
                "telegram",
                ok=True,
                detail=f"reachable in {elapsed_ms:.0f} ms; the token belongs to @{me.username or me.first_name}",
            )
        ]
        try:
            info = await api.get_webhook_info(attempts=1)  # doctor looks once, quickly
        except TelegramApiError as exc:
            results.append(Diagnostic("webhook", ok=False, detail=f"getWebhookInfo failed: {telegram_failure(exc)}"))
            return results
    results.append(webhook_diagnostic(info, describe_webhook(info, expected=expected, now=now)))
    return results


def webhook_diagnostic(info: WebhookInfo, verdict: Verdict) -> Diagnostic:
    """The webhook verdict as one line of /info or `doctor`."""
    if verdict.healthy:
        if not info.url:
            return Diagnostic("webhook", ok=True, detail="none set (polling)")
        return Diagnostic(
            "webhook",
            ok=True,
            detail=f"{shown_url(info.url)}, {info.pending_update_count} pending, no recent delivery error",
        )
    return Diagnostic(
        "webhook",
        ok=False,
        detail="; ".join(verdict.problems),
        fix="run `voicecoder webhook info` for the details and the fix of each",
    )


__all__ = [
    "BACKLOG_WARNING",
    "RECENT_ERROR_S",
    "Expectation",
    "Verdict",
    "describe_webhook",
    "expectation",
    "fix_for",
    "host_ipv4",
    "path_fingerprint",
    "poll_pending_updates",
    "redact_url",
    "shown_url",
    "telegram_diagnostics",
    "telegram_failure",
    "url_differences",
    "webhook_diagnostic",
]
