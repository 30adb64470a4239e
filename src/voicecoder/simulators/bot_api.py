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
import json
import re
import secrets
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self

import aiohttp
import attrs
from aiohttp import web

from voicecoder.simulators.bot_api_methods import BotApiMethods
from voicecoder.simulators.bot_api_records import (
    BOT_USER,
    CALLBACK_EXPIRY_S,
    DEFAULT_TOKEN,
    DEFAULT_USER,
    JSON,
    JSON_FIELDS,
    MESSAGE_EXPIRY_S,
    ApiCall,
    ApiError,
    BotMessage,
    CallbackState,
    FakeUser,
    StoredFile,
)
from voicecoder.simulators.telegram_html import TelegramHtmlError, parse_telegram_html, utf16_len

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


class FakeBotApi(BotApiMethods):
    """
    The fake server. Use as ``async with FakeBotApi() as api:``; point the client at ``api.base_url``.

    *time_scale* compresses webhook retry delays (Telegram: 0, 2, 4, 8 ... s, capped at 60 s);
    *webhook_timeout* is how long one webhook POST may take (Telegram: about 60 s idle timeout);
    *webhook_max_attempts* (None: until the update expires) bounds retries per update. *port* 0 (the default)
    takes any free port; a fixed one lets a test start "Telegram" where a client already tries to reach it.
    """

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

    # --- the user side -------------------------------------------------------------------------

    async def send_text(
        self,
        text: str,
        *,
        user: FakeUser = DEFAULT_USER,
        date: int | None = None,
        reply_to: int | None = None,
        thread: int | None = None,
    ) -> JSON:
        """
        The user types *text* (``/command`` texts get a bot_command entity); returns the Update.

        *date* (Unix seconds) backdates the message, as when Telegram held it through an outage of the bot. With
        *reply_to* the message replies to that message of the chat, which the update carries as
        ``reply_to_message`` in its current state (text, entities, inline keyboard), as Telegram does. *thread* is
        the forum topic it is typed in (`create_topic`): the message carries ``message_thread_id`` and
        ``is_topic_message``.

        Raises:
            LookupError: *reply_to* is not a message of the chat, or *thread* not one of its topics.
        """
        message = self._user_message_json(user, reply_to, thread)
        if date is not None:
            message["date"] = date
        message["text"] = text
        m = re.match(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?", text)
        if m:
            message["entities"] = [{"offset": 0, "length": utf16_len(m.group(0)), "type": "bot_command"}]
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
        thread: int | None = None,
    ) -> JSON:
        """The user records a voice note (as a reply to *reply_to*, in topic *thread*: see `send_text`)."""
        message = self._user_message_json(user, reply_to, thread)
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
        self._callbacks[query_id] = CallbackState(query_id, chat_id, message_id, time.monotonic())
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

    # --- internals: updates --------------------------------------------------------------------

    def _user_message_json(self, user: FakeUser, reply_to: int | None = None, thread: int | None = None) -> JSON:
        chat = self.add_chat(user)
        if thread is not None and thread not in self.topics.get(user.id, {}):
            raise LookupError(f"chat {user.id} has no topic {thread}: create it with create_topic")
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
        if thread is not None:
            message.update(message_thread_id=thread, is_topic_message=True)
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
            thread_id=message.get("message_thread_id"),
        )
        self._record("user", "message", user.id, message_id=message["message_id"], update_id=update_id, **summary)
        await self._enqueue({"update_id": update_id, "message": message}, queue=user.id, ttl=MESSAGE_EXPIRY_S)
        return {"update_id": update_id, "message": message}

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
                    raise ApiError(400, "Bad Request: can't parse JSON") from None
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
                    raise ApiError(400, f"Bad Request: can't parse {name} JSON object") from None
        return params, files

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(ApiError(401, "Unauthorized"))
        method = request.match_info["method"]
        handler = getattr(self, f"_m_{method.lower()}", None)
        try:
            params, files = await self._read_params(request)
        except ApiError as err:
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
                return self._error(ApiError(500, "Internal Server Error: shutting down"))
            self.calls.append(attrs.evolve(call, status=fault.code, description=fault.description))
            return self._error(ApiError(fault.code, fault.description, retry_after=fault.retry_after))
        if handler is None:
            self.calls.append(attrs.evolve(call, status=404, description="Not Found: method not found"))
            return self._error(ApiError(404, "Not Found: method not found"))
        try:
            result = await handler(params, files)
        except ApiError as err:
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
