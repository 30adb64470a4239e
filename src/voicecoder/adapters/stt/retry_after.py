"""How long a speech service asks us to wait: ``Retry-After`` and OpenAI-style ``x-ratelimit-reset-*`` headers."""

from __future__ import annotations

import re
from collections.abc import Mapping

from voicecoder.adapters.retry_after_header import parse_retry_after

__all__ = ["parse_reset_duration", "parse_retry_after", "retry_delay"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset_duration(value: str | None) -> float | None:
    """Seconds from a Go-style duration such as ``1s``, ``6m0s`` or ``20ms`` (OpenAI's reset headers), or None."""
    if not value:
        return None
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def retry_delay(headers: Mapping[str, str]) -> float | None:
    """``Retry-After``, else the longer of ``x-ratelimit-reset-requests`` / ``-tokens``, else None."""
    delay = parse_retry_after(headers.get("Retry-After"))
    if delay is not None:
        return delay
    resets = [parse_reset_duration(headers.get(f"x-ratelimit-reset-{kind}")) for kind in ("requests", "tokens")]
    known = [r for r in resets if r is not None]
    return max(known) if known else None
