"""
Telegram HTML text, independent of what a message says.

Escaping, splitting at the message limit without breaking a tag or an entity, the way back to plain text,
and the light Markdown of the agent's answers.
"""

from __future__ import annotations

import html
import re

TEXT_LIMIT = 4096


# --- HTML helpers --------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"<[^<>]*>|&(?:#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|[a-zA-Z]{2,6});|.", re.DOTALL)
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)")
_LEADING_BLANK = re.compile(r"(?:\s|<[^<>]*>)*")
"""Whitespace and whole tags at the start: what `html_to_text` turns into nothing or a blank."""


def esc(text: str) -> str:
    """Escape text for Telegram HTML (``&``, ``<``, ``>``)."""
    return html.escape(text, quote=False)


def html_to_text(source: str) -> str:
    """The visible text of Telegram HTML: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^<>]*>", "", source))


def _visible_len(token: str) -> int:
    if token.startswith("&") and len(token) > 1:
        token = html.unescape(token)
    return len(token.encode("utf-16-le")) // 2


def split_html(source: str, limit: int = TEXT_LIMIT) -> list[str]:
    """
    Split rendered HTML into parts of at most *limit* visible characters (UTF-16 units).

    Cuts prefer the last line break in the second half of a part; a cut never falls inside a tag or an
    entity, and tags open at the cut are closed at the end of the part and reopened in the next one.
    Parts with no visible text are dropped.
    """
    if len(source) * 2 <= limit:
        # Short enough that its visible text fits whatever it holds (decoding never lengthens, a character is at
        # most two UTF-16 units): only whether it shows anything is left, read from its first visible character.
        # That is most replies, and rendering the visible text to count it was ~2 µs for /help.
        blank = _LEADING_BLANK.match(source)
        first = blank.end() if blank is not None else 0
        if first == len(source):
            return []
        if source[first] != "&":  # not blank, and not an entity that may decode to a space
            return [source]
    visible_text = html_to_text(source)
    if len(visible_text) * 2 <= limit or len(visible_text.encode("utf-16-le")) // 2 <= limit:
        # The common case, a reply that fits: no per-character tokenising on the hot path.
        return [source] if visible_text.strip() else []
    tokens: list[str] = _TOKEN_RE.findall(source)
    parts: list[str] = []
    start = 0
    prefix: list[tuple[str, str]] = []
    stack: list[tuple[str, str]] = []
    visible = 0
    newline: tuple[int, list[tuple[str, str]], int] | None = None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        tag = _TAG_RE.match(tok) if tok.startswith("<") else None
        if tag is not None:
            closing, name = tag.group(1) == "/", tag.group(2).lower()
            if closing:
                if stack and stack[-1][0] == name:
                    stack.pop()
            elif not tok.endswith("/>"):
                stack.append((name, tok))
            i += 1
            continue
        width = _visible_len(tok)
        if visible + width > limit and visible > 0:
            if newline is not None and newline[2] > limit // 2:
                cut, snapshot = newline[0], newline[1]
            else:
                cut, snapshot = i, list(stack)
            _emit(parts, prefix, tokens[start:cut], snapshot)
            start, prefix = cut, snapshot
            stack, visible, newline, i = list(snapshot), 0, None, cut
            continue
        visible += width
        i += 1
        if tok == "\n":
            newline = (i, list(stack), visible)
    _emit(parts, prefix, tokens[start:], stack)
    return parts


def _emit(parts: list[str], opened: list[tuple[str, str]], body: list[str], still_open: list[tuple[str, str]]) -> None:
    text = "".join(tag for _, tag in opened) + "".join(body) + "".join(f"</{n}>" for n, _ in reversed(still_open))
    if html_to_text(text).strip():
        parts.append(text)


def split_plain(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split plain text into parts of at most *limit* characters, preferring line breaks."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", limit // 2, limit)
        cut = cut + 1 if cut != -1 else limit
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest.strip():
        parts.append(rest)
    return [p for p in parts if p.strip()]


_FENCE_RE = re.compile(r"```([A-Za-z0-9_+-]*)\n?(.*?)```", re.DOTALL)
_INLINE_CODE_RE = re.compile(r"`([^`\n]+)`")
_BOLD_RE = re.compile(r"\*\*([^*\n]+)\*\*")


def markdownish(text: str) -> str:
    """Claude's Markdown-flavoured answer as safe HTML: fenced code → ``<pre>``, `code`, **bold**; rest escaped."""
    out: list[str] = []
    pos = 0
    for m in _FENCE_RE.finditer(text):
        out.append(_inline(text[pos : m.start()]))
        lang, body = m.group(1), m.group(2)
        cls = f' class="language-{lang}"' if lang else ""
        out.append(f"<pre><code{cls}>{esc(body.rstrip())}</code></pre>")
        pos = m.end()
    out.append(_inline(text[pos:]))
    return "".join(out)


def _inline(text: str) -> str:
    # Code spans first, and bold only in the text between them: a bold run may never cross a code span,
    # or the tags would interleave (`<b><code>a</b></code>`) and Telegram would refuse the whole message.
    out: list[str] = []
    pos = 0
    for m in _INLINE_CODE_RE.finditer(text):
        out.append(_BOLD_RE.sub(lambda b: f"<b>{b.group(1)}</b>", esc(text[pos : m.start()])))
        out.append(f"<code>{esc(m.group(1))}</code>")
        pos = m.end()
    out.append(_BOLD_RE.sub(lambda b: f"<b>{b.group(1)}</b>", esc(text[pos:])))
    return "".join(out)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
