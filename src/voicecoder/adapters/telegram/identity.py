"""
The webhook's identity: one rule for its path, one for its secret token, one generator for each.

Telegram sends the secret in ``X-Telegram-Bot-Api-Secret-Token`` and allows 1-256 characters of ``A-Z a-z 0-9 _ -``
(setWebhook's ``secret_token``). The path is ours: it must start with ``/`` and be hard to guess, and it may not
hold ``{`` or ``}`` (aiohttp would read them as a route placeholder).
"""

from __future__ import annotations

import re
import secrets

from voicecoder.domain.errors import ConfigurationError

SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
MIN_PATH_LENGTH = 8
"""Shortest webhook path accepted, the ``/`` included: a path anyone can guess lets anyone post updates."""


def check_secret(value: str, *, name: str = "WEBHOOK_SECRET") -> str:
    """
    *value*, when Telegram accepts it as a webhook secret token.

    Raises:
        ConfigurationError: It is empty, longer than 256 characters, or holds another character.
    """
    if not SECRET_PATTERN.fullmatch(value):
        raise ConfigurationError(
            f"{name} must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule); leave it unset to have "
            "one generated, or generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return value


def check_path(value: str, *, name: str = "WEBHOOK_PATH") -> str:
    """
    *value*, when it is a usable webhook path.

    Raises:
        ConfigurationError: It does not start with ``/``, is shorter than 8 characters, or holds ``{`` or ``}``.
    """
    if not value.startswith("/") or len(value) < MIN_PATH_LENGTH or "{" in value or "}" in value:
        raise ConfigurationError(
            f"{name} must start with '/', be hard to guess ({MIN_PATH_LENGTH}+ characters) and hold no '{{' or "
            "'}'; leave it unset to have a random one generated."
        )
    return value


def new_path() -> str:
    """A fresh, hard-to-guess webhook path such as ``/telegram/3q2…`` (22 random characters)."""
    return "/telegram/" + secrets.token_urlsafe(16)


def new_secret() -> str:
    """A fresh secret token for setWebhook: 43 characters of ``[A-Za-z0-9_-]``."""
    return secrets.token_urlsafe(32)


__all__ = ["MIN_PATH_LENGTH", "SECRET_PATTERN", "check_path", "check_secret", "new_path", "new_secret"]
