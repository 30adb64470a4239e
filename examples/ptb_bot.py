"""
A python-telegram-bot (v21+) bot that embeds voicecoder (docs/embedding.md walks through it).

PTB receives the updates, voicecoder's `TelegramMessenger` sends the replies; the handlers don't block, so a ⏹ Cancel
press or a tool answer is read while a turn runs. Run: BOT_TOKEN=… ALLOWED=42 python examples/ptb_bot.py
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

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
    bot_api = TelegramBotApi(token, base_url=api_base)
    ptb = Application.builder().token(token).base_url(f"{api_base}/bot").base_file_url(f"{api_base}/file/bot")
    async with open_voicecoder(
        messenger=TelegramMessenger(bot_api), workspace=workspace, data_dir=data_dir,
        allowed_users=allowed, agent=agent, transcriber=transcriber,
    ) as app, ptb.build() as bot:  # fmt: skip

        async def on_text(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
            m, user = update.effective_message, update.effective_user
            assert m is not None and m.text is not None and user is not None
            replied = m.reply_to_message.message_id if m.reply_to_message else None  # may answer a tool question
            await app.text(ChatId(m.chat_id), UserId(user.id), m.text, user_name=user.first_name, reply_to=replied)

        async def on_voice(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
            m, user = update.effective_message, update.effective_user
            assert m is not None and m.voice is not None and user is not None
            if not app.is_authorized(UserId(user.id)):  # never download a stranger's file
                await app.unauthorized(ChatId(m.chat_id), UserId(user.id))
                return
            data = await (await m.voice.get_file()).download_as_bytearray()
            seconds = m.voice.to_dict().get("duration")  # the wire's int: PTB 22.2+ deprecates the int attribute
            audio = Audio(bytes(data), m.voice.mime_type or "audio/ogg", declared_duration_s=seconds)
            replied = m.reply_to_message.message_id if m.reply_to_message else None
            await app.voice(ChatId(m.chat_id), UserId(user.id), audio, reply_to=replied, user_name=user.first_name)

        async def on_button(update: Update, _: ContextTypes.DEFAULT_TYPE) -> None:
            q = update.callback_query
            assert q is not None and q.data is not None and q.message is not None
            ack = await app.press(ChatId(q.message.chat.id), UserId(q.from_user.id), q.id, decode_callback(q.data),
                                  answer=False, user_name=q.from_user.first_name)  # fmt: skip
            await q.answer(ack.text, show_alert=ack.alert)  # PTB answers; voicecoder must not too

        bot.add_handlers([MessageHandler(filters.TEXT, on_text, block=False),
                          MessageHandler(filters.VOICE, on_voice, block=False),
                          CallbackQueryHandler(on_button, pattern=r"^[a-z]:", block=False)])  # fmt: skip
        assert bot.updater is not None
        await bot.start()
        await bot.updater.start_polling()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            await bot.updater.stop()
            await bot.stop()
            await bot_api.close()


if __name__ == "__main__":
    asyncio.run(run_bot(os.environ["BOT_TOKEN"], workspace=Path("workspace"), data_dir=Path("data"),
                        allowed=[int(x) for x in os.environ["ALLOWED"].split(",")]))  # fmt: skip
