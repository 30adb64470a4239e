"""Telethon (MTProto) adapters: your own ``TelegramClient`` as voicecoder's chat. Needs the ``telethon`` extra."""

from __future__ import annotations

from voicecoder.adapters.telethon.handler import TelethonUpdateHandler
from voicecoder.adapters.telethon.messenger import TelethonMessenger
from voicecoder.adapters.telethon.updates import TelethonUpdates

__all__ = ["TelethonMessenger", "TelethonUpdateHandler", "TelethonUpdates"]
