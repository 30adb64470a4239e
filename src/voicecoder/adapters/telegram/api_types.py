"""
The Bot API objects voicecoder reads and sends, and `TelegramApiError`.

The models are attrs classes built from JSON, tolerant of fields they do not know.
"""

from __future__ import annotations

from typing import Any

import attrs

from voicecoder.domain.errors import DeliveryError, MalformedUpdateError

JSON = dict[str, Any]


class TelegramApiError(DeliveryError):
    """The Bot API refused a call (or could not be reached: ``code`` 0); the text never contains the token."""

    def __init__(self, code: int, description: str, method: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"Telegram {method} failed ({code}): {description}")
        self.code = code
        self.description = description
        self.method = method
        self.retry_after = retry_after

    @property
    def is_parse_error(self) -> bool:
        """True when Telegram could not parse the HTML/Markdown entities of the text."""
        return "can't parse entities" in self.description

    @property
    def is_query_too_old(self) -> bool:
        """True when a callback query was answered too late (or twice)."""
        return "query is too old" in self.description


# --- models -------------------------------------------------------------------------------------


def _need(data: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, dict):
        raise MalformedUpdateError(f"{where} is not an object")
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedUpdateError(f"{where}.{key} is missing or has the wrong type")
    return value


def _opt_str(data: JSON, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _opt_int(data: JSON, key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@attrs.frozen
class User:
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "user") -> User:
        uid = _need(data, "id", int, where)
        return cls(
            id=uid,
            is_bot=bool(data.get("is_bot", False)),
            first_name=str(data.get("first_name", "")),
            last_name=_opt_str(data, "last_name"),
            username=_opt_str(data, "username"),
            language_code=_opt_str(data, "language_code"),
        )


@attrs.frozen
class Chat:
    id: int
    type: str = "private"
    title: str | None = None
    username: str | None = None
    first_name: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "chat") -> Chat:
        return cls(
            id=_need(data, "id", int, where),
            type=str(data.get("type", "private")),
            title=_opt_str(data, "title"),
            username=_opt_str(data, "username"),
            first_name=_opt_str(data, "first_name"),
        )


@attrs.frozen
class Voice:
    file_id: str
    file_unique_id: str
    duration: int = 0
    mime_type: str | None = None
    file_size: int | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "voice") -> Voice:
        return cls(
            file_id=_need(data, "file_id", str, where),
            file_unique_id=str(data.get("file_unique_id", "")),
            duration=_opt_int(data, "duration") or 0,
            mime_type=_opt_str(data, "mime_type"),
            file_size=_opt_int(data, "file_size"),
        )


@attrs.frozen
class Audio:
    file_id: str
    file_unique_id: str
    duration: int = 0
    mime_type: str | None = None
    file_size: int | None = None
    file_name: str | None = None
    title: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "audio") -> Audio:
        return cls(
            file_id=_need(data, "file_id", str, where),
            file_unique_id=str(data.get("file_unique_id", "")),
            duration=_opt_int(data, "duration") or 0,
            mime_type=_opt_str(data, "mime_type"),
            file_size=_opt_int(data, "file_size"),
            file_name=_opt_str(data, "file_name"),
            title=_opt_str(data, "title"),
        )


@attrs.frozen
class Document:
    file_id: str
    file_unique_id: str
    file_name: str | None = None
    mime_type: str | None = None
    file_size: int | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "document") -> Document:
        return cls(
            file_id=_need(data, "file_id", str, where),
            file_unique_id=str(data.get("file_unique_id", "")),
            file_name=_opt_str(data, "file_name"),
            mime_type=_opt_str(data, "mime_type"),
            file_size=_opt_int(data, "file_size"),
        )


@attrs.frozen
class InlineKeyboardButton:
    text: str
    callback_data: str | None = None
    url: str | None = None

    def to_json(self) -> JSON:
        data: JSON = {"text": self.text}
        if self.callback_data is not None:
            data["callback_data"] = self.callback_data
        if self.url is not None:
            data["url"] = self.url
        return data

    @classmethod
    def from_json(cls, data: Any) -> InlineKeyboardButton:
        return cls(
            text=_need(data, "text", str, "button"),
            callback_data=_opt_str(data, "callback_data"),
            url=_opt_str(data, "url"),
        )


@attrs.frozen
class InlineKeyboardMarkup:
    inline_keyboard: tuple[tuple[InlineKeyboardButton, ...], ...]

    def to_json(self) -> JSON:
        return {"inline_keyboard": [[b.to_json() for b in row] for row in self.inline_keyboard]}

    @classmethod
    def from_json(cls, data: Any) -> InlineKeyboardMarkup:
        rows = _need(data, "inline_keyboard", list, "reply_markup")
        return cls(tuple(tuple(InlineKeyboardButton.from_json(b) for b in row) for row in rows))


@attrs.frozen
class Message:
    message_id: int
    chat: Chat
    date: int
    from_user: User | None = None
    text: str | None = None
    entities: tuple[JSON, ...] = ()
    caption: str | None = None
    voice: Voice | None = None
    audio: Audio | None = None
    document: Document | None = None
    reply_markup: InlineKeyboardMarkup | None = None
    reply_to_message: Message | None = None
    """The message this one replies to (as Telegram sends it: without its own reply_to_message)."""
    message_thread_id: int | None = None
    is_topic_message: bool = False
    """The message is in a forum topic (``message_thread_id``); Bot API 9.3 has topics in private chats too."""

    @property
    def topic(self) -> int | None:
        """The forum topic this message is in, or None (a reply thread id without a topic is not one)."""
        return self.message_thread_id if self.is_topic_message else None

    @classmethod
    def from_json(cls, data: Any, where: str = "message") -> Message:
        message_id = _need(data, "message_id", int, where)
        chat = Chat.from_json(data.get("chat"), f"{where}.chat")
        sender = data.get("from")
        markup = data.get("reply_markup")
        entities = data.get("entities")
        return cls(
            message_id=message_id,
            chat=chat,
            date=_opt_int(data, "date") or 0,
            from_user=User.from_json(sender, f"{where}.from") if sender is not None else None,
            text=_opt_str(data, "text"),
            entities=tuple(e for e in entities if isinstance(e, dict)) if isinstance(entities, list) else (),
            caption=_opt_str(data, "caption"),
            message_thread_id=_opt_int(data, "message_thread_id"),
            is_topic_message=data.get("is_topic_message") is True,
            voice=Voice.from_json(data["voice"], f"{where}.voice") if data.get("voice") is not None else None,
            audio=Audio.from_json(data["audio"], f"{where}.audio") if data.get("audio") is not None else None,
            document=(
                Document.from_json(data["document"], f"{where}.document") if data.get("document") is not None else None
            ),
            reply_markup=(
                InlineKeyboardMarkup.from_json(markup)
                if isinstance(markup, dict) and "inline_keyboard" in markup
                else None
            ),
            reply_to_message=(
                # One level only, as Telegram sends it (and a forged deep nesting cannot recurse).
                cls.from_json(
                    {k: v for k, v in replied.items() if k != "reply_to_message"}, f"{where}.reply_to_message"
                )
                if isinstance(replied := data.get("reply_to_message"), dict)
                else None
            ),
        )


@attrs.frozen
class CallbackQuery:
    id: str
    from_user: User
    chat_instance: str = ""
    data: str | None = None
    message: Message | None = None
    inline_message_id: str | None = None

    @property
    def message_accessible(self) -> bool:
        """False when Telegram sent an InaccessibleMessage (``date == 0``) or no message at all."""
        return self.message is not None and self.message.date != 0

    @classmethod
    def from_json(cls, data: Any, where: str = "callback_query") -> CallbackQuery:
        query_id = _need(data, "id", str, where)
        message = data.get("message")
        return cls(
            id=query_id,
            from_user=User.from_json(data.get("from"), f"{where}.from"),
            chat_instance=str(data.get("chat_instance", "")),
            data=_opt_str(data, "data"),
            message=Message.from_json(message, f"{where}.message") if message is not None else None,
            inline_message_id=_opt_str(data, "inline_message_id"),
        )


@attrs.frozen
class Update:
    """An Update; only ``message`` and ``callback_query`` are modelled, ``raw`` keeps everything."""

    update_id: int
    message: Message | None = None
    callback_query: CallbackQuery | None = None
    raw: JSON = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def kind(self) -> str | None:
        """The name of the payload field (``message``, ``callback_query``, ``edited_message`` ...)."""
        return next((k for k in self.raw if k != "update_id"), None)

    @classmethod
    def from_json(cls, data: Any) -> Update:
        """
        Parse a raw Update.

        Raises:
            MalformedUpdateError: Required fields are missing or have the wrong type.
        """
        update_id = _need(data, "update_id", int, "update")
        message = data.get("message")
        query = data.get("callback_query")
        return cls(
            update_id=update_id,
            message=Message.from_json(message) if message is not None else None,
            callback_query=CallbackQuery.from_json(query) if query is not None else None,
            raw=data,
        )


class ParsedUpdate(dict[str, Any]):
    """
    A raw Update (the decoded JSON object) that keeps its `Update` once parsed: see :func:`typed_update`.

    The ingress decodes each body into one, routing parses it to find the lane, and the handler needs the same parse
    again; this way it is done once per update. Treat it as read-only: the kept parse is not redone after a change.
    """

    __slots__ = ("typed",)

    def __init__(self, raw: JSON) -> None:
        super().__init__(raw)
        self.typed: Update | None = None


def typed_update(raw: JSON) -> Update:
    """
    ``Update.from_json(raw)``, parsed once per :class:`ParsedUpdate` (any other dict is parsed every time).

    Raises:
        MalformedUpdateError: Required fields are missing or have the wrong type.
    """
    if type(raw) is not ParsedUpdate:
        return Update.from_json(raw)
    if raw.typed is None:
        raw.typed = Update.from_json(dict(raw))  # a plain copy as its `raw`: no reference cycle for the collector
    return raw.typed


@attrs.frozen
class File:
    file_id: str
    file_unique_id: str = ""
    file_size: int | None = None
    file_path: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> File:
        return cls(
            file_id=_need(data, "file_id", str, "file"),
            file_unique_id=str(data.get("file_unique_id", "")),
            file_size=_opt_int(data, "file_size"),
            file_path=_opt_str(data, "file_path"),
        )


@attrs.frozen
class WebhookInfo:
    url: str
    has_custom_certificate: bool = False
    pending_update_count: int = 0
    ip_address: str | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    last_synchronization_error_date: int | None = None
    max_connections: int | None = None
    allowed_updates: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, data: Any) -> WebhookInfo:
        allowed = data.get("allowed_updates") if isinstance(data, dict) else None
        return cls(
            url=str(_need(data, "url", str, "webhook_info")),
            has_custom_certificate=bool(data.get("has_custom_certificate", False)),
            pending_update_count=_opt_int(data, "pending_update_count") or 0,
            ip_address=_opt_str(data, "ip_address"),
            last_error_date=_opt_int(data, "last_error_date"),
            last_error_message=_opt_str(data, "last_error_message"),
            last_synchronization_error_date=_opt_int(data, "last_synchronization_error_date"),
            max_connections=_opt_int(data, "max_connections"),
            allowed_updates=tuple(str(a) for a in allowed) if isinstance(allowed, list) else None,
        )


@attrs.frozen
class BotCommand:
    command: str
    description: str

    def to_json(self) -> JSON:
        return {"command": self.command, "description": self.description}
