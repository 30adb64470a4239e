"""Parsing and checking single setting values: numbers, durations, choices, addresses, tool rules, URLs."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from pathlib import Path
from urllib.parse import urlsplit

from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.policy import ToolRule


def resolved_path(path: Path) -> Path:
    try:
        return path.expanduser().resolve()
    except OSError:
        return path.expanduser().absolute()


def parse_tool_rules(value: str) -> tuple[str, ...]:
    """
    ``TOOL_ALLOW``: rules separated by commas or newlines (commas inside parentheses belong to the rule).

    Raises:
        ConfigurationError: A rule is not ``Tool`` or ``Tool(specifier)``.
    """
    rules: list[str] = []
    depth, current = 0, ""
    for char in value:
        if char in ",\n" and depth == 0:
            rules.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    rules.append(current)
    parsed: list[str] = []
    for rule in (r.strip() for r in rules):
        if not rule:
            continue
        try:
            parsed.append(str(ToolRule.parse(rule)))
        except ValueError as exc:
            raise ConfigurationError(f"TOOL_ALLOW: {exc}. Separate several rules with commas.") from None
    return tuple(parsed)


def check_database_url(value: str) -> str:
    """
    DATABASE_URL as given, once it is a PostgreSQL URL with a host and a database (the message never shows it).

    Raises:
        ConfigurationError: It is not one.
    """
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in {"postgresql", "postgres"} or not parts.hostname or len(parts.path) < 2:
        raise ConfigurationError(
            "DATABASE_URL must look like postgresql://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special "
            "characters of the password), or be unset for the embedded SQLite mode."
        )
    return value


def database_secrets(url: str | None) -> tuple[str, ...]:
    """The password of a DATABASE_URL as written and decoded: what the log redactor must hide."""
    if not url:
        return ()
    try:
        raw = urlsplit(url).password
    except ValueError:
        return ()
    return tuple({raw, urllib.parse.unquote(raw)}) if raw else ()


def parse_passthrough(
    value: str, *, reserved_names: frozenset[str] = frozenset(), reserved_prefixes: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """
    ``AGENT_ENV_PASSTHROUGH``: variable names (commas or spaces) the agent may see besides its allow-list.

    Raises:
        ConfigurationError: A name is not a variable name, is one of *reserved_names* (voicecoder's own
            settings) or starts with one of *reserved_prefixes* (the configured speech-to-text plug-in's).
    """
    names = tuple(n for n in re.split(r"[,\s]+", value) if n)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigurationError(f"AGENT_ENV_PASSTHROUGH: {name!r} is not an environment variable name.")
        if name in reserved_names or name.startswith(reserved_prefixes):
            raise ConfigurationError(
                f"AGENT_ENV_PASSTHROUGH lists {name}, one of voicecoder's own settings: the agent runs arbitrary "
                "commands and must never see them. Remove it from AGENT_ENV_PASSTHROUGH."
            )
    return names


def parse_choice(value: str | None, name: str, options: tuple[str, ...], out: dict[str, object], field: str) -> None:
    if value is None:
        return
    if value.lower() not in options:
        raise ConfigurationError(f"{name}={value!r} is not valid; use one of: {', '.join(options)}.")
    out[field] = value.lower()


def parse_number(
    value: str | None,
    name: str,
    kind: type[int | float],
    low: float,
    high: float,
    out: dict[str, object],
    field: str,
) -> None:
    if value is None:
        return
    what = "a whole number" if kind is int else "a number"
    problem = f"{name} must be {what} between {low:g} and {high:g}, got {value!r}."
    try:
        number = kind(value)
    except ValueError:
        raise ConfigurationError(problem) from None
    if not low <= number <= high:  # NaN fails this too
        raise ConfigurationError(problem)
    out[field] = number


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(value: str, name: str) -> float | None:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1d``; ``0``/``off`` means no limit (None)."""
    if value.lower() in {"0", "off", "none"}:
        return None
    match = _DURATION_RE.fullmatch(value.strip())
    if match is None:
        raise ConfigurationError(
            f"{name} must be a duration such as 90s, 30m, 2h or 1d (or 0/off for no limit), got {value!r}."
        )
    seconds = float(match.group(1)) * _UNIT_SECONDS[(match.group(2) or "").lower()]
    if seconds < 60:
        raise ConfigurationError(f"{name} must be at least 60s (or 0/off for no limit), got {value!r}.")
    return seconds


def parse_ipv4(value: str, name: str) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        address = None
    if not isinstance(address, ipaddress.IPv4Address):
        raise ConfigurationError(
            f"{name} must be an IPv4 address such as 203.0.113.7 (Telegram delivers webhooks over IPv4 only), "
            f"got {value!r}."
        )
    return str(address)


def parse_bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}.")
