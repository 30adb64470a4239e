"""The Bot API methods the simulator answers, with Telegram's validation and error texts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from voicecoder.simulators.bot_api_delivery import WebhookDelivery
from voicecoder.simulators.bot_api_records import (
    BOT_USER,
    BY_SET_WEBHOOK,
    CALLBACK_EXPIRY_S,
    CHAT_ACTIONS,
    COMMAND_RE,
    JSON,
    LONG_POLL_MAX,
    MAX_CALLBACK_ANSWER,
    MAX_CALLBACK_DATA,
    MAX_CAPTION,
    MAX_DOWNLOAD,
    MAX_TEXT,
    NOT_MODIFIED,
    OTHER_POLLER,
    QUERY_TOO_OLD,
    SECRET_RE,
    THREAD_NOT_FOUND,
    WEBHOOK_ACTIVE,
    ApiError,
    BotMessage,
    StoredFile,
    WebhookState,
    as_bool,
    int_param,
)
from voicecoder.simulators.telegram_html import TelegramHtmlError, parse_telegram_html


class BotApiMethods(WebhookDelivery):
    """``/bot<token>/<method>`` handlers: each takes the call's parameters and files, returns its result."""

    # --- Bot API methods -----------------------------------------------------------------------

    @staticmethod
    def _reply(*, result: Any = True, description: str | None = None) -> web.Response:
        body: JSON = {"ok": True, "result": result}
        if description:
            body["description"] = description
        return web.json_response(body)

    @staticmethod
    def _error(err: ApiError) -> web.Response:
        body: JSON = {"ok": False, "error_code": err.code, "description": err.description}
        headers = {}
        if err.retry_after is not None:
            body["parameters"] = {"retry_after": err.retry_after}
            headers["Retry-After"] = str(err.retry_after)
        return web.json_response(body, status=err.code, headers=headers)

    def _chat(self, params: JSON) -> JSON:
        chat_id = int_param(params, "chat_id", required=True)
        assert chat_id is not None
        chat = self._chats.get(chat_id)
        if chat is None:
            if self.strict_chats:
                raise ApiError(400, "Bad Request: chat not found")
            chat = self._chats.setdefault(chat_id, {"id": chat_id, "type": "private", "first_name": "User"})
        return chat

    def _thread(self, params: JSON, chat: JSON) -> int | None:
        """The ``message_thread_id`` of a send: a topic of *chat*, or Telegram's 400 for one it does not have."""
        thread = int_param(params, "message_thread_id")
        if thread is not None and thread not in self.topics.get(chat["id"], {}):
            raise ApiError(400, THREAD_NOT_FOUND)
        return thread

    async def _m_createforumtopic(self, params: JSON, files: Any) -> JSON:
        chat = self._chat(params)
        name = str(params.get("name") or "")
        if not 1 <= len(name) <= 128:
            raise ApiError(400, "Bad Request: TOPIC_TITLE_EMPTY" if not name else "Bad Request: TOPIC_TITLE_INVALID")
        thread = self.create_topic(chat["id"], name)
        self._record("bot", "create_topic", chat["id"], message_thread_id=thread, name=name)
        return {"message_thread_id": thread, "name": name, "icon_color": 0x6FB9F0}

    def create_topic(self, chat_id: int, name: str) -> int:
        """A new forum topic in *chat_id*; its id is the id of the service message that opens it, as in Telegram."""
        thread = self._new_message_id(chat_id)
        self.topics.setdefault(chat_id, {})[thread] = name
        return thread

    def _parse_text(self, params: JSON, field: str, limit: int) -> tuple[str, list[JSON]]:
        raw = params.get(field)
        text = "" if raw is None else str(raw)
        mode = str(params.get("parse_mode") or "")
        if mode.upper() == "HTML":
            try:
                plain, entities = parse_telegram_html(text)
            except TelegramHtmlError as exc:
                self.html_errors.append(str(exc))
                raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        elif mode:
            if mode not in {"Markdown", "MarkdownV2"}:
                raise ApiError(400, f"Bad Request: unsupported parse_mode {mode}")
            plain, entities = text, []  # the fake does not interpret Markdown
        else:
            plain = text
            entities = list(params.get("entities") or [])
        if field == "text":
            if not plain.strip():
                raise ApiError(400, "Bad Request: message text is empty")
            if len(plain) > limit:
                raise ApiError(400, "Bad Request: message is too long")
        elif len(plain) > limit:
            raise ApiError(400, "Bad Request: message caption is too long")
        return plain, entities

    @staticmethod
    def _markup(params: JSON) -> JSON | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return markup  # other keyboard kinds are stored as given
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ApiError(400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup should be an Array')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text", "")):
                    raise ApiError(400, "Bad Request: BUTTON_TEXT_INVALID")
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= MAX_CALLBACK_DATA:
                        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                elif not ({"url", "web_app", "copy_text", "switch_inline_query", "login_url"} & button.keys()):
                    raise ApiError(400, 'Bad Request: can\'t find field "callback_data"')
        return {"inline_keyboard": rows} if rows else None

    async def _m_getme(self, params: JSON, files: Any) -> JSON:
        return BOT_USER

    async def _m_sendmessage(self, params: JSON, files: Any) -> JSON:
        chat = self._chat(params)
        thread = self._thread(params, chat)
        plain, entities = self._parse_text(params, "text", MAX_TEXT)
        markup = self._markup(params)
        msg = BotMessage(
            thread_id=thread,
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
            message_thread_id=thread,
        )
        await self._notify()
        return msg.to_json(chat)

    def _target(self, params: JSON) -> tuple[JSON, BotMessage]:
        chat = self._chat(params)
        message_id = int_param(params, "message_id", required=True)
        msg = self.messages.get((chat["id"], message_id or 0))
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if not msg.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        return chat, msg

    async def _m_editmessagetext(self, params: JSON, files: Any) -> JSON:
        chat, msg = self._target(params)
        if msg.text is None:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        plain, entities = self._parse_text(params, "text", MAX_TEXT)
        markup = self._markup(params)  # omitted: the inline keyboard is removed
        if plain == msg.text and entities == msg.entities and markup == msg.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
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
            raise ApiError(400, NOT_MODIFIED)
        msg.reply_markup = markup
        msg.edit_date, msg.edits = int(time.time()), msg.edits + 1
        self._record("bot", "edit_markup", msg.chat_id, message_id=msg.message_id, reply_markup=markup)
        await self._notify()
        return msg.to_json(chat)

    async def _m_answercallbackquery(self, params: JSON, files: Any) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        cb = self._callbacks.get(query_id)
        if cb is None or cb.answered or time.monotonic() - cb.created > CALLBACK_EXPIRY_S:
            raise ApiError(400, QUERY_TOO_OLD)
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        cb.answered = True
        self._record(
            "bot",
            "callback_answer",
            cb.chat_id,
            callback_query_id=query_id,
            message_id=cb.message_id,
            text=text,
            show_alert=as_bool(params.get("show_alert", False)),
        )
        await self._notify()
        return True

    async def _m_sendchataction(self, params: JSON, files: Any) -> bool:
        chat = self._chat(params)
        thread = self._thread(params, chat)
        action = str(params.get("action") or "")
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        self._record("bot", "chat_action", chat["id"], action=action, message_thread_id=thread)
        return True

    def _input_file(
        self, params: JSON, files: dict[str, tuple[str, bytes, str]], field: str, **store: Any
    ) -> StoredFile:
        """The file sent as *field*: an upload (stored with *store* options) or the file_id of a known one."""
        if field in files:
            filename, data, ctype = files[field]
            if len(data) > 50 << 20:
                raise ApiError(413, "Request Entity Too Large")
            if not data:
                raise ApiError(400, "Bad Request: file must be non-empty")
            if field == "document":
                store.update(extension=filename.rsplit(".", 1)[-1], file_name=filename)
            default = store.pop("default_type", None)
            typed = ctype not in {"", "application/octet-stream"}
            return self.add_file(data, mime_type=ctype if typed else default, **store)
        ref = str(params.get(field) or "")
        if not ref:
            raise ApiError(400, f"Bad Request: there is no {field} in the request")
        if ref not in self.files:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return self.files[ref]

    async def _m_senddocument(self, params: JSON, files: dict[str, tuple[str, bytes, str]]) -> JSON:
        chat = self._chat(params)
        thread = self._thread(params, chat)
        stored = self._input_file(params, files, "document", kind="documents", default_type="application/octet-stream")
        caption, caption_entities = self._parse_text(params, "caption", MAX_CAPTION)
        msg = BotMessage(
            chat_id=chat["id"],
            message_id=self._new_message_id(chat["id"]),
            date=int(time.time()),
            from_bot=True,
            document=stored,
            thread_id=thread,
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
        thread = self._thread(params, chat)
        stored = self._input_file(params, files, "voice", default_type="audio/ogg")
        caption, caption_entities = self._parse_text(params, "caption", MAX_CAPTION)
        message_id = self._new_message_id(chat["id"])
        voice: JSON = {"duration": int_param(params, "duration") or 0, "mime_type": stored.mime_type or "audio/ogg"}
        voice.update(stored.to_json())
        raw: JSON = {"message_id": message_id, "from": BOT_USER, "chat": chat, "date": int(time.time()), "voice": voice}
        if thread is not None:
            raw.update(message_thread_id=thread, is_topic_message=True)
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
            thread_id=thread,
        )
        self.messages[(msg.chat_id, msg.message_id)] = msg
        self._record("bot", "voice", msg.chat_id, message_id=message_id, file_id=stored.file_id, caption=caption)
        await self._notify()
        return dict(raw)

    async def _m_getfile(self, params: JSON, files: Any) -> JSON:
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file_id or the file is temporarily unavailable")
        if stored.size > MAX_DOWNLOAD:
            raise ApiError(400, "Bad Request: file is too big")
        return stored.to_json(with_path=True)

    async def _m_setmycommands(self, params: JSON, files: Any) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be an Array of at most 100 BotCommand")
        for cmd in commands:
            if not isinstance(cmd, dict) or not COMMAND_RE.fullmatch(str(cmd.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
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
                raise ApiError(400, "Bad Request: secret token is too long")
            if not SECRET_RE.fullmatch(secret):
                raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if "certificate" in files and len(files["certificate"][1]) > 3 << 20:
            raise ApiError(400, "Bad Request: certificate is too big")
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if not isinstance(allowed, list):
                raise ApiError(400, "Bad Request: can't parse allowed_updates JSON object")
            self._allowed_updates = [str(a) for a in allowed] or None
        if as_bool(params.get("drop_pending_updates", False)):
            self._updates.clear()
        if not url:
            had = self._webhook is not None
            await self._stop_webhook()
            return self._reply(result=True, description="Webhook was deleted" if had else "Webhook is already deleted")
        if not url.startswith(("http://", "https://")):
            raise ApiError(400, "Bad Request: bad webhook: Wrong HTTP URL specified")
        max_conn = int_param(params, "max_connections") or 40
        self._webhook = WebhookState(
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
        if as_bool(params.get("drop_pending_updates", False)):
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
            raise ApiError(409, WEBHOOK_ACTIVE)
        offset = int_param(params, "offset")
        limit = max(1, min(100, int_param(params, "limit") or 100))
        timeout = max(0, min(LONG_POLL_MAX, int_param(params, "timeout") or 0))
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
                    raise ApiError(409, BY_SET_WEBHOOK)
                if self._poll_generation != generation:
                    raise ApiError(409, OTHER_POLLER)

    async def _m_logout(self, params: JSON, files: Any) -> bool:
        return True
