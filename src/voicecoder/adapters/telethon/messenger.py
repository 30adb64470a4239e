"""
`TelethonMessenger`: the `Messenger` port over a Telethon `TelegramClient` logged in as a bot (MTProto).

It renders replies exactly as `TelegramMessenger` does (the same Telegram HTML, split at 4096 characters, long
diffs as a ``.diff`` document) and sends them with Telethon's own API: ``send_message``/``send_file`` with
``parse_mode="html"`` and inline ``Button``s, ``edit_message``, ``SetTypingRequest``, ``SetBotCallbackAnswerRequest``.
Telethon is asyncio-only, so this adapter is too.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from telethon import Button, errors
from telethon.tl import functions, types

from voicecoder.adapters.telegram.api import InlineKeyboardMarkup
from voicecoder.adapters.telegram.messenger import CAPTION_LIMIT, TEXT_LIMIT, esc, html_to_text, render, split_html
from voicecoder.domain.errors import DeliveryError
from voicecoder.domain.model import ChatId
from voicecoder.domain.replies import MessageRef, Reply

__all__ = ["TelethonMessenger"]

logger = logging.getLogger(__name__)


def _buttons(keyboard: InlineKeyboardMarkup | None) -> list[list[Any]] | None:
    if keyboard is None:
        return None
    return [[Button.inline(b.text, (b.callback_data or "").encode()) for b in row] for row in keyboard.inline_keyboard]


def _failed(action: str, exc: BaseException) -> DeliveryError:
    if isinstance(exc, errors.FloodWaitError):
        return DeliveryError(f"Telegram asks to wait {exc.seconds} s before the next {action}.")
    return DeliveryError(f"Telegram refused the {action}: {type(exc).__name__}")


class TelethonMessenger:
    """
    The `Messenger` port on your own ``telethon.TelegramClient`` (a bot account, connected and logged in).

    Replies with buttons: `ChangeSummary`, `DiffView` of a pending change, and `Working` while it runs; the final
    `Working` edit (``finished=True``) carries no buttons, and an edit without buttons removes the keyboard.
    """

    def __init__(self, client: Any, *, text_limit: int = TEXT_LIMIT) -> None:
        self._client = client
        self._limit = text_limit

    async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
        """
        Send *reply*: one or more messages, or a document; returns the last message (it has the buttons).

        Raises:
            DeliveryError: Telegram refused the message or could not be reached.
        """
        rendered = render(reply)
        buttons = _buttons(rendered.keyboard)
        try:
            if rendered.document is not None:
                name, data = rendered.document
                caption = rendered.html
                if len(html_to_text(caption)) > CAPTION_LIMIT:
                    caption = esc(html_to_text(caption)[: CAPTION_LIMIT - 1] + "…")
                upload = io.BytesIO(data)
                upload.name = name
                msg = await self._client.send_file(
                    chat.value, upload, caption=caption, parse_mode="html", buttons=buttons, force_document=True
                )
                return MessageRef(chat, int(msg.id))
            parts = split_html(rendered.html, self._limit) or ["…"]
            for part in parts[:-1]:
                await self._client.send_message(chat.value, part, parse_mode="html", link_preview=False)
            msg = await self._client.send_message(
                chat.value, parts[-1], parse_mode="html", link_preview=False, buttons=buttons
            )
        except (errors.RPCError, ConnectionError, ValueError) as exc:
            raise _failed("message", exc) from exc
        return MessageRef(chat, int(msg.id))

    async def edit(self, ref: MessageRef, reply: Reply, /) -> None:
        """
        Replace message *ref* with *reply* (its first part if it no longer fits); "not modified" is success.

        Raises:
            DeliveryError: The edit failed.
        """
        rendered = render(reply)
        parts = split_html(rendered.html, self._limit) or ["…"]
        try:
            await self._client.edit_message(
                ref.chat_id.value,
                ref.message_id,
                parts[0],
                parse_mode="html",
                link_preview=False,
                buttons=_buttons(rendered.keyboard),
            )
        except errors.MessageNotModifiedError:
            return
        except (errors.RPCError, ConnectionError, ValueError) as exc:
            raise _failed("edit", exc) from exc

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        """
        Acknowledge a button press; a query that is too old or already answered is logged, not raised.

        Raises:
            DeliveryError: The acknowledgement failed for another reason.
        """
        request = functions.messages.SetBotCallbackAnswerRequest(
            query_id=int(callback_id), cache_time=0, alert=alert or None, message=text[:200] if text else None
        )
        try:
            await self._client(request)
        except errors.QueryIdInvalidError:
            logger.info("callback query %s answered too late or twice", callback_id)
        except (errors.RPCError, ConnectionError) as exc:
            raise _failed("callback answer", exc) from exc

    async def typing(self, chat: ChatId, /) -> None:
        """Show 'typing…'; failures are logged and ignored (it is cosmetic)."""
        try:
            peer = await self._client.get_input_entity(chat.value)
            await self._client(functions.messages.SetTypingRequest(peer, types.SendMessageTypingAction()))
        except (errors.RPCError, ConnectionError, ValueError) as exc:
            logger.info("typing indicator failed: %s", type(exc).__name__)
