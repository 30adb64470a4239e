"""
Keeping secrets out of text: the one redaction behind logs, error texts and what the bot sends to a chat.

A configured secret is hidden in every form it travels in: as written, URL-encoded (a bot token's ``:`` is
``%3A`` or ``%3a`` in a URL), and, for a Telegram bot token, its secret half after the colon on its own (an
error text may quote only that part; the half before the colon is the bot's public user id). With
``patterns=True`` the shapes of well-known credentials are hidden too, configured or not (a token pasted by a
user, a key in a stack trace). With ``guesses=True`` also what merely looks like one: ``key=value`` assignments to a
credential-sounding name and opaque runs of 40+ token characters; that hides commit hashes too, so it is for text
nobody needs verbatim (a crashed CLI's stderr), never for logs or replies in general.

This is the only redaction: logs, CLI errors, the Bot API client, the agent's text in a chat and the Claude
adapter's stderr all use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["MIN_SECRET_CHARS", "Redactor", "secret_forms"]

MIN_SECRET_CHARS = 6
"""Shorter values are not treated as secrets: replacing every "abc" in a log would hide more than it protects."""

_BOT_TOKEN = re.compile(r"\d{5,12}:([A-Za-z0-9_-]{20,})")
_ESCAPE = re.compile(r"%[0-9A-F]{2}")
_PATTERNS = (
    re.compile(r"\b\d{5,12}(?::|%3[Aa])[A-Za-z0-9_-]{30,}"),  # Telegram bot token, plain or URL-encoded
    re.compile(r"\bsk-ant-[A-Za-z0-9_-]{10,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),  # OpenAI-style
    re.compile(r"(?i)(authorization:\s*(?:token|bearer)\s+)[^\s\"']+"),
)
_MAYBE_TOKEN = re.compile(r"\d{5}(?::|%3[Aa])[A-Za-z0-9_-]{30}")
_MAYBE_AUTHORIZATION = re.compile(r"(?i:authorization)")


def _maybe_pattern(text: str) -> bool:
    """
    Whether *text* holds a part every one of `_PATTERNS` must contain; without one it cannot match any.

    The token's part goes on to the 30 characters after the colon: a log line's lane (``100012:message``) has a
    chat id and a colon too, and with the colon alone every line of a chat with a 5-digit id paid for the four
    scans. Three searches, cheapest first, cost less than one search for three alternatives (5.4 µs on that line).
    """
    return "sk-" in text or _MAYBE_TOKEN.search(text) is not None or _MAYBE_AUTHORIZATION.search(text) is not None


_GUESSES = (
    re.compile(
        r"(?i)((?:api[_-]?key|auth[_-]?token|token|secret|password|authorization|bearer)[\"']?\s*[:=]?\s*[\"']?)"
        r"([^\s\"',;]{6,})"
    ),
    re.compile(r"[A-Za-z0-9_\-]{40,}"),
)


def secret_forms(secret: str) -> tuple[str, ...]:
    """Every form of *secret* to hide: itself, URL-encoded (upper- and lower-case hex), a bot token's secret half."""
    encoded = quote(secret, safe="")
    forms = {secret, encoded, _ESCAPE.sub(lambda m: m.group(0).lower(), encoded)}
    token = _BOT_TOKEN.fullmatch(secret)
    if token is not None:
        forms.add(token.group(1))
    return tuple(f for f in forms if len(f) >= MIN_SECRET_CHARS)


class Redactor:
    """
    Replaces each form of each secret (longest first) with *placeholder*; callable on ``str``.

    *placeholder* must suit where the text goes: ``<redacted>`` in logs, something without ``<``/``>`` in text a
    chat renders as HTML.
    """

    def __init__(
        self,
        secrets: Iterable[str] = (),
        *,
        placeholder: str = "<redacted>",
        patterns: bool = True,
        guesses: bool = False,
    ) -> None:
        forms = {form for secret in secrets if secret for form in secret_forms(secret)}
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        self._bytes = tuple((f.encode(), placeholder.encode()) for f in self._forms)
        self._placeholder = placeholder
        self._patterns = _PATTERNS if patterns else ()
        self._guesses = _GUESSES if guesses else ()

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, self._placeholder)
        # A log line is redacted as it is written, so most text has none of the shapes: one search says so,
        # instead of a scan per shape. A text without a part the search looks for is left as every scan left it.
        if self._patterns and _maybe_pattern(text):
            for pattern in self._patterns:
                text = pattern.sub(self._keep_prefix, text)
        for pattern in self._guesses:
            text = pattern.sub(self._keep_prefix, text)
        return text

    def data(self, data: bytes) -> bytes:
        """The same for bytes (a document's content): the configured secrets, UTF-8 encoded."""
        for form, placeholder in self._bytes:
            if form in data:
                data = data.replace(form, placeholder)
        return data

    def _keep_prefix(self, match: re.Match[str]) -> str:
        return (match.group(1) if match.groups() else "") + self._placeholder
