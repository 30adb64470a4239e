"""
The sandbox's web chat: a phone-like page that plays the Telegram user against the local fake Bot API.

`create_sandbox_web_app` serves ``GET /`` (the page, from the ``web_chat_static`` package data) and a small
JSON API the page calls. Every action goes to the fake Bot API's *user side* in-process, so the bot
receives exactly the updates Telegram would send (through its real webhook):

* ``POST api/send`` ``{"text": …, "reply_to": <message id>?}`` — a typed message or ``/command``, optionally a
  reply (replying to a tool question denies it with the text as the reason);
* ``POST api/voice`` — a recording (multipart part ``voice`` with optional ``duration`` and ``kind`` fields,
  or the raw body with ``?duration=&kind=&name=``; a ``reply_to`` field or query makes it a reply) in OGG, WebM,
  MP3, M4A or WAV, sniffed from its bytes;
  microphone recordings (``kind=voice``) and OGG files become voice notes, other files audio messages;
* ``POST api/press`` ``{"message_id": …, "data": …}`` — a tap on an inline button;
* ``GET api/conversation?since=V&wait=S`` — the chat as it is now (long-poll: answers once something
  happened after version *V*, or after *S* seconds), bot messages with their current (edited) text
  rendered from Telegram's entities into the Telegram HTML subset, inline keyboards, documents as
  download links, and the bot's callback answers;
* ``GET api/files/{file_id}`` — a document the bot sent, or a voice note the user recorded;
* ``GET healthz``.

URLs in the page are relative, so the app also works mounted under a prefix (open it with the trailing
slash, e.g. ``/chat/``).

The page drives a coding agent, so other web sites must not: requests must name a loopback host (no DNS
rebinding), and every POST must carry the ``X-Voicecoder-Sandbox`` header (a cross-site form or simple
request cannot, and the CORS preflight it would need is never granted) and, if it has an ``Origin``, come
from this very origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import importlib.resources
import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import anyio.to_thread
import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from voicecoder.simulators.bot_api import BotMessage, FakeBotApi, FakeUser
from voicecoder.simulators.entities_html import LINK_SCHEMES, render_entities
from voicecoder.simulators.web_chat_recording import (
    MAX_VOICE_BYTES,
    read_recording,
    recording_duration,
    sniff_audio,
)

__all__ = [
    "CSRF_HEADER",
    "LOOPBACK_HOSTS",
    "MAX_VOICE_BYTES",
    "conversation_json",
    "create_sandbox_web_app",
    "recording_duration",
    "render_entities",
    "sniff_audio",
]

log = logging.getLogger(__name__)

"""Uploads above this are refused (413); Telegram itself lets bots download up to 20 MB."""
MAX_TEXT_CHARS = 4096
MAX_WAIT_S = 30.0
TYPING_S = 5.0
"""sendChatAction shows "typing…" for at most 5 s, or until the bot's next message."""
_STATIC = "web_chat_static"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}
_UNSAFE_FILENAME_RE = re.compile(r"[^A-Za-z0-9._ -]+")
CSRF_HEADER = "X-Voicecoder-Sandbox"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


@attrs.frozen
class _Sandbox:
    """What the handlers need: the fake Bot API and who "you" are in it."""

    bot_api: FakeBotApi
    user: FakeUser
    chat_id: int
    closing: asyncio.Event
    allowed_hosts: frozenset[str]


SANDBOX = web.AppKey("sandbox", _Sandbox)


def create_sandbox_web_app(
    bot_api: FakeBotApi,
    *,
    user_id: int,
    chat_id: int,
    user_name: str = "You",
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
) -> web.Application:
    """
    The web chat for the private chat *chat_id*, where *user_id* (shown to the bot as *user_name*) talks.

    Serve it with an `aiohttp.web.AppRunner` on 127.0.0.1, or mount it with ``add_subapp``. Requests whose
    ``Host`` (without the port) is not in *allowed_hosts* are refused with 403.
    """
    user = FakeUser(id=user_id, first_name=user_name, username=None, language_code="en")
    bot_api.add_chat(user)  # the sandbox user has opened the chat, so the bot may write first
    app = web.Application(middlewares=[_same_origin_only])
    app[SANDBOX] = _Sandbox(
        bot_api=bot_api,
        user=user,
        chat_id=chat_id,
        closing=asyncio.Event(),
        allowed_hosts=frozenset(h.lower() for h in allowed_hosts),
    )
    app.router.add_get("/", _index)
    app.router.add_get("/static/{name}", _asset)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/conversation", _conversation)
    app.router.add_post("/api/send", _send)
    app.router.add_post("/api/voice", _voice)
    app.router.add_post("/api/press", _press)
    app.router.add_get("/api/files/{file_id}", _file)
    app.on_response_prepare.append(_security_headers)
    app.on_shutdown.append(_release_waiters)
    return app


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


@web.middleware
async def _same_origin_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = request.app[SANDBOX]
    host = request.headers.get("Host", "")
    if _hostname(host) not in sandbox.allowed_hosts:
        log.warning("sandbox: refused a request for host %r", host[:100])
        return _error(403, "this sandbox only answers on its loopback address")
    if request.method not in {"GET", "HEAD", "OPTIONS"}:
        origin = request.headers.get("Origin")
        if request.headers.get(CSRF_HEADER) != "1" or (
            origin is not None and origin.lower() not in {f"http://{host.lower()}", f"https://{host.lower()}"}
        ):
            log.warning("sandbox: refused a cross-site %s %s", request.method, request.path)
            return _error(403, f"requests must come from the sandbox page (missing {CSRF_HEADER} or foreign Origin)")
    return await handler(request)


# --- pages -----------------------------------------------------------------------------------------


def _static_text(name: str) -> str:
    return importlib.resources.files(__package__ or "voicecoder.simulators").joinpath(_STATIC, name).read_text("utf-8")


async def _index(_request: web.Request) -> web.Response:
    return web.Response(
        text=_static_text("index.html"), content_type="text/html", headers={"Cache-Control": "no-cache"}
    )


async def _asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound
    return web.Response(text=_static_text(name), content_type=content_type, headers={"Cache-Control": "no-cache"})


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


async def _release_waiters(app: web.Application) -> None:
    app[SANDBOX].closing.set()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "expected a JSON object"}', content_type="application/json")
    return body


# --- the user's actions ----------------------------------------------------------------------------


async def _send(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = await _json_object(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return _error(400, "text is required")
    if len(text) > MAX_TEXT_CHARS:
        return _error(400, f"a message has at most {MAX_TEXT_CHARS} characters")
    reply_to = body.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, int) or isinstance(reply_to, bool)):
        return _error(400, "reply_to is the id (a number) of the message replied to")
    try:
        update = await sandbox.bot_api.send_text(text, user=sandbox.user, reply_to=reply_to)
    except LookupError as exc:
        return _error(404, str(exc))
    return web.json_response({"update_id": update["update_id"], "message_id": update["message"]["message_id"]})


async def _press(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = await _json_object(request)
    message_id, data = body.get("message_id"), body.get("data")
    if not isinstance(message_id, int) or isinstance(message_id, bool) or not isinstance(data, str):
        return _error(400, "message_id (a number) and data (a string) are required")
    try:
        update = await sandbox.bot_api.press(message_id, data, user=sandbox.user)
    except LookupError as exc:
        return _error(404, str(exc))
    return web.json_response({"update_id": update["update_id"]})


async def _voice(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    recording = await read_recording(request)
    if not recording.data:
        return _error(400, "the recording is empty")
    sniffed = sniff_audio(recording.data)
    if sniffed is None:
        return _error(415, "not an audio file: send OGG/Opus, WebM, MP3, M4A or WAV")
    mime, extension = sniffed
    log.info("sandbox: the user sent a %s recording of %d bytes", mime, len(recording.data))
    duration = recording.duration
    if duration is None:
        # Like a Telegram client, measure the file itself; never make a length up.
        measured = await anyio.to_thread.run_sync(recording_duration, recording.data)
        duration = max(1, round(measured)) if measured is not None else None
    if recording.recorded or mime == "audio/ogg":
        # A voice note, as a Telegram client sends it (Telegram's own clients record OGG/Opus).
        try:
            update = await sandbox.bot_api.send_voice(
                recording.data,
                duration=duration or 0,
                mime_type=mime,
                user=sandbox.user,
                reply_to=recording.reply_to,
            )
        except LookupError as exc:
            return _error(404, str(exc))
    else:
        stem = (recording.file_name or "recording").rsplit(".", 1)[0]
        file_name = f"{_UNSAFE_FILENAME_RE.sub('_', stem)[:60] or 'recording'}.{extension}"
        update = await sandbox.bot_api.send_audio_file(
            recording.data,
            file_name=file_name,
            mime_type=mime,
            user=sandbox.user,
            as_document=False,
            duration=duration,
        )
    kind = "voice" if "voice" in update["message"] else "audio"
    return web.json_response({"update_id": update["update_id"], "kind": kind, "mime_type": mime})


# --- what the chat looks like ----------------------------------------------------------------------


async def _file(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    file_id = request.match_info["file_id"]
    if file_id not in _chat_file_ids(_chat_messages(sandbox.bot_api, sandbox.chat_id)):
        raise web.HTTPNotFound
    stored = sandbox.bot_api.files[file_id]
    mime = stored.mime_type or "application/octet-stream"
    if mime.startswith("audio/"):
        return web.Response(body=stored.data, content_type=mime.split(";")[0])
    name = _UNSAFE_FILENAME_RE.sub("_", stored.file_name or "file") or "file"
    return web.Response(
        body=stored.data,
        content_type="application/octet-stream",  # never let a bot-chosen type render on this origin
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _chat_messages(bot_api: FakeBotApi, chat_id: int) -> list[BotMessage]:
    found = [m for (chat, _), m in bot_api.messages.items() if chat == chat_id]
    return sorted(found, key=lambda m: m.message_id)


def _chat_file_ids(messages: Iterable[BotMessage]) -> set[str]:
    ids: set[str] = set()
    for m in messages:
        if m.document is not None:
            ids.add(m.document.file_id)
        raw = m.raw or {}
        for key in ("voice", "audio", "document"):
            obj = raw.get(key)
            if isinstance(obj, Mapping) and isinstance(obj.get("file_id"), str):
                ids.add(obj["file_id"])
    return ids


async def _conversation(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    try:
        since = int(request.query.get("since", "-1"))
        wait = min(MAX_WAIT_S, max(0.0, float(request.query.get("wait", "0"))))
    except ValueError:
        return _error(400, "since and wait are numbers")
    if wait > 0 and since >= 0 and _version(sandbox) == since:  # a newer "since" means the server restarted
        waiter = asyncio.ensure_future(
            sandbox.bot_api.wait_transcript(since=since, chat_id=sandbox.chat_id, within=wait)
        )
        closing = asyncio.ensure_future(sandbox.closing.wait())
        try:
            await asyncio.wait({waiter, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, closing):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return web.json_response(
        conversation_json(sandbox.bot_api, chat_id=sandbox.chat_id), headers={"Cache-Control": "no-store"}
    )


def _version(sandbox: _Sandbox) -> int:
    entries = sandbox.bot_api.transcript(chat_id=sandbox.chat_id)
    return int(entries[-1]["seq"]) if entries else 0


def conversation_json(bot_api: FakeBotApi, *, chat_id: int) -> dict[str, Any]:
    """The chat *chat_id* as the page shows it (see the module docstring)."""
    entries = bot_api.transcript(chat_id=chat_id)
    version = int(entries[-1]["seq"]) if entries else 0
    sandbox_messages = _chat_messages(bot_api, chat_id)
    answers = [
        {"seq": e["seq"], "text": e.get("text") or "", "show_alert": bool(e.get("show_alert"))}
        for e in entries
        if e.get("kind") == "callback_answer"
    ][-5:]
    last_bot = next(
        (e for e in reversed(entries) if e.get("side") == "bot" and e.get("kind") != "callback_answer"), None
    )
    typing = (
        last_bot is not None
        and last_bot.get("kind") == "chat_action"
        and time.time() - float(last_bot["at"]) < TYPING_S
    )
    return {
        "version": version,
        "typing": typing,
        "messages": [_message_json(m) for m in sandbox_messages],
        "answers": answers,
    }


def _message_json(m: BotMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": str(m.message_id),
        "id": m.message_id,
        "from": "bot" if m.from_bot else "me",
        "date": m.date,
        "edited": m.edit_date is not None,
        "rev": m.edits,
        "html": "",
        "buttons": [],
        "document": None,
        "voice": None,
    }
    if m.from_bot:
        if m.text is not None:
            out["html"] = render_entities(m.text, m.entities)
        if m.document is not None:
            out["document"] = {
                "name": m.document.file_name or "file",
                "size": m.document.size,
                "url": f"api/files/{m.document.file_id}",
            }
            if m.caption:
                out["html"] = render_entities(m.caption, m.caption_entities)
        out["buttons"] = _keyboard(m.reply_markup)
        return out
    raw = m.raw or {}
    text = raw.get("text") or raw.get("caption")
    if isinstance(text, str):
        out["html"] = html.escape(text, quote=False)
    replied = raw.get("reply_to_message")
    if isinstance(replied, Mapping) and isinstance(replied.get("message_id"), int):
        quoted = replied.get("text") or replied.get("caption") or ""
        out["reply_to"] = {"id": replied["message_id"], "text": str(quoted)[:120]}
    for key in ("voice", "audio"):
        obj = raw.get(key)
        if isinstance(obj, Mapping):
            out["voice"] = {"duration": obj.get("duration"), "url": f"api/files/{obj.get('file_id')}"}
    return out


def _keyboard(markup: Mapping[str, Any] | None) -> list[list[dict[str, str]]]:
    rows = (markup or {}).get("inline_keyboard") or []
    keyboard: list[list[dict[str, str]]] = []
    for row in rows:
        buttons: list[dict[str, str]] = []
        for b in row:
            button = {"text": str(b.get("text", ""))}
            if "callback_data" in b:
                button["callback_data"] = str(b["callback_data"])
            elif isinstance(b.get("url"), str) and b["url"].startswith(LINK_SCHEMES):
                button["url"] = b["url"]
            buttons.append(button)
        keyboard.append(buttons)
    return keyboard
