"""
`FakeTelegram`: a local fake of Telegram's MTProto API for one bot account, for Telethon clients.

Only the network under `telethon.TelegramClient` is replaced: the client connects to 127.0.0.1 with a session
string from `FakeTelegram.session_string()` and runs all of its own code — login with the bot token, the update
state (``updates.getState``/``getDifference``, pts gaps), event builders, HTML parsing, uploads and downloads.
The fake answers the API methods a bot uses with the TL types of ``telethon.tl`` and Telegram's error names, keeps
state (users, the bot's message box with texts, entities, inline keyboards, documents; uploads; callback queries)
and plays the *users*: `send_text`, `send_voice` and `press` create ``UpdateNewMessage`` /
``UpdateBotCallbackQuery`` updates pushed to every connection logged in as the bot, with pts kept consistent.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import attrs
from telethon.extensions import html as telethon_html
from telethon.sessions import StringSession
from telethon.tl import types

from voicecoder.simulators.mtproto import ClientSession, MtprotoServer, RpcFailure, tl_true, tl_vector

__all__ = ["FAKE_API_HASH", "FAKE_API_ID", "FAKE_BOT_TOKEN", "FakeTelegram", "FakeTelegramUser", "StoredMessage"]

log = logging.getLogger(__name__)

FAKE_API_ID = 611335
FAKE_API_HASH = "d524b414d21f4d37f08684c1df41ac9c"
FAKE_BOT_TOKEN = "7000000001:AAFakeTokenForLocalTestsOnly_0123456789"  # noqa: S105 - a fake, for tests
DC_ID = 2
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
PART_LIMIT = 512 * 1024
CALLBACK_EXPIRY_S = 150.0


@attrs.frozen
class FakeTelegramUser:
    """A person who talks to the bot in a private chat."""

    id: int
    first_name: str = "Ada"
    username: str | None = "ada_dev"
    access_hash: int = attrs.field(factory=lambda: secrets.randbits(63))

    def tl(self) -> Any:
        return types.User(id=self.id, access_hash=self.access_hash, first_name=self.first_name, username=self.username)


DEFAULT_USER = FakeTelegramUser(111111111)


@attrs.define
class StoredMessage:
    """A message in the bot's message box as it is now (bot messages may be edited)."""

    id: int
    chat_id: int
    out: bool
    date: int
    text: str = ""
    entities: list[Any] = attrs.field(factory=list)
    markup: Any = None
    document: Any = None
    document_data: bytes | None = None
    edits: int = 0
    reply_to: int | None = None

    @property
    def html(self) -> str:
        return str(telethon_html.unparse(self.text, self.entities))

    def buttons(self) -> list[tuple[str, bytes]]:
        """``(label, callback data)`` of every inline button, row by row."""
        rows = self.markup.rows if self.markup is not None else []
        return [(b.text, callback_data_of(b)) for row in rows for b in row.buttons]


@attrs.define
class _Callback:
    query_id: int
    chat_id: int
    message_id: int
    created: float
    answer: tuple[str | None, bool] | None = None


class FakeTelegram:
    """The fake; ``async with FakeTelegram() as tg:``, then give a client ``StringSession(tg.session_string())``."""

    def __init__(
        self,
        *,
        bot_token: str = FAKE_BOT_TOKEN,
        api_id: int = FAKE_API_ID,
        api_hash: str = FAKE_API_HASH,
        bot_username: str = "voicecoder_bot",
    ) -> None:
        self.bot_token = bot_token
        self.api_id = api_id
        self.api_hash = api_hash
        self.bot = types.User(
            id=int(bot_token.split(":", 1)[0]),
            access_hash=secrets.randbits(63),
            bot=True,
            is_self=True,
            first_name="VoiceCoder",
            username=bot_username,
            bot_info_version=1,
        )
        self.users: dict[int, FakeTelegramUser] = {}
        self.messages: dict[int, StoredMessage] = {}
        self.calls: list[tuple[str, Any]] = []
        self.chat_actions: list[tuple[int, str]] = []
        self.commands: list[tuple[str, str]] = []
        self.callbacks: dict[int, _Callback] = {}
        self._logged_in: set[int] = set()  # auth key ids bound to the bot
        self._ids = itertools.count(1)
        self._pts = 1
        self._log: list[tuple[int, Any]] = []  # (pts, update) for getDifference
        self._uploads: dict[int, dict[int, bytes]] = {}
        self._documents: dict[int, tuple[int, bytes]] = {}  # id -> (access_hash, data)
        self._changed = asyncio.Condition()
        self._server = MtprotoServer(self._handle)

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._server.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._server.close()

    @property
    def port(self) -> int:
        return self._server.port

    def session_string(self) -> str:
        """A Telethon `StringSession` for this server with a fresh auth key (not logged in yet)."""
        session = StringSession()
        session.set_dc(DC_ID, "127.0.0.1", self.port)
        session.auth_key = self._server.new_auth_key()
        return str(session.save())

    # --- the users' side -------------------------------------------------------------------

    def _user(self, user: FakeTelegramUser) -> FakeTelegramUser:
        return self.users.setdefault(user.id, user)

    async def send_text(
        self, text: str, *, user: FakeTelegramUser = DEFAULT_USER, reply_to: int | None = None
    ) -> StoredMessage:
        """The user sends *text* to the bot (a command if it starts with /), as a reply to *reply_to* if given."""
        user = self._user(user)
        entities = [types.MessageEntityBotCommand(0, len(text.split(maxsplit=1)[0]))] if text.startswith("/") else []
        msg = self._store(
            StoredMessage(
                next(self._ids),
                user.id,
                out=False,
                date=int(time.time()),
                text=text,
                entities=entities,
                reply_to=reply_to,
            )
        )
        await self._push_new_message(msg, user)
        return msg

    async def send_voice(
        self, data: bytes, *, duration: int = 3, mime_type: str = "audio/ogg", user: FakeTelegramUser = DEFAULT_USER
    ) -> StoredMessage:
        """The user records a voice note."""
        user = self._user(user)
        document = self._document(data, mime_type, [types.DocumentAttributeAudio(duration=duration, voice=True)])
        msg = StoredMessage(
            next(self._ids), user.id, out=False, date=int(time.time()), document=document, document_data=data
        )
        await self._push_new_message(self._store(msg), user)
        return msg

    async def send_document(
        self,
        data: bytes,
        file_name: str,
        *,
        mime_type: str = "application/octet-stream",
        user: FakeTelegramUser = DEFAULT_USER,
    ) -> StoredMessage:
        """The user sends a file (a document, not a voice note): e.g. an audio file sent "as file", or a PDF."""
        user = self._user(user)
        document = self._document(data, mime_type, [types.DocumentAttributeFilename(file_name)])
        msg = StoredMessage(
            next(self._ids), user.id, out=False, date=int(time.time()), document=document, document_data=data
        )
        await self._push_new_message(self._store(msg), user)
        return msg

    async def press(self, message_id: int, data: bytes, *, user: FakeTelegramUser = DEFAULT_USER) -> int:
        """
        The user taps the inline button with *data* under the bot's message *message_id*; returns the query id.

        Raises:
            ValueError: There is no such message or no such button on it (a client could not tap it).
        """
        user = self._user(user)
        msg = self.messages.get(message_id)
        if msg is None or not msg.out or data not in [d for _, d in msg.buttons()]:
            raise ValueError(f"message {message_id} has no button with data {data!r}")
        query_id = secrets.randbits(63)
        self.callbacks[query_id] = _Callback(query_id, msg.chat_id, message_id, time.monotonic())
        update = types.UpdateBotCallbackQuery(
            query_id=query_id,
            user_id=user.id,
            peer=types.PeerUser(msg.chat_id),
            msg_id=message_id,
            chat_instance=hash((self.bot.id, msg.chat_id)) & (2**63 - 1),
            data=data,
        )
        await self._push(types.Updates([update], [user.tl()], [], datetime.now(UTC), 0))
        return query_id

    # --- inspection ------------------------------------------------------------------------

    def bot_messages(self, chat_id: int = DEFAULT_USER.id) -> list[StoredMessage]:
        return [m for m in self.messages.values() if m.out and m.chat_id == chat_id]

    def calls_to(self, name: str) -> list[Any]:
        return [request for method, request in self.calls if method == name]

    async def wait_for(self, predicate: Callable[[], Any], *, within: float = 10.0) -> Any:
        """Wait until *predicate()* is truthy (re-checked after every change); returns its value."""
        async with asyncio.timeout(within), self._changed:
            while not (value := predicate()):
                await self._changed.wait()
            return value

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- state -----------------------------------------------------------------------------

    def _store(self, msg: StoredMessage) -> StoredMessage:
        self.messages[msg.id] = msg
        return msg

    def _document(self, data: bytes, mime_type: str, attributes: list[Any]) -> Any:
        doc_id, access_hash = secrets.randbits(63), secrets.randbits(63)
        self._documents[doc_id] = (access_hash, data)
        return types.Document(
            id=doc_id,
            access_hash=access_hash,
            file_reference=secrets.token_bytes(8),
            date=datetime.now(UTC),
            mime_type=mime_type,
            size=len(data),
            dc_id=DC_ID,
            attributes=attributes,
        )

    def _tl_message(self, msg: StoredMessage) -> Any:
        media = types.MessageMediaDocument(document=msg.document) if msg.document is not None else None
        return types.Message(
            id=msg.id,
            peer_id=types.PeerUser(msg.chat_id),
            date=datetime.fromtimestamp(msg.date, UTC),
            message=msg.text,
            out=msg.out,
            from_id=types.PeerUser(self.bot.id) if msg.out else None,
            entities=msg.entities or None,
            reply_markup=msg.markup,
            media=media,
            edit_date=datetime.now(UTC) if msg.edits else None,
            reply_to=types.MessageReplyHeader(reply_to_msg_id=msg.reply_to) if msg.reply_to is not None else None,
        )

    def _next_pts(self, update_of: Callable[[int], Any]) -> Any:
        self._pts += 1
        update = update_of(self._pts)
        self._log.append((self._pts, update))
        return update

    async def _push_new_message(self, msg: StoredMessage, user: FakeTelegramUser) -> None:
        update = self._next_pts(lambda pts: types.UpdateNewMessage(self._tl_message(msg), pts, 1))
        await self._push(types.Updates([update], [user.tl()], [], datetime.now(UTC), 0))

    async def _push(self, updates: Any) -> None:
        body = bytes(updates)
        for session in list(self._server.sessions):
            if session.key.key_id in self._logged_in:
                await self._server.push(session, body)
        await self._notify()

    # --- the API ---------------------------------------------------------------------------

    async def _handle(self, session: ClientSession, request: Any) -> bytes:
        name = type(request).__name__
        while name in {"InvokeWithLayerRequest", "InitConnectionRequest", "InvokeWithoutUpdatesRequest"}:
            request = request.query
            name = type(request).__name__
        self.calls.append((name, request))
        handler = getattr(self, f"_api_{name}", None)
        if handler is None:
            raise RpcFailure(400, "METHOD_NOT_SUPPORTED_BY_FAKE")
        if name not in {"GetConfigRequest", "ImportBotAuthorizationRequest"} and (
            session.key.key_id not in self._logged_in
        ):
            raise RpcFailure(401, "AUTH_KEY_UNREGISTERED")
        result: bytes = await handler(session, request)
        await self._notify()
        return result

    async def _api_GetConfigRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        now = datetime.now(UTC)
        return bytes(
            types.Config(
                date=now,
                expires=datetime.fromtimestamp(now.timestamp() + 3600, UTC),
                test_mode=False,
                this_dc=DC_ID,
                dc_options=[types.DcOption(id=DC_ID, ip_address="127.0.0.1", port=self.port)],
                dc_txt_domain_name="",
                chat_size_max=200,
                megagroup_size_max=200000,
                forwarded_count_max=100,
                online_update_period_ms=210000,
                offline_blur_timeout_ms=5000,
                offline_idle_timeout_ms=30000,
                online_cloud_timeout_ms=300000,
                notify_cloud_delay_ms=30000,
                notify_default_delay_ms=1500,
                push_chat_period_ms=60000,
                push_chat_limit=2,
                edit_time_limit=172800,
                revoke_time_limit=172800,
                revoke_pm_time_limit=2147483647,
                rating_e_decay=2419200,
                stickers_recent_limit=200,
                channels_read_media_period=604800,
                call_receive_timeout_ms=20000,
                call_ring_timeout_ms=90000,
                call_connect_timeout_ms=30000,
                call_packet_timeout_ms=10000,
                me_url_prefix="https://t.me/",
                caption_length_max=MAX_CAPTION,
                message_length_max=MAX_TEXT,
                webfile_dc_id=DC_ID,
            )
        )

    async def _api_ImportBotAuthorizationRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        if request.api_id != self.api_id or request.api_hash != self.api_hash:
            raise RpcFailure(400, "API_ID_INVALID")
        if request.bot_auth_token != self.bot_token:
            raise RpcFailure(400, "ACCESS_TOKEN_INVALID")
        self._logged_in.add(session.key.key_id)
        return bytes(types.auth.Authorization(user=self.bot))

    async def _api_GetUsersRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        found = []
        for wanted in request.id:
            if isinstance(wanted, types.InputUserSelf):
                found.append(self.bot)
            elif (user := self.users.get(getattr(wanted, "user_id", 0))) is not None:
                found.append(user.tl())
        return tl_vector(found)

    async def _api_GetStateRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        return bytes(types.updates.State(pts=self._pts, qts=0, date=datetime.now(UTC), seq=0, unread_count=0))

    async def _api_GetDifferenceRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        missed = [update for pts, update in self._log if pts > request.pts]
        now = datetime.now(UTC)
        if not missed:
            return bytes(types.updates.DifferenceEmpty(date=now, seq=0))
        new = [u.message for u in missed if isinstance(u, types.UpdateNewMessage)]
        other = [u for u in missed if not isinstance(u, types.UpdateNewMessage)]
        state = types.updates.State(pts=self._pts, qts=0, date=now, seq=0, unread_count=0)
        users = [u.tl() for u in self.users.values()]
        return bytes(types.updates.Difference(new, [], other, [], users, state))

    def _peer(self, peer: Any) -> FakeTelegramUser:
        user = self.users.get(getattr(peer, "user_id", 0))
        if user is None or not isinstance(peer, types.InputPeerUser) or peer.access_hash != user.access_hash:
            raise RpcFailure(400, "PEER_ID_INVALID")
        return user

    @staticmethod
    def _check_markup(markup: Any) -> None:
        if markup is None:
            return
        for row in markup.rows:
            for button in row.buttons:
                data = callback_data_of(button)
                if not 1 <= len(data) <= MAX_CALLBACK_DATA:
                    raise RpcFailure(400, "BUTTON_DATA_INVALID")

    async def _sent(self, msg: StoredMessage, user: FakeTelegramUser, random_id: int) -> bytes:
        self._store(msg)
        update = self._next_pts(lambda pts: types.UpdateNewMessage(self._tl_message(msg), pts, 1))
        ids = types.UpdateMessageID(id=msg.id, random_id=random_id)
        return bytes(types.Updates([ids, update], [user.tl()], [], datetime.now(UTC), 0))

    async def _api_SendMessageRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        user = self._peer(request.peer)
        if not request.message.strip():
            raise RpcFailure(400, "MESSAGE_EMPTY")
        if len(request.message.encode("utf-16-le")) // 2 > MAX_TEXT:
            raise RpcFailure(400, "MESSAGE_TOO_LONG")
        self._check_markup(request.reply_markup)
        msg = StoredMessage(
            next(self._ids),
            user.id,
            out=True,
            date=int(time.time()),
            text=request.message,
            entities=list(request.entities or []),
        )
        msg.markup = request.reply_markup
        return await self._sent(msg, user, request.random_id)

    async def _api_EditMessageRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        user = self._peer(request.peer)
        msg = self.messages.get(request.id)
        if msg is None or msg.chat_id != user.id:
            raise RpcFailure(400, "MESSAGE_ID_INVALID")
        if not msg.out:
            raise RpcFailure(403, "MESSAGE_AUTHOR_REQUIRED")
        text = msg.text if request.message is None else request.message
        entities = list(request.entities or []) if request.message is not None else msg.entities
        if len(text.encode("utf-16-le")) // 2 > (MAX_CAPTION if msg.document is not None else MAX_TEXT):
            raise RpcFailure(400, "MESSAGE_TOO_LONG")
        self._check_markup(request.reply_markup)
        # Like the Bot API: an edit without reply_markup removes the inline keyboard.
        markup = request.reply_markup
        if text == msg.text and entities == msg.entities and bytes_or_none(markup) == bytes_or_none(msg.markup):
            raise RpcFailure(400, "MESSAGE_NOT_MODIFIED")
        msg.text, msg.entities, msg.markup, msg.edits = text, entities, markup, msg.edits + 1
        update = self._next_pts(lambda pts: types.UpdateEditMessage(self._tl_message(msg), pts, 1))
        return bytes(types.Updates([update], [user.tl()], [], datetime.now(UTC), 0))

    async def _api_SaveFilePartRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        if len(request.bytes) > PART_LIMIT:
            raise RpcFailure(400, "FILE_PART_TOO_BIG")
        self._uploads.setdefault(request.file_id, {})[request.file_part] = request.bytes
        return tl_true()

    async def _api_SendMediaRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        user = self._peer(request.peer)
        media = request.media
        if not isinstance(media, types.InputMediaUploadedDocument):
            raise RpcFailure(400, "MEDIA_INVALID")
        parts = self._uploads.pop(media.file.id, None)
        if parts is None or sorted(parts) != list(range(media.file.parts)):
            raise RpcFailure(400, "FILE_PARTS_INVALID")
        data = b"".join(parts[i] for i in range(media.file.parts))
        checksum = getattr(media.file, "md5_checksum", "")
        if checksum and checksum != hashlib.md5(data).hexdigest():  # noqa: S324 - Telegram's upload checksum
            raise RpcFailure(400, "MD5_CHECKSUM_INVALID")
        if len(request.message.encode("utf-16-le")) // 2 > MAX_CAPTION:
            raise RpcFailure(400, "MEDIA_CAPTION_TOO_LONG")
        self._check_markup(request.reply_markup)
        attributes = list(media.attributes)
        if not any(isinstance(a, types.DocumentAttributeFilename) for a in attributes):
            attributes.append(types.DocumentAttributeFilename(media.file.name))
        document = self._document(data, media.mime_type, attributes)
        msg = StoredMessage(
            next(self._ids),
            user.id,
            out=True,
            date=int(time.time()),
            text=request.message,
            entities=list(request.entities or []),
        )
        msg.markup, msg.document, msg.document_data = request.reply_markup, document, data
        return await self._sent(msg, user, request.random_id)

    async def _api_GetFileRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        location = request.location
        stored = self._documents.get(getattr(location, "id", 0))
        if not isinstance(location, types.InputDocumentFileLocation) or stored is None:
            raise RpcFailure(400, "LOCATION_INVALID")
        if stored[0] != location.access_hash:
            raise RpcFailure(400, "FILE_REFERENCE_INVALID")
        if request.limit <= 0 or request.limit % 4096 or PART_LIMIT % request.limit:
            raise RpcFailure(400, "LIMIT_INVALID")
        if request.offset % 4096 or request.offset < 0:
            raise RpcFailure(400, "OFFSET_INVALID")
        chunk = stored[1][request.offset : request.offset + request.limit]
        return bytes(types.upload.File(type=types.storage.FileUnknown(), mtime=int(time.time()), bytes=chunk))

    async def _api_SetBotCallbackAnswerRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        callback = self.callbacks.get(request.query_id)
        if callback is None or callback.answer is not None or time.monotonic() - callback.created > CALLBACK_EXPIRY_S:
            raise RpcFailure(400, "QUERY_ID_INVALID")
        if request.message is not None and len(request.message) > MAX_CALLBACK_ANSWER:
            raise RpcFailure(400, "MESSAGE_TOO_LONG")
        callback.answer = (request.message, bool(request.alert))
        return tl_true()

    async def _api_SetTypingRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        user = self._peer(request.peer)
        self.chat_actions.append((user.id, type(request.action).__name__))
        return tl_true()

    async def _api_SetBotCommandsRequest(self, session: ClientSession, request: Any) -> bytes:  # noqa: N802
        self.commands = [(c.command, c.description) for c in request.commands]
        return tl_true()


def callback_data_of(button: Any) -> bytes:
    """The callback data of an inline button (layer 229 nests it in ``type``; older layers had ``data``)."""
    data = getattr(getattr(button, "type", None), "data", None)
    if data is None:
        data = getattr(button, "data", None)
    return bytes(data or b"")


def bytes_or_none(obj: Any) -> bytes | None:
    return None if obj is None else bytes(obj)
