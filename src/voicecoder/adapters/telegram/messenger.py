"""
`TelegramMessenger`: the `Messenger` port over the Bot API, rendering each domain reply as Telegram HTML.

Rules kept here:

* every dynamic string is HTML-escaped (also inside ``<pre>``);
* text is split at 4096 visible characters *after* rendering, preferring line breaks, never inside a tag
  or an entity; formatting open at a split (e.g. a ``<pre>`` block) is closed and reopened;
* if Telegram cannot parse the entities anyway, the text is sent again as plain text;
* buttons carry ``callback_data`` from the public codec `voicecoder.domain.callbacks` (at most 64 bytes);
* `send` returns the last part (where the buttons are), so later edits apply to it;
* diffs longer than about 3500 characters go out as a ``.diff`` document.
"""

from __future__ import annotations

import logging

from voicecoder.adapters.telegram.api import (
    InlineKeyboardMarkup,
    TelegramApiError,
    TelegramBotApi,
)
from voicecoder.adapters.telegram.fragments import MAX_LISTED_FILES
from voicecoder.adapters.telegram.html_text import (
    TEXT_LIMIT,
    _short,
    esc,
    html_to_text,
    markdownish,
    split_html,
    split_plain,
)
from voicecoder.adapters.telegram.rendering import (
    BUTTON_LABELS,
    CAPTION_LIMIT,
    DIFF_INLINE_LIMIT,
    QUESTION_INVITATION,
    UNAUTHORIZED_TEXT,
    Rendered,
    callback_data,
    parse_callback_data,
    render,
)
from voicecoder.domain.callbacks import MAX_CALLBACK_BYTES
from voicecoder.domain.errors import DeliveryError
from voicecoder.domain.model import ChatId
from voicecoder.domain.replies import MessageRef, Reply

__all__ = [
    "BUTTON_LABELS",
    "CAPTION_LIMIT",
    "DIFF_INLINE_LIMIT",
    "MAX_CALLBACK_BYTES",
    "MAX_LISTED_FILES",
    "QUESTION_INVITATION",
    "TEXT_LIMIT",
    "UNAUTHORIZED_TEXT",
    "Rendered",
    "TelegramMessenger",
    "callback_data",
    "esc",
    "html_to_text",
    "markdownish",
    "parse_callback_data",
    "render",
    "split_html",
    "split_plain",
]

logger = logging.getLogger(__name__)


# --- the adapter ---------------------------------------------------------------------------------


class TelegramMessenger:
    """The `Messenger` port on the Bot API."""

    def __init__(self, client: TelegramBotApi, *, text_limit: int = TEXT_LIMIT) -> None:
        self._client = client
        self._limit = text_limit

    async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
        """
        Send *reply*: one or more messages, or a document; returns the last message (it has the buttons).

        Raises:
            DeliveryError: Telegram refused the message or could not be reached after retries.
        """
        rendered = render(reply)
        if rendered.document is not None:
            name, data = rendered.document
            caption = rendered.html
            if len(html_to_text(caption)) > CAPTION_LIMIT:
                caption = esc(_short(html_to_text(caption), CAPTION_LIMIT))
            msg = await self._client.send_document(
                chat.value, data, name, caption=caption, reply_markup=rendered.keyboard, message_thread_id=chat.thread
            )
            return MessageRef(chat, msg.message_id)
        parts = split_html(rendered.html, self._limit) or ["…"]
        for part in parts[:-1]:
            await self._send_part(chat, part, None)
        last = await self._send_part(chat, parts[-1], rendered.keyboard)
        return MessageRef(chat, last)

    async def _send_part(self, chat: ChatId, part: str, keyboard: InlineKeyboardMarkup | None) -> int:
        """Send one part as HTML (plain text if Telegram cannot parse it); the id of the last message sent."""
        try:
            return await self._client.send_message_id(
                chat.value, part, reply_markup=keyboard, message_thread_id=chat.thread
            )
        except TelegramApiError as exc:
            smaller = split_html(part, self._limit // 2) if "message is too long" in exc.description else []
            if len(smaller) > 1:
                # Telegram counted longer than we did (limits are adaptive): halve the part and go on.
                logger.warning("telegram found a part too long; sending it in %d smaller parts", len(smaller))
                for piece in smaller[:-1]:
                    await self._send_part(chat, piece, None)
                return await self._send_part(chat, smaller[-1], keyboard)
            if not exc.is_parse_error:
                raise
            logger.warning("telegram could not parse our HTML (%s); sending plain text", exc.description)
        pieces = split_plain(html_to_text(part), self._limit) or ["…"]
        for piece in pieces[:-1]:
            await self._client.send_message_id(chat.value, piece, parse_mode=None, message_thread_id=chat.thread)
        return await self._client.send_message_id(
            chat.value, pieces[-1], parse_mode=None, reply_markup=keyboard, message_thread_id=chat.thread
        )

    async def edit(self, ref: MessageRef, reply: Reply, /) -> None:
        """
        Replace message *ref* with *reply* (only the first part if it no longer fits one message).

        Raises:
            DeliveryError: The edit failed after retries ("not modified" is success).
        """
        rendered = render(reply)
        if rendered.document is not None:
            # A document's file and caption stay as sent; what changes after a decision is its buttons.
            await self._client.edit_message_reply_markup(ref.chat_id.value, ref.message_id, rendered.keyboard)
            return
        parts = split_html(rendered.html, self._limit) or ["…"]
        if len(parts) > 1:
            logger.info("edit of message %s truncated to its first part", ref.message_id)
        try:
            await self._client.edit_message_text(
                ref.chat_id.value, ref.message_id, parts[0], reply_markup=rendered.keyboard
            )
        except TelegramApiError as exc:
            if not exc.is_parse_error:
                raise
            logger.warning("telegram could not parse our HTML (%s); editing as plain text", exc.description)
            plain = split_plain(html_to_text(parts[0]), self._limit) or ["…"]
            await self._client.edit_message_text(
                ref.chat_id.value, ref.message_id, plain[0], parse_mode=None, reply_markup=rendered.keyboard
            )

    async def answer_callback(self, callback_id: str, /, text: str | None = None, *, alert: bool = False) -> None:
        """
        Acknowledge a button press; a query that is already too old is logged, not raised.

        Raises:
            DeliveryError: The acknowledgement failed for another reason.
        """
        try:
            await self._client.answer_callback_query(callback_id, _short(text, 200) if text else None, show_alert=alert)
        except TelegramApiError as exc:
            if exc.is_query_too_old:
                logger.info("callback query answered too late: %s", exc.description)
                return
            raise

    async def typing(self, chat: ChatId, /) -> None:
        """Show 'typing…'; failures are logged and ignored (it is cosmetic)."""
        try:
            await self._client.send_chat_action(chat.value, "typing", message_thread_id=chat.thread)
        except DeliveryError as exc:
            logger.info("typing indicator failed: %s", exc)
