"""
A faithful local fake of the Telegram Bot API, for tests, the webhook helper and the sandbox.

`FakeBotApi` is an aiohttp server on 127.0.0.1 (ephemeral port) that answers ``/bot<token>/<method>``
with Telegram's envelopes (``ok``/``error_code``/``description``, HTTP status = ``error_code``),
Telegram's validation and its error texts (see docs/reference: message too long, can't parse entities,
BUTTON_DATA_INVALID, message is not modified, message to edit not found, ...). It also plays the *user*:
Python methods and JSON endpoints under ``/_user/`` create updates (text, commands, voice notes, audio
documents, button presses) that are delivered like Telegram does:

* with a webhook set, POSTed with ``X-Telegram-Bot-Api-Secret-Token``, one update at a time per queue
  (messages: per chat; callback queries: per user), queues in parallel up to ``max_connections``,
  non-2xx and timeouts retried (immediately, then 2, 4, 8 ... s times ``time_scale``, honouring a
  ``Retry-After`` header), errors recorded for getWebhookInfo;
* without one, through getUpdates (offset confirmation, long polling, 409 while a webhook is set).

Like the official server in ``--local`` mode, webhook URLs may be plain http on any port (the fake
delivers to 127.0.0.1). A production URL such as ``https://bot.example.org/telegram/…`` can be delivered too:
`FakeBotApi.routes` stands in for DNS plus the TLS proxy (host → the local ``http://127.0.0.1:port`` the proxy
forwards to, path kept), and `FakeBotApi.dns` for the address getWebhookInfo reports. Every API call is
recorded in `FakeBotApi.calls`; what the bot sent, edited and answered is in `FakeBotApi.transcript()` and
`FakeBotApi.messages`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import itertools
import json
import logging
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import aiohttp
import attrs
from aiohttp import web

__all__ = [
    "BOT_USER",
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "ApiCall",
    "BotMessage",
    "FakeBotApi",
    "FakeUser",
    "StoredFile",
    "TelegramHtmlError",
    "parse_telegram_html",
]

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

DEFAULT_TOKEN = "7000000001:AAFakeTokenForLocalTestsOnly_0123456789"  # noqa: S105 - a fake, for tests
BOT_USER: JSON = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "VoiceCoder",
    "username": "voicecoder_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_DOWNLOAD = 20 << 20
LONG_POLL_MAX = 50
CALLBACK_EXPIRY_S = 150.0
MESSAGE_EXPIRY_S = 86_400.0

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
OTHER_POLLER = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
BY_SET_WEBHOOK = "Conflict: terminated by setWebhook request"

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
JSON_FIELDS = frozenset(
    {"reply_markup", "allowed_updates", "commands", "link_preview_options", "reply_parameters", "scope", "entities"}
)
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]*")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


@attrs.frozen
class FakeUser:
    """A Telegram user who talks to the bot in a private chat (chat id = user id)."""

    id: int
    first_name: str = "Ada"
    username: str | None = "ada_dev"
    language_code: str | None = "en"

    def to_json(self) -> JSON:
        data: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data

    def chat_json(self) -> JSON:
        data: JSON = {"id": self.id, "first_name": self.first_name, "type": "private"}
        if self.username:
            data["username"] = self.username
        return data


DEFAULT_USER = FakeUser(111111111)


@attrs.frozen
class ApiCall:
    """One request the bot made: method (as written), parameters (uploads as name/size), and its outcome."""

    method: str
    params: JSON
    at: float
    status: int = 200
    description: str | None = None


@attrs.define
class StoredFile:
    """A file Telegram holds: voice notes the user sent, documents the bot sent."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    size: int
    mime_type: str | None = None
    file_name: str | None = None

    def to_json(self, *, with_path: bool = False) -> JSON:
        data: JSON = {"file_id": self.file_id, "file_unique_id": self.file_unique_id, "file_size": self.size}
        if with_path:
            data["file_path"] = self.file_path
        return data


@attrs.define
class BotMessage:
    """A message in a chat, as it currently is (the bot's messages may be edited)."""

    chat_id: int
    message_id: int
    date: int
    from_bot: bool
    text: str | None = None
    entities: list[JSON] = attrs.field(factory=list)
    html: str | None = None
    parse_mode: str | None = None
    reply_markup: JSON | None = None
    document: StoredFile | None = None
    caption: str | None = None
    caption_entities: list[JSON] = attrs.field(factory=list)
    edit_date: int | None = None
    edits: int = 0
    raw: JSON | None = None

    def to_json(self, chat: JSON) -> JSON:
        if self.raw is not None:
            return dict(self.raw)
        data: JSON = {"message_id": self.message_id, "from": BOT_USER, "chat": chat, "date": self.date}
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        if self.document is not None:
            doc = self.document.to_json()
            if self.document.file_name:
                doc["file_name"] = self.document.file_name
            if self.document.mime_type:
                doc["mime_type"] = self.document.mime_type
            data["document"] = doc
            if self.caption:
                data["caption"] = self.caption
                if self.caption_entities:
                    data["caption_entities"] = self.caption_entities
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if self.reply_markup:
            data["reply_markup"] = self.reply_markup
        return data

    def callback_datas(self) -> list[str]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]

    def button_texts(self) -> list[str]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["text"] for row in rows for b in row]


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


def _utf16_len(text: str) -> int:
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
                utf16 += _utf16_len(decoded)
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
            utf16 += _utf16_len(ch)
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


# --- server --------------------------------------------------------------------------------------


class _ApiError(Exception):
    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@attrs.define
class _Fault:
    code: int
    description: str
    retry_after: int | None = None
    hang: bool = False


@attrs.define
class _Pending:
    update: JSON
    queue: int
    expires_at: float
    attempts: int = 0
    not_before: float = 0.0


@attrs.define
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    has_custom_certificate: bool = False
    ip_address: str | None = None


@attrs.define
class _Callback:
    id: str
    chat_id: int
    message_id: int
    created: float
    answered: bool = False


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def _int(params: JSON, name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise _ApiError(400, f"Bad Request: {name} is empty")
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _ApiError(400, f"Bad Request: invalid {name} specified") from None


class FakeBotApi:
    """
    The fake server. Use as ``async with FakeBotApi() as api:``; point the client at ``api.base_url``.

    *time_scale* compresses webhook retry delays (Telegram: 0, 2, 4, 8 ... s, capped at 60 s);
    *webhook_timeout* is how long one webhook POST may take (Telegram: about 60 s idle timeout);
    *webhook_max_attempts* (None: until the update expires) bounds retries per update. *port* 0 (the default)
    takes any free port; a fixed one lets a test start "Telegram" where a client already tries to reach it.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        time_scale: float = 1.0,
        webhook_timeout: float = 60.0,
        webhook_max_attempts: int | None = None,
        strict_chats: bool = True,
        first_update_id: int = 512_349_870,
        port: int = 0,
    ) -> None:
        self.token = token
        self.time_scale = time_scale
        self.webhook_timeout = webhook_timeout
        self.webhook_max_attempts = webhook_max_attempts
        self.strict_chats = strict_chats
        self.calls: list[ApiCall] = []
        self.messages: dict[tuple[int, int], BotMessage] = {}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[str, list[JSON]] = {}
        self.webhook_deliveries: list[tuple[int, int | str]] = []  # (update_id, HTTP status or error)
        self.dropped_updates: list[int] = []
        self.html_errors: list[str] = []
        """Every "can't parse entities" this server answered, so a test can assert the bot never hit one."""
        self.downloads: list[str] = []  # file paths fetched from /file/bot<token>/...
        # What DNS + a TLS-terminating proxy would do for a public webhook URL: host → local base URL, path kept.
        self.routes: dict[str, str] = {}
        # What the webhook's host resolves to, reported as getWebhookInfo's ip_address (IP literals report themselves).
        self.dns: dict[str, str] = {}
        self._chats: dict[int, JSON] = {}
        self._next_message_id: dict[int, int] = {}
        self._update_ids = itertools.count(first_update_id)
        self._updates: list[_Pending] = []
        self._allowed_updates: list[str] | None = None
        self._webhook: _Webhook | None = None
        self._last_error_date: int | None = None
        self._last_error_message: str | None = None
        self._callbacks: dict[str, _Callback] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self._transcript: list[JSON] = []
        self._poll_generation = 0
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._changed: asyncio.Condition | None = None
        self._wake: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = port

    # --- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=60 << 20)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_post("/_user/message", self._user_message)
        app.router.add_post("/_user/voice", self._user_voice)
        app.router.add_post("/_user/press", self._user_press)
        app.router.add_get("/_user/transcript", self._user_transcript)
        app.router.add_get("/_user/messages", self._user_messages)
        app.router.add_get("/_user/calls", self._user_calls)
        app.router.add_get("/_user/webhook", self._user_webhook)
        app.router.add_get("/_user/document/{file_id}", self._user_document)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._session = aiohttp.ClientSession()
        self._loop_task = asyncio.create_task(self._delivery_loop())

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()
        await self._notify()
        tasks = [t for t in (self._loop_task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None
        self._inflight.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """Where the Bot API lives: ``{base_url}/bot<token>/<method>`` and ``{base_url}/file/bot<token>/...``."""
        return f"http://127.0.0.1:{self._port}"

    # --- scripting -----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        times: int = 1,
        *,
        code: int = 429,
        retry_after: int = 1,
        description: str | None = None,
    ) -> None:
        """Make the next *times* calls of *method* fail with *code* (429 carries retry_after and Retry-After)."""
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after}",
                500: "Internal Server Error: restart",
                502: "Bad Gateway",
                403: "Forbidden: bot was blocked by the user",
            }.get(code, f"Error {code}")
        fault = _Fault(code, description, retry_after if code == 429 else None)
        self._faults.setdefault(method.lower(), []).extend(attrs.evolve(fault) for _ in range(times))

    def hang_next(self, method: str, times: int = 1) -> None:
        """Make the next *times* calls of *method* never answer (until the server closes)."""
        self._faults.setdefault(method.lower(), []).extend(_Fault(0, "", hang=True) for _ in range(times))

    def add_chat(self, user: FakeUser = DEFAULT_USER) -> JSON:
        """Make the private chat with *user* known (the user started the bot)."""
        chat = user.chat_json()
        self._chats.setdefault(user.id, chat)
        return self._chats[user.id]

    def add_file(
        self,
        data: bytes,
        *,
        kind: str = "voice",
        extension: str = "oga",
        declared_size: int | None = None,
        mime_type: str | None = None,
        file_name: str | None = None,
    ) -> StoredFile:
        """Store a file the way Telegram does; *declared_size* fakes a size without holding the bytes."""
        unique = base64.urlsafe_b64encode(hashlib.sha256(data + secrets.token_bytes(4)).digest()[:9]).decode()
        file_id = "AwACAgIAAxkB" + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=")
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            file_path=f"{kind}/file_{len(self.files)}.{extension}",
            data=data,
            size=declared_size if declared_size is not None else len(data),
            mime_type=mime_type,
            file_name=file_name,
        )
        self.files[file_id] = stored
        return stored

    # --- the user side -------------------------------------------------------------------------

    async def send_text(
        self, text: str, *, user: FakeUser = DEFAULT_USER, date: int | None = None, reply_to: int | None = None
    ) -> JSON:
        """
        The user types *text* (``/command`` texts get a bot_command entity); returns the Update.

        *date* (Unix seconds) backdates the message, as when Telegram held it through an outage of the bot. With
        *reply_to* the message replies to that message of the chat, which the update carries as
        ``reply_to_message`` in its current state (text, entities, inline keyboard), as Telegram does.

        Raises:
            LookupError: *reply_to* is not a message of the chat.
        """
        message = self._user_message_json(user, reply_to)
        if date is not None:
            message["date"] = date
        message["text"] = text
        m = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if m:
            message["entities"] = [{"offset": 0, "length": _utf16_len(m.group(0)), "type": "bot_command"}]
        return await self._user_update(user, message, summary={"text": text})

    async def send_voice(
        self,
        data: bytes,
        *,
        duration: int,
        user: FakeUser = DEFAULT_USER,
        mime_type: str = "audio/ogg",
        declared_size: int | None = None,
        caption: str | None = None,
        reply_to: int | None = None,
    ) -> JSON:
        """The user records a voice note (as a reply to *reply_to*, see `send_text`); returns the Update."""
        message = self._user_message_json(user, reply_to)
        stored = self.add_file(data, declared_size=declared_size, mime_type=mime_type)
        voice: JSON = {"duration": duration}
        if mime_type:
            voice["mime_type"] = mime_type
        voice.update(stored.to_json())
        message["voice"] = voice
        if caption:
            message["caption"] = caption
        return await self._user_update(user, message, summary={"voice": {"duration": duration, "size": stored.size}})

    async def send_audio_file(
        self,
        data: bytes,
        *,
        file_name: str,
        mime_type: str,
        user: FakeUser = DEFAULT_USER,
        as_document: bool = True,
        duration: int | None = None,
        declared_size: int | None = None,
    ) -> JSON:
        """The user attaches a file (as a document, or as an audio track); returns the Update."""
        kind = "documents" if as_document else "music"
        ext = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = self.add_file(
            data, kind=kind, extension=ext, declared_size=declared_size, mime_type=mime_type, file_name=file_name
        )
        message = self._user_message_json(user)
        obj: JSON = {"file_name": file_name, "mime_type": mime_type, **stored.to_json()}
        if as_document:
            message["document"] = obj
        else:
            obj["duration"] = duration or 0
            message["audio"] = obj
        key = "document" if as_document else "audio"
        return await self._user_update(user, message, summary={key: {"file_name": file_name, "size": stored.size}})

    async def press(self, message_id: int, callback_data: str, *, user: FakeUser = DEFAULT_USER) -> JSON:
        """
        The user taps the button with *callback_data* under the bot's message *message_id*.

        Raises:
            LookupError: No such bot message, or it has no such button (a client cannot press it).
        """
        chat_id = user.id
        msg = self.messages.get((chat_id, message_id))
        if msg is None or not msg.from_bot:
            raise LookupError(f"no bot message {message_id} in chat {chat_id}")
        if callback_data not in msg.callback_datas():
            raise LookupError(f"message {message_id} has no button with callback_data {callback_data!r}")
        query_id = str(secrets.randbelow(2**62) + 2**60)
        self._callbacks[query_id] = _Callback(query_id, chat_id, message_id, time.monotonic())
        query: JSON = {
            "id": query_id,
            "from": user.to_json(),
            "message": msg.to_json(self._chats[chat_id]),
            "chat_instance": str(-(abs(hash((chat_id, self.token))) % 2**62)),
            "data": callback_data,
        }
        update_id = next(self._update_ids)
        update: JSON = {"update_id": update_id, "callback_query": query}
        self._record("user", "press", chat_id, message_id=message_id, callback_data=callback_data, update_id=update_id)
        await self._enqueue(update, queue=user.id + (3 << 33), ttl=CALLBACK_EXPIRY_S)
        return update

    def transcript(self, *, since: int = 0, chat_id: int | None = None) -> list[JSON]:
        """What happened, in order: user actions and what the bot sent/edited/answered (``seq`` > *since*)."""
        return [e for e in self._transcript if e["seq"] > since and (chat_id is None or e.get("chat_id") == chat_id)]

    async def wait_transcript(self, *, since: int = 0, chat_id: int | None = None, within: float = 10.0) -> list[JSON]:
        """Like `transcript`, but waits up to *within* seconds for at least one new entry."""
        assert self._changed is not None
        deadline = time.monotonic() + within
        async with self._changed:
            while not (found := self.transcript(since=since, chat_id=chat_id)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), left)
        return found

    def message(self, message_id: int, chat_id: int = DEFAULT_USER.id) -> BotMessage:
        """
        The message *message_id* of *chat_id* in its current (edited) state.

        Raises:
            LookupError: There is no such message.
        """
        msg = self.messages.get((chat_id, message_id))
        if msg is None:
            raise LookupError(f"no message {message_id} in chat {chat_id}")
        return msg

    def bot_messages(self, chat_id: int = DEFAULT_USER.id) -> list[BotMessage]:
        """The bot's messages in *chat_id*, oldest first, in their current (edited) state."""
        return sorted(
            (m for (c, _), m in self.messages.items() if c == chat_id and m.from_bot), key=lambda m: m.message_id
        )

    def calls_to(self, method: str) -> list[ApiCall]:
        """The recorded calls of *method* (case-insensitive)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def callback_answered(self, query_id: str) -> bool:
        cb = self._callbacks.get(query_id)
        return cb is not None and cb.answered

    @property
    def pending_update_count(self) -> int:
        return len(self._updates)

    async def drain(self, within: float = 10.0) -> None:
        """
        Wait until every queued update was delivered (or dropped).

        Raises:
            TimeoutError: Updates are still pending after *within* seconds.
        """
        assert self._changed is not None
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: not self._updates)

    # --- internals: updates --------------------------------------------------------------------

    def _user_message_json(self, user: FakeUser, reply_to: int | None = None) -> JSON:
        chat = self.add_chat(user)
        replied: JSON | None = None
        if reply_to is not None:
            target = self.messages.get((user.id, reply_to))
            if target is None:
                raise LookupError(f"no message {reply_to} in chat {user.id} to reply to")
            replied = target.to_json(chat)
            replied.pop("reply_to_message", None)  # Telegram nests one level only
        message: JSON = {
            "message_id": self._new_message_id(user.id),
            "from": user.to_json(),
            "chat": chat,
            "date": int(time.time()),
        }
        if replied is not None:
            message["reply_to_message"] = replied
        return message

    async def _user_update(self, user: FakeUser, message: JSON, *, summary: JSON) -> JSON:
        update_id = next(self._update_ids)
        self.messages[(user.id, message["message_id"])] = BotMessage(
            chat_id=user.id,
            message_id=message["message_id"],
            date=message["date"],
            from_bot=False,
            text=message.get("text"),
            raw=message,
        )
        self._record("user", "message", user.id, message_id=message["message_id"], update_id=update_id, **summary)
        await self._enqueue({"update_id": update_id, "message": message}, queue=user.id, ttl=MESSAGE_EXPIRY_S)
        return {"update_id": update_id, "message": message}

    async def _enqueue(self, update: JSON, *, queue: int, ttl: float) -> None:
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates and kind not in self._allowed_updates:
            logger.debug("fake bot api: %s not in allowed_updates, not queued", kind)
            return
        self._updates.append(_Pending(update, queue, expires_at=time.monotonic() + ttl))
        await self._notify()

    async def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
        if self._changed is not None:
            async with self._changed:
                self._changed.notify_all()

    def _new_message_id(self, chat_id: int) -> int:
        nxt = self._next_message_id.get(chat_id, 1364)
        self._next_message_id[chat_id] = nxt + 1
        return nxt

    def _record(self, side: str, kind: str, chat_id: int | None, **fields: Any) -> None:
        entry: JSON = {"seq": len(self._transcript) + 1, "at": time.time(), "side": side, "kind": kind}
        if chat_id is not None:
            entry["chat_id"] = chat_id
        entry.update(fields)
        self._transcript.append(entry)

    async def _delivery_loop(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            next_due: float | None = None
            hook = self._webhook
            if hook is not None:
                now = time.monotonic()
                seen: set[int] = set()
                for pending in list(self._updates):
                    if pending.queue in seen:
                        continue
                    seen.add(pending.queue)
                    if pending.queue in self._inflight:
                        continue
                    if len(self._inflight) >= hook.max_connections:
                        break
                    if pending.not_before > now:
                        next_due = pending.not_before if next_due is None else min(next_due, pending.not_before)
                        continue
                    self._inflight[pending.queue] = asyncio.create_task(self._deliver(hook, pending))
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _deliver(self, hook: _Webhook, pending: _Pending) -> None:
        assert self._session is not None
        update_id = pending.update["update_id"]
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        retry_after: float | None = None
        error: str | None = None
        try:
            async with self._session.post(
                self._delivery_url(hook.url),
                data=json.dumps(pending.update),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                self.webhook_deliveries.append((update_id, resp.status))
                if not 200 <= resp.status < 300:
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
                    header = resp.headers.get("Retry-After")
                    if header is not None and header.strip().isdigit():
                        retry_after = min(3600.0, float(header))
        except TimeoutError:
            error = "Read timeout expired"
            self.webhook_deliveries.append((update_id, "timeout"))
        except aiohttp.ServerDisconnectedError:
            error = "Webhook connection closed"
            self.webhook_deliveries.append((update_id, "closed"))
        except aiohttp.ClientError as exc:
            error = f"Connection refused: {type(exc).__name__}"
            self.webhook_deliveries.append((update_id, "refused"))
        finally:
            self._inflight.pop(pending.queue, None)
        if error is None:
            if pending in self._updates:
                self._updates.remove(pending)
        else:
            self._last_error_date = int(time.time())
            self._last_error_message = error
            pending.attempts += 1
            if retry_after is not None:
                delay = retry_after
            elif pending.attempts == 1:
                delay = 0.0
            else:
                delay = min(60.0, 2.0 ** (pending.attempts - 1))
            delay *= self.time_scale
            pending.not_before = time.monotonic() + delay
            out_of_attempts = self.webhook_max_attempts is not None and pending.attempts >= self.webhook_max_attempts
            if (out_of_attempts or pending.not_before > pending.expires_at) and pending in self._updates:
                self._updates.remove(pending)
                self.dropped_updates.append(update_id)
        await self._notify()

    def _delivery_url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        base = self.routes.get(f"{host}:{parts.port}") or self.routes.get(host)
        if base is None:
            return url
        target = urllib.parse.urlsplit(base)
        return urllib.parse.urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))

    def _resolved_ip(self, hook: _Webhook) -> str | None:
        if hook.ip_address:
            return hook.ip_address
        host = urllib.parse.urlsplit(hook.url).hostname or ""
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return self.dns.get(host.lower())
        return str(literal) if literal.version == 4 else None

    # --- internals: HTTP -----------------------------------------------------------------------

    async def _read_params(self, request: web.Request) -> tuple[JSON, dict[str, tuple[str, bytes, str]]]:
        params: JSON = dict(request.query)
        files: dict[str, tuple[str, bytes, str]] = {}
        ctype = request.content_type
        if request.can_read_body:
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _ApiError(400, "Bad Request: can't parse JSON") from None
                if isinstance(body, dict):
                    params.update(body)
            elif ctype == "application/x-www-form-urlencoded":
                params.update(await request.post())
            elif ctype.startswith("multipart/"):
                reader = await request.multipart()
                async for part in reader:
                    if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                        continue
                    if part.filename is not None:
                        data = await part.read()
                        files[part.name] = (part.filename, bytes(data), part.headers.get("Content-Type", ""))
                    else:
                        params[part.name] = await part.text()
        for name in JSON_FIELDS & params.keys():
            if isinstance(params[name], str):
                try:
                    params[name] = json.loads(params[name])
                except ValueError:
                    raise _ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
        return params, files

    @staticmethod
    def _reply(*, result: Any = True, description: str | None = None) -> web.Response:
        body: JSON = {"ok": True, "result": result}
        if description:
            body["description"] = description
        return web.json_response(body)

    @staticmethod
    def _error(err: _ApiError) -> web.Response:
        body: JSON = {"ok": False, "error_code": err.code, "description": err.description}
        headers = {}
        if err.retry_after is not None:
            body["parameters"] = {"retry_after": err.retry_after}
            headers["Retry-After"] = str(err.retry_after)
        return web.json_response(body, status=err.code, headers=headers)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(_ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        handler = getattr(self, f"_m_{method.lower()}", None)
        try:
            params, files = await self._read_params(request)
        except _ApiError as err:
            return self._error(err)
        logged = dict(params)
        for name, (filename, data, _) in files.items():
            logged[name] = {"filename": filename, "size": len(data)}
        call = ApiCall(method, logged, time.time())
        faults = self._faults.get(method.lower())
        if faults:
            fault = faults.pop(0)
            if fault.hang:
                self.calls.append(attrs.evolve(call, status=0, description="hang"))
                assert self._closing is not None
                await self._closing.wait()
                return self._error(_ApiError(500, "Internal Server Error: shutting down"))
            self.calls.append(attrs.evolve(call, status=fault.code, description=fault.description))
            return self._error(_ApiError(fault.code, fault.description, retry_after=fault.retry_after))
        if handler is None:
            self.calls.append(attrs.evolve(call, status=404, description="Not Found: method not found"))
            return self._error(_ApiError(404, "Not Found: method not found"))
        try:
            result = await handler(params, files)
        except _ApiError as err:
            self.calls.append(attrs.evolve(call, status=err.code, description=err.description))
            return self._error(err)
        self.calls.append(call)
        if isinstance(result, web.Response):
            return result
        return self._reply(result=result)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        path = request.match_info["path"]
        self.downloads.append(path)
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    # --- Bot API methods -----------------------------------------------------------------------

    def _chat(self, params: JSON) -> JSON:
        chat_id = _int(params, "chat_id", required=True)
        assert chat_id is not None
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise _ApiError(400, "Bad Request: chat not found")
            chat = self._chats.setdefault(chat_id, {"id": chat_id, "type": "private", "first_name": "User"})
        return chat

    def _parse_text(self, params: JSON, field: str, limit: int) -> tuple[str, list[JSON]]:
        raw = params.get(field)
        text = "" if raw is None else str(raw)
        mode = str(params.get("parse_mode") or "")
        if mode.upper() == "HTML":
            try:
                plain, entities = parse_telegram_html(text)
            except TelegramHtmlError as exc:
                self.html_errors.append(str(exc))
                raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        elif mode:
            if mode not in {"Markdown", "MarkdownV2"}:
                raise _ApiError(400, f"Bad Request: unsupported parse_mode {mode}")
            plain, entities = text, []  # the fake does not interpret Markdown
        else:
            plain = text
            entities = list(params.get("entities") or [])
        if field == "text":
            if not plain.strip():
                raise _ApiError(400, "Bad Request: message text is empty")
            if len(plain) > limit:
                raise _ApiError(400, "Bad Request: message is too long")
        elif len(plain) > limit:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return plain, entities

    @staticmethod
    def _markup(params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup  # other keyboard kinds are stored as given
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _ApiError(400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup should be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text", "")):
                    raise _ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= MAX_CALLBACK_DATA:
                        raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                elif not ({"url", "web_app", "copy_text", "switch_inline_query", "login_url"} & button.keys()):
                    raise _ApiError(400, 'Bad Request: can\'t find field "callback_data"')
        return {"inline_keyboard": rows} if rows else None

    async def _m_getme(self, params: JSON, files: Any) -> JSON:
        return BOT_USER

    async def _m_sendmessage(self, params: JSON, files: Any) -> JSON:
        chat = self._chat(params)
        plain, entities = self._parse_text(params, "text", MAX_TEXT)
        markup = self._markup(params)
        msg = BotMessage(
            chat_id=chat["id"],
            message_id=self._new_message_id(chat["id"]),
            date=int(time.time()),
            from_bot=True,
            text=plain,
            entities=entities,
            html=str(params["text"]),
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
        )
        self.messages[(msg.chat_id, msg.message_id)] = msg
        self._record(
            "bot",
            "send",
            msg.chat_id,
            message_id=msg.message_id,
            text=plain,
            html=msg.html,
            parse_mode=msg.parse_mode,
            entities=entities,
            reply_markup=markup,
        )
        await self._notify()
        return msg.to_json(chat)

    def _target(self, params: JSON) -> tuple[JSON, BotMessage]:
        chat = self._chat(params)
        message_id = _int(params, "message_id", required=True)
        msg = self.messages.get((chat["id"], message_id or 0))
        if msg is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if not msg.from_bot:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return chat, msg

    async def _m_editmessagetext(self, params: JSON, files: Any) -> JSON:
        chat, msg = self._target(params)
        if msg.text is None:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        plain, entities = self._parse_text(params, "text", MAX_TEXT)
        markup = self._markup(params)  # omitted: the inline keyboard is removed
        if plain == msg.text and entities == msg.entities and markup == msg.reply_markup:
            raise _ApiError(400, NOT_MODIFIED)
        msg.text, msg.entities, msg.reply_markup = plain, entities, markup
        msg.html, msg.parse_mode = str(params["text"]), params.get("parse_mode")
        msg.edit_date, msg.edits = int(time.time()), msg.edits + 1
        self._record(
            "bot",
            "edit",
            msg.chat_id,
            message_id=msg.message_id,
            text=plain,
            html=msg.html,
            parse_mode=msg.parse_mode,
            entities=entities,
            reply_markup=markup,
        )
        await self._notify()
        return msg.to_json(chat)

    async def _m_editmessagereplymarkup(self, params: JSON, files: Any) -> JSON:
        chat, msg = self._target(params)
        markup = self._markup(params)
        if markup == msg.reply_markup:
            raise _ApiError(400, NOT_MODIFIED)
        msg.reply_markup = markup
        msg.edit_date, msg.edits = int(time.time()), msg.edits + 1
        self._record("bot", "edit_markup", msg.chat_id, message_id=msg.message_id, reply_markup=markup)
        await self._notify()
        return msg.to_json(chat)

    async def _m_answercallbackquery(self, params: JSON, files: Any) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        cb = self._callbacks.get(query_id)
        if cb is None or cb.answered or time.monotonic() - cb.created > CALLBACK_EXPIRY_S:
            raise _ApiError(400, QUERY_TOO_OLD)
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        cb.answered = True
        self._record(
            "bot",
            "callback_answer",
            cb.chat_id,
            callback_query_id=query_id,
            message_id=cb.message_id,
            text=text,
            show_alert=_bool(params.get("show_alert", False)),
        )
        await self._notify()
        return True

    async def _m_sendchataction(self, params: JSON, files: Any) -> bool:
        chat = self._chat(params)
        action = str(params.get("action") or "")
        if action not in CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        self._record("bot", "chat_action", chat["id"], action=action)
        return True

    def _input_file(
        self, params: JSON, files: dict[str, tuple[str, bytes, str]], field: str, **store: Any
    ) -> StoredFile:
        """The file sent as *field*: an upload (stored with *store* options) or the file_id of a known one."""
        if field in files:
            filename, data, ctype = files[field]
            if len(data) > 50 << 20:
                raise _ApiError(413, "Request Entity Too Large")
            if not data:
                raise _ApiError(400, "Bad Request: file must be non-empty")
            if field == "document":
                store.update(extension=filename.rsplit(".", 1)[-1], file_name=filename)
            default = store.pop("default_type", None)
            typed = ctype not in {"", "application/octet-stream"}
            return self.add_file(data, mime_type=ctype if typed else default, **store)
        ref = str(params.get(field) or "")
        if not ref:
            raise _ApiError(400, f"Bad Request: there is no {field} in the request")
        if ref not in self.files:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return self.files[ref]

    async def _m_senddocument(self, params: JSON, files: dict[str, tuple[str, bytes, str]]) -> JSON:
        chat = self._chat(params)
        stored = self._input_file(params, files, "document", kind="documents", default_type="application/octet-stream")
        caption, caption_entities = self._parse_text(params, "caption", MAX_CAPTION)
        msg = BotMessage(
            chat_id=chat["id"],
            message_id=self._new_message_id(chat["id"]),
            date=int(time.time()),
            from_bot=True,
            document=stored,
            caption=caption or None,
            caption_entities=caption_entities,
            html=params.get("caption"),
            parse_mode=params.get("parse_mode"),
            reply_markup=self._markup(params),
        )
        self.messages[(msg.chat_id, msg.message_id)] = msg
        self._record(
            "bot",
            "document",
            msg.chat_id,
            message_id=msg.message_id,
            file_id=stored.file_id,
            file_name=stored.file_name,
            size=stored.size,
            caption=caption,
            html=msg.html,
            reply_markup=msg.reply_markup,
        )
        await self._notify()
        return msg.to_json(chat)

    async def _m_sendvoice(self, params: JSON, files: dict[str, tuple[str, bytes, str]]) -> JSON:
        chat = self._chat(params)
        stored = self._input_file(params, files, "voice", default_type="audio/ogg")
        caption, caption_entities = self._parse_text(params, "caption", MAX_CAPTION)
        message_id = self._new_message_id(chat["id"])
        voice: JSON = {"duration": _int(params, "duration") or 0, "mime_type": stored.mime_type or "audio/ogg"}
        voice.update(stored.to_json())
        raw: JSON = {"message_id": message_id, "from": BOT_USER, "chat": chat, "date": int(time.time()), "voice": voice}
        if caption:
            raw["caption"] = caption
            if caption_entities:
                raw["caption_entities"] = caption_entities
        msg = BotMessage(
            chat_id=chat["id"],
            message_id=message_id,
            date=raw["date"],
            from_bot=True,
            caption=caption or None,
            caption_entities=caption_entities,
            html=params.get("caption"),
            parse_mode=params.get("parse_mode"),
            raw=raw,
        )
        self.messages[(msg.chat_id, msg.message_id)] = msg
        self._record("bot", "voice", msg.chat_id, message_id=message_id, file_id=stored.file_id, caption=caption)
        await self._notify()
        return dict(raw)

    async def _m_getfile(self, params: JSON, files: Any) -> JSON:
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _ApiError(400, "Bad Request: wrong file_id or the file is temporarily unavailable")
        if stored.size > MAX_DOWNLOAD:
            raise _ApiError(400, "Bad Request: file is too big")
        return stored.to_json(with_path=True)

    async def _m_setmycommands(self, params: JSON, files: Any) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _ApiError(400, "Bad Request: commands must be an Array of at most 100 BotCommand")
        for cmd in commands:
            if not isinstance(cmd, dict) or not _COMMAND_RE.fullmatch(str(cmd.get("command", ""))):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", ""))) <= 256:
                raise _ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True) + str(
            params.get("language_code") or ""
        )
        self.commands[key] = commands
        return True

    async def _m_getmycommands(self, params: JSON, files: Any) -> list[JSON]:
        key = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True) + str(
            params.get("language_code") or ""
        )
        return self.commands.get(key, [])

    async def _m_setwebhook(self, params: JSON, files: dict[str, tuple[str, bytes, str]]) -> web.Response:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret:
            secret = str(secret)
            if len(secret) > 256:
                raise _ApiError(400, "Bad Request: secret token is too long")
            if not _SECRET_RE.fullmatch(secret):
                raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        if "certificate" in files and len(files["certificate"][1]) > 3 << 20:
            raise _ApiError(400, "Bad Request: certificate is too big")
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list):
                raise _ApiError(400, "Bad Request: can't parse allowed_updates JSON object")
            self._allowed_updates = [str(a) for a in allowed] or None
        if _bool(params.get("drop_pending_updates", False)):
            self._updates.clear()
        if not url:
            had = self._webhook is not None
            await self._stop_webhook()
            return self._reply(result=True, description="Webhook was deleted" if had else "Webhook is already deleted")
        if not url.startswith(("http://", "https://")):
            raise _ApiError(400, "Bad Request: bad webhook: Wrong HTTP URL specified")
        max_conn = _int(params, "max_connections") or 40
        self._webhook = _Webhook(
            url=url,
            secret_token=secret or None,
            max_connections=max(1, min(100, max_conn)),
            has_custom_certificate="certificate" in files,
            ip_address=str(params["ip_address"]) if params.get("ip_address") else None,
        )
        self._poll_generation += 1
        await self._notify()
        return self._reply(result=True, description="Webhook was set")

    async def _stop_webhook(self) -> None:
        self._webhook = None
        for task in list(self._inflight.values()):
            task.cancel()
        for task in list(self._inflight.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._inflight.clear()
        await self._notify()

    async def _m_deletewebhook(self, params: JSON, files: Any) -> web.Response:
        if _bool(params.get("drop_pending_updates", False)):
            self._updates.clear()
        had = self._webhook is not None
        await self._stop_webhook()
        return self._reply(result=True, description="Webhook was deleted" if had else "Webhook is already deleted")

    async def _m_getwebhookinfo(self, params: JSON, files: Any) -> JSON:
        hook = self._webhook
        info: JSON = {
            "url": hook.url if hook else "",
            "has_custom_certificate": bool(hook and hook.has_custom_certificate),
            "pending_update_count": len(self._updates),
        }
        if hook is not None:
            info["max_connections"] = hook.max_connections
            if (address := self._resolved_ip(hook)) is not None:
                info["ip_address"] = address
        if self._last_error_date is not None:
            info["last_error_date"] = self._last_error_date
            info["last_error_message"] = self._last_error_message
        if self._allowed_updates:
            info["allowed_updates"] = list(self._allowed_updates)
        return info

    async def _m_getupdates(self, params: JSON, files: Any) -> list[JSON]:
        if self._webhook is not None:
            raise _ApiError(409, WEBHOOK_ACTIVE)
        offset = _int(params, "offset")
        limit = max(1, min(100, _int(params, "limit") or 100))
        timeout = max(0, min(LONG_POLL_MAX, _int(params, "timeout") or 0))
        if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
            self._allowed_updates = [str(a) for a in params["allowed_updates"]] or None
        if offset is not None:
            if offset > 0:
                self._updates = [p for p in self._updates if p.update["update_id"] >= offset]
            elif offset < 0:
                self._updates = self._updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        await self._notify()
        assert self._changed is not None
        assert self._closing is not None
        deadline = time.monotonic() + timeout
        async with self._changed:
            while True:
                now = time.monotonic()
                self._updates = [p for p in self._updates if p.expires_at > now]
                if self._updates or now >= deadline or self._closing.is_set():
                    return [p.update for p in self._updates[:limit]]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), deadline - now)
                if self._webhook is not None:
                    raise _ApiError(409, BY_SET_WEBHOOK)
                if self._poll_generation != generation:
                    raise _ApiError(409, OTHER_POLLER)

    async def _m_logout(self, params: JSON, files: Any) -> bool:
        return True

    # --- the user side over HTTP (for the sandbox page) ----------------------------------------

    # No CORS headers: only same-origin code (tests, the sandbox server) may drive the fake user, so a web page
    # the developer happens to visit cannot make the bot, and through it the agent, do anything.

    @staticmethod
    def _user_from(body: JSON) -> FakeUser:
        return FakeUser(
            id=int(body.get("user_id") or DEFAULT_USER.id),
            first_name=str(body.get("first_name") or DEFAULT_USER.first_name),
            username=body.get("username", DEFAULT_USER.username),
            language_code=body.get("language_code", DEFAULT_USER.language_code),
        )

    async def _user_body(self, request: web.Request) -> JSON:
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="expected a JSON object") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        return body

    async def _user_message(self, request: web.Request) -> web.StreamResponse:
        body = await self._user_body(request)
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return web.json_response({"error": "text is required"}, status=400)
        try:
            update = await self.send_text(text, user=self._user_from(body), reply_to=_reply_to(body))
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except ValueError:
            return web.json_response({"error": "reply_to_message_id is a message id"}, status=400)
        return web.json_response({"update": update})

    async def _user_voice(self, request: web.Request) -> web.StreamResponse:
        if request.content_type.startswith("multipart/"):
            params, files = await self._read_params(request)
            if "voice" not in files:
                return web.json_response({"error": "a 'voice' file part is required"}, status=400)
            _, data, ctype = files["voice"]
            body: JSON = dict(params)
            mime = str(body.get("mime_type") or ctype or "audio/ogg")
        else:
            body = await self._user_body(request)
            try:
                data = base64.b64decode(str(body.get("data_base64", "")), validate=True)
            except ValueError:
                return web.json_response({"error": "data_base64 is not base64"}, status=400)
            mime = str(body.get("mime_type") or "audio/ogg")
        if not data:
            return web.json_response({"error": "empty recording"}, status=400)
        duration = int(float(body.get("duration") or 1))
        try:
            update = await self.send_voice(
                data, duration=duration, mime_type=mime, user=self._user_from(body), reply_to=_reply_to(body)
            )
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except ValueError:
            return web.json_response({"error": "reply_to_message_id is a message id"}, status=400)
        return web.json_response({"update": update})

    async def _user_press(self, request: web.Request) -> web.StreamResponse:
        body = await self._user_body(request)
        try:
            update = await self.press(int(body["message_id"]), str(body["callback_data"]), user=self._user_from(body))
        except (KeyError, TypeError, ValueError):
            return web.json_response({"error": "message_id and callback_data are required"}, status=400)
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response({"update": update})

    async def _user_transcript(self, request: web.Request) -> web.StreamResponse:
        try:
            since = int(request.query.get("since", "0"))
            chat_id = int(request.query["chat_id"]) if "chat_id" in request.query else None
            timeout = min(30.0, float(request.query.get("timeout", "0")))
        except ValueError:
            return web.json_response({"error": "since, chat_id and timeout are numbers"}, status=400)
        if timeout > 0:
            entries = await self.wait_transcript(since=since, chat_id=chat_id, within=timeout)
        else:
            entries = self.transcript(since=since, chat_id=chat_id)
        last = entries[-1]["seq"] if entries else since
        return web.json_response({"entries": entries, "last": last})

    async def _user_messages(self, request: web.Request) -> web.StreamResponse:
        try:
            chat_id = int(request.query.get("chat_id", str(DEFAULT_USER.id)))
        except ValueError:
            return web.json_response({"error": "chat_id is a number"}, status=400)
        chat = self._chats.get(chat_id, {"id": chat_id, "type": "private"})
        msgs = sorted((m for (c, _), m in self.messages.items() if c == chat_id), key=lambda m: m.message_id)
        out = []
        for m in msgs:
            data = m.to_json(chat)
            data["html"] = m.html
            out.append(data)
        return web.json_response({"messages": out})

    async def _user_calls(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"calls": [attrs.asdict(c) for c in self.calls]})

    async def _user_webhook(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(await self._m_getwebhookinfo({}, None))

    async def _user_document(self, request: web.Request) -> web.StreamResponse:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return web.json_response({"error": "no such file"}, status=404)
        disposition = f'attachment; filename="{stored.file_name or "file"}"'
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type or "application/octet-stream",
            headers={"Content-Disposition": disposition},
        )


def _reply_to(body: JSON) -> int | None:
    """The ``reply_to_message_id`` of a user-side request, if any (ValueError when it is not a number)."""
    value = body.get("reply_to_message_id")
    return None if value in (None, "") else int(value)


def known_update_kinds(updates: Iterable[JSON]) -> list[str]:
    """The update kind (``message``, ``callback_query`` ...) of each update, for assertions."""
    return [next(k for k in u if k != "update_id") for u in updates]
