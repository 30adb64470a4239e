"""
A Telethon bot that embeds voicecoder (docs/embedding.md walks through it).

voicecoder registers its handlers on *your* client: text and commands, voice notes, its own buttons. Your other
handlers keep working. Run: API_ID=… API_HASH=… BOT_TOKEN=… ALLOWED=42 python examples/telethon_bot.py
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from telethon import TelegramClient

from voicecoder import AgentRunner, Transcriber, open_voicecoder
from voicecoder.adapters import TelethonMessenger, TelethonUpdates


async def run_bot(
    client: TelegramClient,
    *,
    workspace: Path,
    data_dir: Path,
    allowed: list[int],
    agent: AgentRunner | None = None,
    transcriber: Transcriber | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve voicecoder on a connected bot *client* until *stop* is set (or the client disconnects)."""
    async with open_voicecoder(
        messenger=TelethonMessenger(client),
        workspace=workspace,
        data_dir=data_dir,
        allowed_users=allowed,
        agent=agent,
        transcriber=transcriber,
    ) as app:
        updates = TelethonUpdates(app, client)
        updates.register()
        try:
            if stop is None:
                await client.run_until_disconnected()
            else:
                await stop.wait()
        finally:
            updates.unregister()


async def main() -> None:
    client = TelegramClient("voicecoder-bot", int(os.environ["API_ID"]), os.environ["API_HASH"])
    await client.start(bot_token=os.environ["BOT_TOKEN"])
    allowed = [int(x) for x in os.environ["ALLOWED"].split(",")]
    await run_bot(client, workspace=Path("workspace"), data_dir=Path("data"), allowed=allowed)


if __name__ == "__main__":
    asyncio.run(main())
