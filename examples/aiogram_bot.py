"""
An aiogram 3 bot that embeds voicecoder (docs/embedding.md walks through it).

aiogram receives the updates; voicecoder's `TelegramMessenger` sends the replies with their buttons.
Run: BOT_TOKEN=… ALLOWED=42 python examples/aiogram_bot.py
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, Message

from voicecoder import AgentRunner, Audio, ChatId, Transcriber, UserId, decode_callback, open_voicecoder
from voicecoder.adapters import TelegramBotApi, TelegramMessenger


async def run_bot(
    token: str,
    *,
    workspace: Path,
    data_dir: Path,
    allowed: list[int],
    api_base: str = "https://api.telegram.org",
    agent: AgentRunner | None = None,
    transcriber: Transcriber | None = None,
) -> None:
    """Poll Telegram and serve voicecoder until cancelled."""
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_base)))
    bot_api = TelegramBotApi(token, base_url=api_base)
    dp = Dispatcher()
    async with open_voicecoder(
        messenger=TelegramMessenger(bot_api), workspace=workspace, data_dir=data_dir,
        allowed_users=allowed, agent=agent, transcriber=transcriber,
    ) as app:  # fmt: skip

        @dp.message(F.text)
        async def on_text(m: Message) -> None:
            assert m.text is not None and m.from_user is not None
            replied = m.reply_to_message.message_id if m.reply_to_message else None  # may answer a tool question
            await app.text(ChatId(m.chat.id), UserId(m.from_user.id), m.text, user_name=m.from_user.first_name,
                           reply_to=replied)  # fmt: skip

        @dp.message(F.voice)
        async def on_voice(m: Message) -> None:
            assert m.voice is not None and m.from_user is not None
            if not app.is_authorized(UserId(m.from_user.id)):  # never download a stranger's file
                await app.unauthorized(ChatId(m.chat.id), UserId(m.from_user.id))
                return
            data = io.BytesIO()
            await bot.download(m.voice, destination=data)
            audio = Audio(data.getvalue(), m.voice.mime_type or "audio/ogg", declared_duration_s=m.voice.duration)
            replied = m.reply_to_message.message_id if m.reply_to_message else None
            await app.voice(ChatId(m.chat.id), UserId(m.from_user.id), audio, reply_to=replied)

        @dp.callback_query(F.data.regexp(r"^[a-z]:"))
        async def on_button(q: CallbackQuery) -> None:
            assert q.data is not None and q.message is not None
            ack = await app.press(ChatId(q.message.chat.id), UserId(q.from_user.id), q.id, decode_callback(q.data),
                                  answer=False, user_name=q.from_user.first_name)  # fmt: skip
            await q.answer(ack.text, show_alert=ack.alert)  # aiogram answers; voicecoder must not too

        try:
            await dp.start_polling(bot, handle_signals=False)
        finally:
            await bot.session.close()
            await bot_api.close()


if __name__ == "__main__":
    allowed_ids = [int(x) for x in os.environ["ALLOWED"].split(",")]
    asyncio.run(run_bot(os.environ["BOT_TOKEN"], workspace=Path("workspace"), data_dir=Path("data"),
                        allowed=allowed_ids))  # fmt: skip
