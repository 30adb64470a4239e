"""The Bot API simulator's records: Telegram's limits and error texts, users, calls, files, messages."""

from __future__ import annotations

import re
from typing import Any

import attrs

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
THREAD_NOT_FOUND = "Bad Request: message thread not found"
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
SECRET_RE = re.compile(r"[A-Za-z0-9_-]*")
COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")


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
    thread_id: int | None = None
    """The forum topic the message is in (Bot API 9.3: topics in private chats too), or None."""

    def to_json(self, chat: JSON) -> JSON:
        if self.raw is not None:
            return dict(self.raw)
        data: JSON = {"message_id": self.message_id, "from": BOT_USER, "chat": chat, "date": self.date}
        if self.thread_id is not None:
            data["message_thread_id"] = self.thread_id
            data["is_topic_message"] = True
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


class ApiError(Exception):
    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


@attrs.define
class Fault:
    code: int
    description: str
    retry_after: int | None = None
    hang: bool = False


@attrs.define
class PendingUpdate:
    update: JSON
    queue: int
    expires_at: float
    attempts: int = 0
    not_before: float = 0.0


@attrs.define
class WebhookState:
    url: str
    secret_token: str | None
    max_connections: int
    has_custom_certificate: bool = False
    ip_address: str | None = None


@attrs.define
class CallbackState:
    id: str
    chat_id: int
    message_id: int
    created: float
    answered: bool = False


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


def int_param(params: JSON, name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(400, f"Bad Request: {name} is empty")
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {name} specified") from None
