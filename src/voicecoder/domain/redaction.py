"""
`Redactor`: the one redaction for every text that may carry a secret, in logs and in chat replies alike.

It replaces the configured secret values (the bot token, the webhook secret and path, STT keys) and
anything shaped like a well-known credential (bot tokens, Anthropic and OpenAI-style keys, an
``Authorization:`` header value) with ``<redacted>``. The logging filter and the use cases (for text
that comes from the agent: its errors, answers, tool questions) call the same instance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["Redactor"]

# Shapes of secrets we redact even when they are not in the configuration (e.g. pasted by a user).
_PATTERNS = (
    re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b"),  # Telegram bot token
    re.compile(r"\bsk-ant-[A-Za-z0-9_-]{10,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}"),  # OpenAI-style
    re.compile(r"(?i)(authorization:\s*(?:token|bearer)\s+)[^\s\"']+"),
)


class Redactor:
    """Callable: ``redact(text)`` is *text* with every secret replaced by ``<redacted>``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "<redacted>", text)
        return text
