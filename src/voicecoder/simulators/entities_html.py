"""Telegram message entities rendered back into the Telegram HTML subset, for the sandbox page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

LINK_SCHEMES = ("http://", "https://", "tg://", "mailto:")
"""Where a text link may point: what Telegram clients open."""
_LANGUAGE_RE = re.compile(r"[A-Za-z0-9_+.#-]{1,32}")


def _open_tag(entity: Mapping[str, Any], text: str) -> tuple[str, str] | None:
    kind = entity.get("type")
    simple = {"bold": "b", "italic": "i", "underline": "u", "strikethrough": "s", "code": "code"}
    if kind in simple:
        return f"<{simple[kind]}>", f"</{simple[kind]}>"
    if kind == "spoiler":
        return '<span class="tg-spoiler">', "</span>"
    if kind in {"blockquote", "expandable_blockquote"}:
        return "<blockquote>", "</blockquote>"
    if kind == "pre":
        language = str(entity.get("language") or "")
        if _LANGUAGE_RE.fullmatch(language):
            return f'<pre><code class="language-{language}">', "</code></pre>"
        return "<pre>", "</pre>"
    url: str | None = None
    if kind == "text_link":
        url = str(entity.get("url") or "")
    elif kind == "url":
        url = text if "://" in text else f"https://{text}"
    elif kind == "email":
        url = f"mailto:{text}"
    if url is not None and url.lower().startswith(LINK_SCHEMES):
        href = html.escape(url, quote=True)
        return f'<a href="{href}" target="_blank" rel="noopener noreferrer">', "</a>"
    return None  # mentions, hashtags, custom emoji … are shown as their text


def render_entities(text: str, entities: Iterable[Mapping[str, Any]]) -> str:
    """
    *text* with its Telegram *entities* (UTF-16 offsets) as safe HTML in Telegram's tag subset.

    All text is escaped; the only tags produced are b, i, u, s, code, pre, blockquote, ``span.tg-spoiler``
    and links with an http(s)/tg/mailto target. Entities that overlap without nesting are closed and
    reopened; entities out of range are clipped or ignored.
    """
    units = text.encode("utf-16-le")
    n_units = len(units) // 2

    def piece(start: int, end: int) -> str:
        return units[2 * start : 2 * end].decode("utf-16-le", errors="replace")

    spans: list[tuple[int, int, str, str]] = []
    for entity in entities:
        try:
            start = max(0, int(entity["offset"]))
            end = min(n_units, start + int(entity["length"]))
        except (KeyError, TypeError, ValueError):
            continue
        if end <= start:
            continue
        tags = _open_tag(entity, piece(start, end))
        if tags is not None:
            spans.append((start, end, *tags))
    spans.sort(key=lambda s: (s[0], -s[1]))

    out: list[str] = []
    stack: list[tuple[int, int, str, str]] = []
    boundaries = sorted({0, n_units} | {s[0] for s in spans} | {s[1] for s in spans})
    pending = list(reversed(spans))
    pos = 0
    for boundary in boundaries:
        if boundary > pos:
            out.append(html.escape(piece(pos, boundary), quote=False))
            pos = boundary
        # Close what ends here; reopen what was open inside it but continues.
        if any(s[1] <= pos for s in stack):
            reopen: list[tuple[int, int, str, str]] = []
            while any(s[1] <= pos for s in stack):
                top = stack.pop()
                out.append(top[3])
                if top[1] > pos:
                    reopen.append(top)
            for span in reversed(reopen):
                out.append(span[2])
                stack.append(span)
        while pending and pending[-1][0] == pos:
            span = pending.pop()
            out.append(span[2])
            stack.append(span)
    while stack:
        out.append(stack.pop()[3])
    return "".join(out)
