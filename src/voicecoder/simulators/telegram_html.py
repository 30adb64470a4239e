"""Telegram's HTML subset, parsed the way the Bot API does: plain text and entities, or its error."""

from __future__ import annotations

import re
from typing import Any

JSON = dict[str, Any]


class TelegramHtmlError(ValueError):
    """The text is not valid Telegram HTML; the message is what follows "can't parse entities: "."""


# --- Telegram's HTML subset ----------------------------------------------------------------------

_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
    "tg-time": "date_time",
}
_ENTITY_RE = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR_RE = re.compile(r"""\s*([a-zA-Z_-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def parse_telegram_html(source: str, *, strict: bool = False) -> tuple[str, list[JSON]]:
    """
    Parse *source* as Telegram's ``parse_mode=HTML``: the plain text and its entities (UTF-16 offsets).

    *strict* also enforces what the Bot API docs require but Telegram's parser tolerates: every ``&`` and
    ``>`` outside a tag is an entity, ``<a>`` has an ``href``, ``<tg-emoji>`` an ``emoji-id``, ``<code>`` takes a
    language only inside ``<pre>``, ``<pre>`` holds at most one ``<code>`` and no other tag, and links don't nest.

    Raises:
        TelegramHtmlError: Unsupported or unbalanced tags, a bare ``<``, a bad ``span`` class (and, when
            *strict*, the rules above).
    """
    out: list[str] = []
    utf16 = 0
    stack: list[tuple[str, int, JSON]] = []
    entities: list[JSON] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == "&":
            m = _ENTITY_RE.match(source, i)
            if m:
                name = m.group(1)
                if name.startswith("#x"):
                    decoded = chr(int("0" + name[1:], 0))
                elif name.startswith("#"):
                    decoded = chr(int(name[1:]))
                else:
                    decoded = _NAMED[name]
                out.append(decoded)
                utf16 += utf16_len(decoded)
                i = m.end()
                continue
            if strict:
                raise TelegramHtmlError(f"Bare '&' at byte offset {_byte_offset(source, i)}; escape it as &amp;")
            out.append("&")
            utf16 += 1
            i += 1
            continue
        if strict and ch == ">":
            raise TelegramHtmlError(f"Bare '>' at byte offset {_byte_offset(source, i)}; escape it as &gt;")
        if ch != "<":
            out.append(ch)
            utf16 += utf16_len(ch)
            i += 1
            continue
        end = source.find(">", i)
        if source.startswith("</", i):
            if end == -1:
                raise TelegramHtmlError(f"Unclosed end tag at byte offset {_byte_offset(source, i)}")
            name = source[i + 2 : end].strip().lower()
            if not stack:
                raise TelegramHtmlError(f"Unexpected end tag at byte offset {_byte_offset(source, i)}")
            open_name, start, attrs_ = stack.pop()
            if name != open_name:
                raise TelegramHtmlError(
                    f'Unmatched end tag at byte offset {_byte_offset(source, i)}, expected "</{open_name}>", '
                    f'found "</{name}>"'
                )
            _close_entity(open_name, start, utf16, attrs_, stack, entities)
            i = end + 1
            continue
        m_name = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)").match(source, i)
        if m_name is None:
            raise TelegramHtmlError(
                f"Unexpected start tag at byte offset {_byte_offset(source, i)}; escape '<' as &lt;"
            )
        name = m_name.group(1).lower()
        if name not in _TAG_TYPES:
            raise TelegramHtmlError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, i)}')
        if end == -1:
            raise TelegramHtmlError(f"Unclosed start tag at byte offset {_byte_offset(source, i)}")
        attr_text = source[m_name.end() : end]
        attributes: JSON = {}
        for am in _ATTR_RE.finditer(attr_text):
            if am.group(1):
                attributes[am.group(1).lower()] = am.group(2) or am.group(3) or am.group(4) or ""
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise TelegramHtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(source, i)}')
        if strict:
            _check_strict_tag(name, attributes, stack, _byte_offset(source, i))
        stack.append((name, utf16, attributes))
        i = end + 1
    if stack:
        raise TelegramHtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _check_strict_tag(name: str, attributes: JSON, stack: list[tuple[str, int, JSON]], offset: int) -> None:
    open_names = [n for n, _, _ in stack]
    if name == "a" and not attributes.get("href"):
        raise TelegramHtmlError(f'Tag "a" without href at byte offset {offset}')
    if name == "a" and "a" in open_names:
        raise TelegramHtmlError(f'Nested "a" at byte offset {offset}')
    if name == "tg-emoji" and not attributes.get("emoji-id"):
        raise TelegramHtmlError(f'Tag "tg-emoji" without emoji-id at byte offset {offset}')
    inside_pre = bool(open_names) and open_names[-1] == "pre"
    if name == "code" and "class" in attributes and not inside_pre:
        raise TelegramHtmlError(f'A language class on "code" outside "pre" at byte offset {offset}')
    if inside_pre and name != "code":
        raise TelegramHtmlError(f'Tag "{name}" inside "pre" at byte offset {offset}')
    if "code" in open_names or (name == "pre" and "pre" in open_names):
        raise TelegramHtmlError(f'Tag "{name}" inside "code"/"pre" at byte offset {offset}')


def _close_entity(
    name: str, start: int, end: int, attributes: JSON, stack: list[tuple[str, int, JSON]], entities: list[JSON]
) -> None:
    length = end - start
    if length <= 0:
        return
    kind = _TAG_TYPES[name]
    if kind == "code" and stack and stack[-1][0] == "pre":
        language = str(attributes.get("class", ""))
        if language.startswith("language-"):
            stack[-1][2]["__language"] = language.removeprefix("language-")
        return
    entity: JSON = {"offset": start, "length": length, "type": kind}
    if kind == "text_link":
        entity["url"] = attributes.get("href", "")
    if kind == "pre" and attributes.get("__language"):
        entity["language"] = attributes["__language"]
    if kind == "blockquote" and "expandable" in attributes:
        entity["type"] = "expandable_blockquote"
    entities.append(entity)
