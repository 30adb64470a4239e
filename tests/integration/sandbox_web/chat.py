"""
What the sandbox web chat tests share: the page served for real on 127.0.0.1 against a real FakeBotApi, and a
"bot" made of plain Bot API calls over HTTP (getUpdates, sendMessage, editMessageText, sendDocument,
answerCallbackQuery) that plays the other side.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import aiohttp

from voicecoder.simulators.bot_api import FakeBotApi

# The EBML header Chromium's MediaRecorder writes: DocType "webm" (what tells WebM from other Matroska).
WEBM_HEADER = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm"
USER_ID = 424242
VOICE = Path(__file__).resolve().parents[2] / "fixtures" / "voice" / "01_create_file.ogg"


class Bot:
    """The bot side: real Bot API calls to the fake over HTTP, as the webhook server's client would make."""

    def __init__(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        self.api = api
        self.http = http
        self.offset = 0

    async def call(self, method: str, **params: Any) -> Any:
        url = f"{self.api.base_url}/bot{self.api.token}/{method}"
        async with self.http.post(url, json=params) as resp:
            body = await resp.json()
        assert body["ok"], body
        return body["result"]

    async def updates(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.call("getUpdates", offset=self.offset, timeout=0)
        if found:
            self.offset = found[-1]["update_id"] + 1
        return found

    async def say(self, text: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sendMessage", chat_id=USER_ID, text=text, parse_mode="HTML", **params)
        return result


async def conversation(http: aiohttp.ClientSession, base: str, **query: Any) -> dict[str, Any]:
    async with http.get(base + "api/conversation", params={k: str(v) for k, v in query.items()}) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def post_json(http: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


def wav_bytes(seconds: float = 0.5) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x01" * int(16000 * seconds))
    return buf.getvalue()
