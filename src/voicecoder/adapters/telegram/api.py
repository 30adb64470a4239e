"""
A thin, typed client for the subset of the Telegram Bot API that voicecoder uses.

It is a plain aiohttp client, not a bot framework (see docs/adr/0007): ingress, ordering and the
durable inbox live elsewhere. What it does add:

* attrs models for the objects we read (tolerant of fields it does not know);
* retries: 429 waits ``parameters.retry_after`` (or the ``Retry-After`` header, seconds or an HTTP date); 5xx,
  timeouts, connection errors and a 408 back off exponentially with a cap; attempts are bounded; another answer
  below 500 that is not the Bot API's JSON object (a proxy's HTML page, a wrong base URL) is not retried;
* pacing: a token bucket per chat (about 1 message/s with a small burst) and one overall (30/s);
* "message is not modified" is success;
* downloads: a relative ``file_path`` goes out percent-encoded under ``/file/bot<token>/`` (no ``.``/``..`` segment
  can leave it); an absolute one (a local Bot API server, ``--local``) is read from disk only inside the directory
  the operator named (*local_files*), else refused with what to set;
* every other failure is a `TelegramApiError` (a `DeliveryError`), whose text never holds the token;
* what a chat shows (``text``, ``caption``, a document's content) never holds the token or another configured
  secret, in any form (see `voicecoder.redaction`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import yarl

from voicecoder.adapters.retry_after_header import parse_retry_after
from voicecoder.adapters.telegram.api_types import (
    JSON,
    Audio,
    BotCommand,
    CallbackQuery,
    Chat,
    Document,
    File,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramApiError,
    Update,
    User,
    Voice,
    WebhookInfo,
    _need,
)
from voicecoder.adapters.telegram.downloads import fetch, read_local, url_path
from voicecoder.adapters.telegram.http import HttpProtocolError, JsonHttpClient
from voicecoder.adapters.telegram.pacing import PacingPolicy, RetryPolicy, TokenBucketPacer
from voicecoder.domain.errors import MalformedUpdateError
from voicecoder.redaction import Redactor

__all__ = [
    "DEFAULT_BASE_URL",
    "JSON",
    "Audio",
    "BotCommand",
    "CallbackQuery",
    "Chat",
    "Document",
    "File",
    "InlineKeyboardButton",
    "InlineKeyboardMarkup",
    "Message",
    "PacingPolicy",
    "RetryPolicy",
    "TelegramApiError",
    "TelegramBotApi",
    "TokenBucketPacer",
    "Update",
    "User",
    "Voice",
    "WebhookInfo",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.telegram.org"


# --- the client ---------------------------------------------------------------------------------

_PACED = frozenset({"sendmessage", "senddocument", "editmessagetext", "editmessagereplymarkup"})
_SHOWN = ("text", "caption")  # parameters a chat displays; the rest (urls, secret_token ...) go out as given
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
"""``json.dumps`` with these options, without building an encoder per call."""
_NOT_THE_BOT_API = (
    "HTTP {status} with an answer that is not the Bot API's JSON (a proxy's error page, or TELEGRAM_API_BASE_URL "
    "does not point at a Bot API server)"
)
_SENT_ID = re.compile(
    rb"[ \t\n\r]*".join(
        [*map(re.escape, b'{ "ok" : true , "result" : { "message_id" :'.split()), rb"([1-9][0-9]{0,17})", rb"[,}]"]
    )
)
"""
The head of a successful send's answer as Telegram writes it: ``{"ok":true,"result":{"message_id":N,``, with JSON
whitespace allowed between the tokens. No ``"`` can occur inside a JSON string unescaped, so this text is the
answer's own keys.
"""
HIDDEN = "[redacted]"
"""What replaces a secret in text sent to a chat (no ``<``/``>``: the text may be HTML)."""


class TelegramBotApi:
    """
    The Bot API: JSON calls over a lean keep-alive client (`JsonHttpClient`), uploads and downloads over aiohttp.

    The aiohttp session is its own, or *session* if given, which it then does not close.

    Use as an async context manager or call `close`.
    """

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        pacing: PacingPolicy | None = None,
        on_error: Callable[[str, int], None] | None = None,
        secrets: Iterable[str] = (),
        local_files: Path | None = None,
    ) -> None:
        """
        The client for the bot with *token*.

        *secrets*: values besides the token (webhook secret, API keys) that must never reach a chat. *local_files*:
        the directory a local Bot API server (``--local``) keeps its files in, as this machine sees it; getFile's
        absolute paths are read from there (and from nowhere else).
        """
        if not token:
            raise ValueError("the bot token is empty")
        self._token = token
        self._redact_error = Redactor((token,), placeholder="<token>", patterns=False)
        self._redact_shown = Redactor((token, *secrets), placeholder=HIDDEN, patterns=False)
        self._base = base_url.rstrip("/")
        self._session = session
        self._owns_session = session is None
        self._json: JsonHttpClient | None = None
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._pacer = TokenBucketPacer(pacing or PacingPolicy())
        self._on_error = on_error or (lambda _method, _code: None)
        self._local_files = local_files
        self.send_gate: Callable[[], Awaitable[None]] | None = None
        """
        Awaited before every paced send (a message to a chat), after the local pacing: a cluster worker refuses
        there once its lease is gone and waits for the bot-wide budget it shares with the other workers.
        """

    def __repr__(self) -> str:
        return f"TelegramBotApi(base_url={self._base!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._json is not None:
            await self._json.aclose()
            self._json = None
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    def _json_http(self) -> JsonHttpClient:
        if self._json is None:
            self._json = JsonHttpClient(self._base)
        return self._json

    def redact(self, text: str) -> str:
        """*text* with the token (plain, URL-encoded, or its secret half alone) replaced by ``<token>``."""
        return self._redact_error(text)

    # --- the request loop ---------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: JSON | None = None,
        *,
        form: Callable[[], aiohttp.FormData] | None = None,
        pace: int | str | None = None,
        request_timeout: float | None = None,
        attempts: int | None = None,
        quick: Callable[[bytes], Any] | None = None,
    ) -> Any:
        """
        Call *method* with JSON *params* (or a multipart *form*, rebuilt per attempt); return ``result``.

        *quick* may read what its caller needs of a successful answer (HTTP 200) without parsing all of it; when it
        returns None the answer is parsed and handled as any other.

        "message is not modified" returns None. A call that timed out may have reached Telegram; its retry
        can then duplicate a message (Telegram offers no idempotency key), which beats losing it. (The HTTP client
        itself resends, once and at once, only a request whose reused connection the server closed without a byte
        of answer: ADR 0044.) An answer below 500 that is not the Bot API's JSON is not retried, except a 408.
        *attempts* overrides the retry policy's count (1: the caller retries on its own terms, e.g. the poller).

        Raises:
            TelegramApiError: Telegram refused the call, or it kept failing after the retries.
        """
        payload = {k: v for k, v in (params or {}).items() if v is not None}
        for shown in _SHOWN:
            if isinstance(payload.get(shown), str):
                payload[shown] = self._redact_shown(payload[shown])
        max_attempts = attempts if attempts is not None else self._retry.attempts
        if pace is None and method.lower() in _PACED and "chat_id" in payload:
            pace = payload["chat_id"]
        timeout = request_timeout or self._timeout
        encoded = _ENCODE(payload).encode()  # unused when a form is sent
        attempt = 0
        while True:
            attempt += 1
            if pace is not None:
                # Sleep only when a wait is due: no coroutine per send only to learn that none is.
                delay = self._pacer.reserve(pace)
                if delay > 0:
                    await asyncio.sleep(delay)
                if self.send_gate is not None:
                    await self.send_gate()
            body: Any = None
            try:
                if form is None:
                    status, headers, raw = await self._json_http().post(
                        f"/bot{self._token}/{method}", encoded, time_limit=timeout
                    )
                    header_retry = headers.get("retry-after")
                else:
                    url = f"{self._base}/bot{self._token}/{method}"
                    limit = aiohttp.ClientTimeout(total=timeout)
                    async with self._http().post(url, timeout=limit, data=form()) as resp:
                        status = resp.status
                        header_retry = resp.headers.get("Retry-After")
                        raw = await resp.read()
                if quick is not None and status == 200:
                    known = quick(raw)
                    if known is not None:
                        return known
                try:
                    body = json.loads(raw)
                except (ValueError, RecursionError):  # not the Bot API's JSON (or absurdly nested): no body
                    body = None
            except (aiohttp.ClientError, TimeoutError, OSError, HttpProtocolError) as exc:
                # Error messages may carry the URL, hence the token: keep only the class name.
                reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                self._on_error(method, 0)
                if attempt >= max_attempts:
                    tries = f" after {attempt} attempts" if attempt > 1 else ""
                    raise TelegramApiError(0, f"network error ({reason}){tries}", method) from None
                delay = self._retry.backoff(attempt)
                logger.warning("telegram %s: %s; retry %d in %.2f s", method, reason, attempt, delay)
                await asyncio.sleep(delay)
                continue

            if isinstance(body, dict) and body.get("ok") is True:
                return body.get("result")
            if isinstance(body, dict):
                code = body.get("error_code")
                if not isinstance(code, int) or isinstance(code, bool):
                    code = max(status, 400)  # an ok:false answer is a refusal whatever its status
                description = self.redact(str(body.get("description", f"HTTP {status}")))
                found = body.get("parameters")
                parameters: JSON = found if isinstance(found, dict) else {}
            else:
                body = None  # JSON that is not an object is no Bot API answer either
                code, description, parameters = status, _NOT_THE_BOT_API.format(status=status), {}
            if "message is not modified" in description:
                return None
            self._on_error(method, code)
            if code == 429:
                retry_after = _retry_after(parameters, header_retry)
                if attempt >= max_attempts or retry_after > self._retry.max_retry_after:
                    raise TelegramApiError(code, description, method, retry_after=retry_after)
                logger.warning("telegram %s: flood control, waiting %.0f s (attempt %d)", method, retry_after, attempt)
                await asyncio.sleep(retry_after)
                continue
            if code >= 500 or (body is None and (status >= 500 or status == 408)):
                if attempt >= max_attempts:
                    raise TelegramApiError(code, description, method)
                delay = self._retry.backoff(attempt)
                logger.warning("telegram %s: %s; retry %d in %.2f s", method, description, attempt, delay)
                await asyncio.sleep(delay)
                continue
            raise TelegramApiError(code, description, method)

    # --- methods -------------------------------------------------------------------------------

    async def get_me(self) -> User:
        return User.from_json(await self.call("getMe"))

    async def send_message(
        self,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = "HTML",
        reply_markup: InlineKeyboardMarkup | None = None,
        disable_preview: bool = True,
        reply_to_message_id: int | None = None,
        disable_notification: bool | None = None,
        message_thread_id: int | None = None,
    ) -> Message:
        """Send a text; *message_thread_id* is the forum topic it goes to (None: the chat itself)."""
        params = _text_params(
            chat_id,
            text,
            parse_mode,
            reply_markup,
            disable_preview=disable_preview,
            reply_to_message_id=reply_to_message_id,
            disable_notification=disable_notification,
            message_thread_id=message_thread_id,
        )
        return Message.from_json(await self.call("sendMessage", params))

    async def send_message_id(
        self,
        chat_id: int,
        text: str,
        *,
        parse_mode: str | None = "HTML",
        reply_markup: InlineKeyboardMarkup | None = None,
        message_thread_id: int | None = None,
    ) -> int:
        """
        `send_message` for a caller that keeps only the sent message's id (the messenger's replies).

        The returned Message is not parsed into its typed model, whose other fields such a caller would drop:
        that parse was about a sixth of the reply path's CPU (`bench/webhook_cpu.py`, ADR 0037). Nor is it decoded
        at all when the answer starts the way Telegram writes a sent message (`_sent_message_id`): Telegram echoes
        the whole text and its entities, and only the id is kept (ADR 0042).

        Raises:
            TelegramApiError: As `call`.
            MalformedUpdateError: Telegram's answer has no ``message_id``.
        """
        params = _text_params(chat_id, text, parse_mode, reply_markup, message_thread_id=message_thread_id)
        result = await self.call("sendMessage", params, quick=_sent_message_id)
        message_id: int = _need(result, "message_id", int, "message")
        return message_id

    async def edit_message_text(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        parse_mode: str | None = "HTML",
        reply_markup: InlineKeyboardMarkup | None = None,
        disable_preview: bool = True,
    ) -> Message | None:
        """Edit a text message; leaving out *reply_markup* removes its buttons. None: not modified."""
        params: JSON = {
            "chat_id": chat_id,
            "message_id": message_id,
            "text": text,
            "parse_mode": parse_mode,
            "reply_markup": reply_markup.to_json() if reply_markup else None,
            "link_preview_options": {"is_disabled": True} if disable_preview else None,
        }
        result = await self.call("editMessageText", params)
        return Message.from_json(result) if isinstance(result, dict) else None

    async def edit_message_reply_markup(
        self, chat_id: int, message_id: int, reply_markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        """Replace (or, with None, remove) the buttons of a message. None: not modified."""
        params: JSON = {
            "chat_id": chat_id,
            "message_id": message_id,
            "reply_markup": reply_markup.to_json() if reply_markup else None,
        }
        result = await self.call("editMessageReplyMarkup", params)
        return Message.from_json(result) if isinstance(result, dict) else None

    async def answer_callback_query(
        self,
        callback_query_id: str,
        text: str | None = None,
        *,
        show_alert: bool = False,
        cache_time: int | None = None,
    ) -> None:
        params: JSON = {
            "callback_query_id": callback_query_id,
            "text": text[:200] if text else None,
            "show_alert": show_alert or None,
            "cache_time": cache_time,
        }
        await self.call("answerCallbackQuery", params)

    async def send_chat_action(
        self, chat_id: int, action: str = "typing", *, message_thread_id: int | None = None
    ) -> None:
        await self.call(
            "sendChatAction", {"chat_id": chat_id, "message_thread_id": message_thread_id, "action": action}
        )

    async def send_document(
        self,
        chat_id: int,
        data: bytes,
        filename: str,
        *,
        caption: str | None = None,
        parse_mode: str | None = "HTML",
        reply_markup: InlineKeyboardMarkup | None = None,
        mime_type: str = "text/plain",
        message_thread_id: int | None = None,
    ) -> Message:
        caption = self._redact_shown(caption) if caption else caption
        data = self._redact_shown.data(data)

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field("chat_id", str(chat_id))
            if message_thread_id is not None:
                fd.add_field("message_thread_id", str(message_thread_id))
            if caption:
                fd.add_field("caption", caption)
                if parse_mode:
                    fd.add_field("parse_mode", parse_mode)
            if reply_markup is not None:
                fd.add_field("reply_markup", json.dumps(reply_markup.to_json()))
            fd.add_field("document", data, filename=filename, content_type=mime_type)
            return fd

        return Message.from_json(await self.call("sendDocument", form=form, pace=chat_id))

    async def get_file(self, file_id: str) -> File:
        return File.from_json(await self.call("getFile", {"file_id": file_id}))

    async def download_file(self, file_path: str, *, max_bytes: int | None = None) -> bytes:
        """
        Download a file that getFile described (``{base}/file/bot<token>/<file_path>``).

        An absolute *file_path* comes from a local Bot API server (``--local``), which leaves the file on its disk:
        it is read from there when it lies inside *local_files* (symbolic links resolved), and refused otherwise.

        Raises:
            TelegramApiError: Not found (404: call getFile again), larger than *max_bytes* (413), a *file_path*
                that would leave the file directory or a local path this client may not read (400), or the
                download kept failing.
        """
        if file_path.startswith("/"):
            return await read_local(file_path, self._local_files, max_bytes, shown=self.redact(file_path))
        path = url_path(file_path)
        if path is None:
            shown = self.redact(repr(file_path))
            raise TelegramApiError(
                400, f"getFile returned a file_path this client will not follow: {shown}", "downloadFile"
            )
        url = yarl.URL(f"{self._base}/file/bot{quote(self._token, safe=':')}/{path}", encoded=True)
        return await fetch(
            self._http(), url, timeout_s=max(self._timeout, 120.0), retry=self._retry, max_bytes=max_bytes
        )

    async def set_my_commands(
        self,
        commands: Sequence[BotCommand],
        *,
        scope: JSON | None = None,
        language_code: str | None = None,
        attempts: int | None = None,
    ) -> None:
        params: JSON = {"commands": [c.to_json() for c in commands], "scope": scope, "language_code": language_code}
        await self.call("setMyCommands", params, attempts=attempts)

    async def set_webhook(
        self,
        url: str,
        *,
        secret_token: str | None = None,
        max_connections: int | None = None,
        allowed_updates: Sequence[str] | None = None,
        drop_pending_updates: bool = False,
        certificate: bytes | None = None,
        ip_address: str | None = None,
    ) -> None:
        params: JSON = {
            "url": url,
            "secret_token": secret_token,
            "max_connections": max_connections,
            "allowed_updates": list(allowed_updates) if allowed_updates is not None else None,
            "drop_pending_updates": drop_pending_updates or None,
            "ip_address": ip_address,
        }
        if certificate is None:
            await self.call("setWebhook", params)
            return

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            for key, value in params.items():
                if value is None:
                    continue
                fd.add_field(key, json.dumps(value) if isinstance(value, (list, bool)) else str(value))
            fd.add_field("certificate", certificate, filename="cert.pem", content_type="application/x-pem-file")
            return fd

        await self.call("setWebhook", form=form)

    async def get_webhook_info(self, *, attempts: int | None = None) -> WebhookInfo:
        """
        The current webhook (``url`` empty: none is set).

        Raises:
            TelegramApiError: Telegram refused or could not be reached, or the answer is not a WebhookInfo.
        """
        result = await self.call("getWebhookInfo", attempts=attempts)
        try:
            return WebhookInfo.from_json(result)
        except MalformedUpdateError as exc:
            detail = f"getWebhookInfo returned no WebhookInfo ({exc.detail})"
            raise TelegramApiError(0, detail, "getWebhookInfo") from None

    async def delete_webhook(self, *, drop_pending_updates: bool = False) -> None:
        await self.call("deleteWebhook", {"drop_pending_updates": drop_pending_updates or None})

    async def get_updates(
        self,
        *,
        offset: int | None = None,
        timeout: int = 0,  # noqa: ASYNC109 - the Bot API's long-poll parameter, not a cancel timeout
        allowed_updates: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[Update]:
        """Long-poll for updates (*timeout* seconds, Telegram caps it at 50)."""
        params: JSON = {
            "offset": offset,
            "timeout": timeout,
            "limit": limit,
            "allowed_updates": list(allowed_updates) if allowed_updates is not None else None,
        }
        result = await self.call("getUpdates", params, request_timeout=timeout + self._timeout)
        if not isinstance(result, list):
            raise TelegramApiError(0, "getUpdates returned no list", "getUpdates")
        return [Update.from_json(u) for u in result]


def _text_params(
    chat_id: int,
    text: str,
    parse_mode: str | None,
    reply_markup: InlineKeyboardMarkup | None,
    *,
    disable_preview: bool = True,
    reply_to_message_id: int | None = None,
    disable_notification: bool | None = None,
    message_thread_id: int | None = None,
) -> JSON:
    """The parameters of sendMessage (a None value is left out of the call)."""
    return {
        "chat_id": chat_id,
        "message_thread_id": message_thread_id,
        "text": text,
        "parse_mode": parse_mode,
        "reply_markup": reply_markup.to_json() if reply_markup else None,
        "link_preview_options": {"is_disabled": True} if disable_preview else None,
        "reply_parameters": {"message_id": reply_to_message_id} if reply_to_message_id else None,
        "disable_notification": disable_notification,
    }


def _sent_message_id(raw: bytes) -> JSON | None:
    """``{"message_id": N}`` from a successful send's answer that starts as Telegram writes it; None otherwise."""
    match = _SENT_ID.match(raw)
    return None if match is None else {"message_id": int(match[1])}


def _retry_after(parameters: JSON, header: str | None) -> float:
    """The Bot API's ``parameters.retry_after`` first, else ``Retry-After`` (seconds or an HTTP date), else 1 s."""
    value = parameters.get("retry_after")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    from_header = parse_retry_after(header)
    return 1.0 if from_header is None else from_header
