"""Small wording rules shared by every reply and diagnostic, so no chat or log line says "1 files"."""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``"1 file"``, ``"3 files"``, ``"0 files"``; irregular nouns take *plural_form* ("1 entry", "2 entries")."""
    word = singular if n == 1 else (plural_form if plural_form is not None else f"{singular}s")
    return f"{n:,} {word}"
