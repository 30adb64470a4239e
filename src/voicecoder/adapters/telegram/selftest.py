"""
``voicecoder selftest``: the operator's test of the deployed bot, printed as figures against targets.

Run it on the server, with the service's configuration, while the bot runs (`voicecoder-admin selftest`, or
`docker compose exec voicecoder voicecoder selftest`). In webhook mode it reaches the bot the way Telegram does:

1. Telegram: the Bot API round trip (getMe).
2. Registration: the webhook Telegram holds against PUBLIC_URL + WEBHOOK_PATH (the `webhook info` verdict).
3. Public endpoint: PUBLIC_URL + WEBHOOK_PATH through DNS, TLS and the proxy; without the secret it must answer
   401, with it an update of a type the bot ignores must be acknowledged (200, nothing stored).
4. Button: a 📊 Git Status press by the first allowed user, posted as Telegram posts it, timed until the bot has
   handled it (answered the press and replied); target 2 s. The reply appears in that chat.
5. Voice: a 30 s voice note uploaded to that chat with sendVoice (so Telegram holds the file and the bot fetches
   it with getFile like any voice note), then posted as that user's message captioned ``/selftest``: the bot
   transcribes it and answers with what it heard, without starting the agent; target 10 s.

Steps 4 and 5 are timed from the POST until the bot's inbox (read, never written) marks the update done, and the
bot's own share (stored → done) is shown next to it. In polling mode nothing can be posted to the bot; the
output says how to do steps 4 and 5 by hand (a voice note captioned /selftest is answered with its timing).
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import attrs

from voicecoder.adapters.sqlite.inbox_reader import read_item_timing
from voicecoder.adapters.telegram.api import RetryPolicy, TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram.messenger import callback_data
from voicecoder.adapters.telegram.webhook import SECRET_HEADER
from voicecoder.adapters.telegram.webhook_health import describe_webhook, expectation, telegram_failure
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError
from voicecoder.domain.inbox import ItemState
from voicecoder.domain.replies import Action, Button

VOICE_NOTE = "assets/selftest-30s.ogg"
VOICE_SECONDS = 30
VOICE_TARGET_S = 10.0
BUTTON_TARGET_S = 2.0
_SYNTHETIC_BASE = 1 << 62  # far above Telegram's update ids, so a selftest update never shadows a real one


@attrs.frozen
class Step:
    name: str
    ok: bool
    figure: str
    detail: str = ""

    def line(self) -> str:
        mark = "✅" if self.ok else "❌"
        return f"{mark} {self.name:<20} {self.figure}" + (f"\n    {self.detail}" if self.detail else "")


def _voice_note() -> bytes:
    return importlib.resources.files("voicecoder.adapters.telegram").joinpath(VOICE_NOTE).read_bytes()


def _update_id() -> int:
    return _SYNTHETIC_BASE + secrets.randbelow(1 << 31)


@attrs.define
class SelfTest:
    """The steps, sharing one Bot API client, one HTTP session and what earlier steps learned."""

    config: Config
    api: TelegramBotApi
    http: aiohttp.ClientSession
    chat: int
    endpoint: str | None
    announce_id: int = 0
    steps: list[Step] = attrs.field(factory=list)

    async def telegram(self) -> bool:
        started = time.perf_counter()
        try:
            me = await self.api.get_me()
        except TelegramApiError as exc:
            self.steps.append(Step("Telegram", ok=False, figure="unreachable", detail=telegram_failure(exc)))
            return False
        elapsed = (time.perf_counter() - started) * 1000
        self.steps.append(Step("Telegram", ok=True, figure=f"getMe {elapsed:.0f} ms (@{me.username or me.first_name})"))
        return True

    async def registration(self) -> None:
        config = self.config
        expected = await expectation(
            transport=config.transport, url=config.webhook_url, fixed_ip=config.webhook_ip_address
        )
        try:
            info = await self.api.get_webhook_info()
        except TelegramApiError as exc:
            self.steps.append(Step("Registration", ok=False, figure="unknown", detail=telegram_failure(exc)))
            return
        verdict = describe_webhook(info, expected=expected)
        figure = f"{info.pending_update_count} pending at Telegram"
        detail = "; ".join(verdict.problems) + (" (details: `voicecoder webhook info`)" if verdict.problems else "")
        self.steps.append(Step("Registration", ok=verdict.healthy, figure=figure, detail=detail))

    def _hook_url(self) -> str | None:
        path = self.config.webhook_path
        base = self.endpoint or self.config.public_url
        return base.rstrip("/") + path if base and path else None

    async def _post(self, url: str, update: dict[str, Any], *, secret: bool = True) -> tuple[int, float]:
        headers = {"Content-Type": "application/json"}
        if secret and self.config.webhook_secret:
            headers[SECRET_HEADER] = self.config.webhook_secret
        started = time.perf_counter()
        async with self.http.post(url, data=json.dumps(update), headers=headers, allow_redirects=False) as response:
            await response.read()
            return response.status, (time.perf_counter() - started) * 1000

    async def endpoint_check(self) -> str | None:
        """The webhook URL when the bot acknowledged a post to it with the secret; None otherwise."""
        url = self._hook_url()
        if url is None:
            self.steps.append(
                Step("Public endpoint", ok=False, figure="no URL", detail="set PUBLIC_URL (or pass --endpoint)")
            )
            return None
        ignored = {"update_id": _update_id(), "poll": {"id": "voicecoder-selftest", "question": "selftest"}}
        try:
            without, _ = await self._post(url, ignored, secret=False)
            status, elapsed = await self._post(url, ignored)
        except (aiohttp.ClientError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: check DNS, the certificate, the proxy and that the bot runs"
            self.steps.append(Step("Public endpoint", ok=False, figure="unreachable", detail=detail))
            return None
        if status != 200:
            ok, detail = (
                False,
                f"with the secret it answered {status}: WEBHOOK_PATH or WEBHOOK_SECRET differ from the bot's",
            )
        elif without == 401:
            ok, detail = True, ""
        elif without == 403:
            ok, detail = (
                True,
                "the IP allow-list refused this host (as anyone but Telegram), so the secret went unchecked",
            )
        else:
            ok, detail = False, f"without the secret it answered {without}, not 401: does the bot check WEBHOOK_SECRET?"
        figure = f"ack {elapsed:.0f} ms, {status} with the secret, {without} without"
        self.steps.append(Step("Public endpoint", ok=ok, figure=figure, detail=detail))
        return url if status == 200 else None

    async def announce(self) -> None:
        sent = await self.api.send_message(
            self.chat, "🔧 voicecoder selftest: a button press and a 30 s voice note follow; nothing is run."
        )
        self.announce_id = int(sent.message_id)

    def _sender(self) -> dict[str, Any]:
        return {"id": self.chat, "is_bot": False, "first_name": "selftest"}

    def _chat_json(self) -> dict[str, Any]:
        return {"id": self.chat, "type": "private", "first_name": "selftest"}

    async def button(self, url: str) -> None:
        update = {
            "update_id": _update_id(),
            "callback_query": {
                "id": f"selftest-{secrets.token_hex(8)}",
                "from": self._sender(),
                "message": {"message_id": self.announce_id, "date": int(time.time()), "chat": self._chat_json()},
                "chat_instance": "0",
                "data": callback_data(Button(Action.GIT_STATUS)),
            },
        }
        self.steps.append(await self._timed(url, "Button", update, BUTTON_TARGET_S, within_s=30))

    async def voice(self, url: str) -> None:
        note = _voice_note()

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            data.add_field("chat_id", str(self.chat))
            data.add_field("duration", str(VOICE_SECONDS))
            data.add_field("caption", "voicecoder selftest: this voice note goes to the bot next")
            data.add_field("voice", note, filename="selftest.ogg", content_type="audio/ogg")
            return data

        try:
            sent = await self.api.call("sendVoice", form=form)
        except TelegramApiError as exc:
            self.steps.append(Step("Voice note", ok=False, figure="not uploaded", detail=telegram_failure(exc)))
            return
        voice = dict(sent["voice"])
        update = {
            "update_id": _update_id(),
            "message": {
                "message_id": int(sent["message_id"]),
                "from": self._sender(),
                "chat": self._chat_json(),
                "date": int(time.time()),
                "voice": voice,
                "caption": "/selftest",
            },
        }
        step = await self._timed(url, f"Voice note {VOICE_SECONDS} s", update, VOICE_TARGET_S, within_s=180)
        self.steps.append(step)

    async def _timed(self, url: str, name: str, update: dict[str, Any], target_s: float, *, within_s: float) -> Step:
        """Post *update* with the secret and wait until the bot's inbox says it is done."""
        update_id = int(update["update_id"])
        started = time.monotonic()
        try:
            status, _ = await self._post(url, update)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Step(name, ok=False, figure="not delivered", detail=type(exc).__name__)
        if status != 200:
            return Step(name, ok=False, figure=f"answered {status}", detail="see the public endpoint step")
        timing = None
        with anyio.move_on_after(within_s):
            while True:
                timing = await anyio.to_thread.run_sync(read_item_timing, self.config.inbox_path, update_id)
                if timing is not None and timing.state is not ItemState.PENDING:
                    break
                await anyio.sleep(0.05)
        total = time.monotonic() - started
        if timing is None or timing.state is ItemState.PENDING:
            detail = f"not handled within {within_s:.0f} s: is the bot running with DATA_DIR={self.config.data_dir}?"
            return Step(name, ok=False, figure="no answer", detail=detail)
        inside = (timing.finished_at or timing.received_at) - timing.received_at
        figure = f"{total:.2f} s end to end ({inside:.2f} s in the bot), target ≤ {target_s:g} s"
        if timing.state is ItemState.FAILED:
            return Step(name, ok=False, figure=figure, detail=f"the bot failed: {timing.last_error}")
        return Step(name, ok=total <= target_s, figure=figure)


async def run_selftest(config: Config, args: argparse.Namespace, *, print_line: Callable[[str], None]) -> int:
    """Run every step that applies, printing each as it finishes; 0 when all passed."""
    token = config.require_telegram()
    users = sorted(config.allowed_user_ids)
    chat = args.chat if args.chat is not None else (users[0] if users else None)
    if chat is None:
        raise ConfigurationError("selftest needs a user to test as: set ALLOWED_USER_IDS or pass --chat <your id>.")
    polling = config.transport == "polling"
    if not polling and (config.webhook_path is None or config.webhook_secret is None):
        raise ConfigurationError(
            "The bot's webhook path and secret are not known yet: start `voicecoder serve` (or `webhook set`) first."
        )
    async with (
        TelegramBotApi(token, base_url=config.telegram_api_base, retry=RetryPolicy(attempts=2)) as api,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
    ):
        test = SelfTest(config, api, http, chat, args.endpoint)
        shown = 0

        def flush() -> None:
            nonlocal shown
            for step in test.steps[shown:]:
                print_line(step.line())
            shown = len(test.steps)

        reachable = await test.telegram()
        flush()
        if reachable:
            await test.registration()
            flush()
        if reachable and polling:
            print_line(
                "ℹ️ Polling mode: nothing can be posted to the bot. By hand: tap 📊 Git Status under any change "
                "(answered within 2 s?) and send a voice note captioned /selftest (the reply says how long it took)."
            )
        elif reachable and (url := await test.endpoint_check()) is not None:
            flush()
            await test.announce()
            await test.button(url)
            flush()
            if not args.no_voice:
                await test.voice(url)
        flush()
    failed = [s.name for s in test.steps if not s.ok]
    print_line("✅ All checks passed." if not failed else f"❌ Needs attention: {', '.join(failed)}.")
    return 0 if not failed else 1


__all__ = ["BUTTON_TARGET_S", "VOICE_TARGET_S", "Step", "run_selftest"]
