"""
The sandbox page in headless Chromium (Debian's, driven by Playwright): type, see the bot answer, press buttons.

`TestWholeSandbox` runs ``voicecoder sandbox`` itself in-process (`run_sandbox` with the demo agent: the real
Claude Code CLI against the local fake Anthropic API, the real webhook server, dispatcher, messenger and git
workspace, the local speech model) and drives it from the page. `TestSandboxPage` checks the page's own
behaviour against a small stand-in bot that talks to the fake Bot API over plain Bot API HTTP calls
(getUpdates, sendMessage, editMessageText, answerCallbackQuery, sendDocument).

Set ``VOICECODER_SANDBOX_SCREENSHOT=docs/sandbox.png`` to refresh the README screenshot (taken from the
whole-sandbox run).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from voicecoder.adapters.stt.audio_intake import AudioLimits, check_audio
from voicecoder.domain.model import Audio
from voicecoder.entrypoints.sandbox import SandboxInfo, find_claude, run_sandbox
from voicecoder.simulators.bot_api import FakeBotApi
from voicecoder.simulators.web_chat import create_sandbox_web_app

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USER_ID = 5550001
VOICE = Path(__file__).resolve().parent.parent / "fixtures" / "voice" / "02_check_workspace.ogg"
FAKE_MICROPHONE = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
DIFF = """--- a/hello.py
+++ b/hello.py
@@ -1,2 +1,3 @@
 def greet(name):
-    return "hi " + name
+    \"\"\"Say hello <politely>.\"\"\"
+    return f"Hello, {name}!"
"""
LONG_DIFF = DIFF.encode() * 120


class EchoBot:
    """
    A small stand-in for voicecoder's handler: long-polls the fake and answers like the real bot's replies.

    Text → a "⏳ Claude is working on this…" status with ⏹ Cancel, edited in place with progress and then
    finished, the "🤖 Claude:" answer, and a change summary with the four change buttons. Buttons are
    answered (answerCallbackQuery); 📝 Show Diff sends the diff in ``<pre>``.
    """

    def __init__(self, api: FakeBotApi, http: aiohttp.ClientSession) -> None:
        self.api = api
        self.http = http
        self.pressed: list[str] = []
        self.audio: list[tuple[dict[str, Any], bytes]] = []

    async def call(self, method: str, **params: Any) -> Any:
        async with self.http.post(f"{self.api.base_url}/bot{self.api.token}/{method}", json=params) as resp:
            body = await resp.json()
        if not body["ok"]:
            raise RuntimeError(f"{method}: {body['description']}")
        return body["result"]

    async def run(self) -> None:
        offset = 0
        while True:
            updates = await self.call("getUpdates", offset=offset, timeout=10)
            for update in updates:
                offset = update["update_id"] + 1
                if "message" in update and update["message"].get("text") == "/longdiff":
                    await self.send_long_diff(update["message"]["chat"]["id"])
                elif "message" in update and "text" in update["message"]:
                    await self.on_text(update["message"]["chat"]["id"], update["message"]["text"])
                elif "message" in update and ({"voice", "audio"} & update["message"].keys()):
                    await self.on_audio(update["message"])
                elif "callback_query" in update:
                    await self.on_press(update["callback_query"])

    async def on_text(self, chat_id: int, text: str) -> None:
        await self.call("sendChatAction", chat_id=chat_id, action="typing")
        cancel = {"inline_keyboard": [[{"text": "⏹ Cancel", "callback_data": "c::"}]]}
        working = f"⏳ <b>Claude is working on this…</b>\n<i>{html.escape(text)}</i>"
        status = await self.call("sendMessage", chat_id=chat_id, text=working, parse_mode="HTML", reply_markup=cancel)
        step = working + "\n• Write hello.py\n<i>0.4 s</i>"
        await asyncio.sleep(0.3)
        await self.call(
            "editMessageText",
            chat_id=chat_id,
            message_id=status["message_id"],
            text=step,
            parse_mode="HTML",
            reply_markup=cancel,
        )
        await asyncio.sleep(0.3)
        done = f"✅ <b>Claude finished</b>\n<i>{html.escape(text)}</i>\n• Write hello.py\n<i>0.9 s</i>"
        await self.call(
            "editMessageText", chat_id=chat_id, message_id=status["message_id"], text=done, parse_mode="HTML"
        )
        await self.call(
            "sendMessage",
            chat_id=chat_id,
            parse_mode="HTML",
            text="🤖 <b>Claude:</b> I added a docstring and an f-string to <code>greet()</code>.\n"
            "<i>1 turn · $0.01</i>",
        )
        buttons = [
            [{"text": "✅ Approve", "callback_data": "a:c1:0123456789abcdef"},
             {"text": "❌ Reject", "callback_data": "r:c1:0123456789abcdef"}],
            [{"text": "📝 Show Diff", "callback_data": "d:c1:0123456789abcdef"},
             {"text": "📊 Git Status", "callback_data": "s:c1:0123456789abcdef"}],
        ]  # fmt: skip
        await self.call(
            "sendMessage",
            chat_id=chat_id,
            parse_mode="HTML",
            text="📦 <b>Pending change</b> · 1 file, +2 −1\n<code>M hello.py</code>  +2 −1\n\nApprove to commit it.",
            reply_markup={"inline_keyboard": buttons},
        )

    async def send_long_diff(self, chat_id: int) -> None:
        """A diff too long for a message goes out as a .diff document (multipart sendDocument)."""
        form = aiohttp.FormData()
        form.add_field("chat_id", str(chat_id))
        form.add_field("caption", "📝 <b>Full diff</b> (too long for a message)")
        form.add_field("parse_mode", "HTML")
        form.add_field("document", LONG_DIFF, filename="change-c1.diff", content_type="text/x-diff")
        async with self.http.post(f"{self.api.base_url}/bot{self.api.token}/sendDocument", data=form) as resp:
            body = await resp.json()
        if not body["ok"]:
            raise RuntimeError(f"sendDocument: {body['description']}")

    async def on_audio(self, message: dict[str, Any]) -> None:
        """Download the recording like the real handler does (getFile + file URL) and acknowledge it."""
        obj = message.get("voice") or message["audio"]
        file = await self.call("getFile", file_id=obj["file_id"])
        async with self.http.get(f"{self.api.base_url}/file/bot{self.api.token}/{file['file_path']}") as resp:
            data = await resp.read()
        self.audio.append((message, data))
        kind = "voice note" if "voice" in message else "audio file"
        await self.call(
            "sendMessage",
            chat_id=message["chat"]["id"],
            parse_mode="HTML",
            text=f"🎤 Heard: <i>a {kind} of {len(data)} bytes ({html.escape(obj.get('mime_type', '?'))})</i>",
        )

    async def on_press(self, query: dict[str, Any]) -> None:
        data = query["data"]
        self.pressed.append(data)
        chat_id = query["message"]["chat"]["id"]
        await self.call(
            "answerCallbackQuery", callback_query_id=query["id"], text="📝 Diff below" if data[0] == "d" else ""
        )
        if data.startswith("d:"):
            text = f'📝 <b>Diff</b>\n<pre><code class="language-diff">{html.escape(DIFF)}</code></pre>'
            await self.call("sendMessage", chat_id=chat_id, text=text, parse_mode="HTML")


@pytest.fixture(name="chromium")
def _chromium() -> str:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(reason="chromium not installed: apt-get install chromium")
    pytest.importorskip("playwright", reason="the dev extra (playwright) is not installed")
    return CHROMIUM


@pytest.fixture(name="whole_sandbox")
async def _whole_sandbox(tmp_path: Path) -> AsyncIterator[SandboxInfo]:
    """`voicecoder sandbox` with the demo agent, on ephemeral ports; yields its SandboxInfo."""
    if find_claude() is None:
        pytest.skip(reason="Claude Code CLI not installed: python3 dev.py test installs it with npm")
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        info: SandboxInfo = await tg.start(
            partial(run_sandbox, tmp_path / "sandbox", port=0, demo_agent=True, handle_signals=False, stop=stop)
        )
        try:
            yield info
        finally:
            stop.set()


@pytest.fixture(name="sandbox")
async def _sandbox() -> AsyncIterator[tuple[str, EchoBot]]:
    """The fake Bot API, the bot on it, and the web chat on 127.0.0.1; yields the page URL and the bot."""
    async with FakeBotApi() as api, aiohttp.ClientSession() as http:
        bot = EchoBot(api, http)
        runner = web.AppRunner(
            create_sandbox_web_app(api, user_id=USER_ID, chat_id=USER_ID, user_name="Ada"),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        task = asyncio.create_task(bot.run())
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/", bot
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await runner.cleanup()


def git(workspace: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(workspace), *args], check=True, capture_output=True, text=True).stdout


async def assert_fits_the_width(page: Any, shot: Path) -> None:
    """Nothing scrolls sideways, every control is inside the viewport, and the screenshot is saved and not blank."""
    width = await page.evaluate("window.innerWidth")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    for locator in (page.locator(".chip"), page.locator(".composer button:visible")):
        for i in range(await locator.count()):
            box = await locator.nth(i).bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= width + 0.5
    await page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000


VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    },
}


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """Where a checked screenshot goes: $VOICECODER_SCREENSHOT_DIR (kept for people to look at) or tmp."""
    folder = Path(os.environ.get("VOICECODER_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.png"


class TestWholeSandbox:
    @pytest.mark.parametrize("device", list(VIEWPORTS))
    async def test_prompt_show_diff_and_approve(
        self, chromium: str, whole_sandbox: SandboxInfo, device: str, tmp_path: Path
    ) -> None:
        """
        A typed prompt runs the real agent in the sandbox workspace: the live status is edited in place, the
        answer and the change summary arrive, 📝 Show Diff shows the diff, and ✅ Approve commits the file;
        at desktop and at phone width, with nothing scrolling sideways and no bot message left unparsed.
        """
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        slow = 90_000  # ms: the CLI starts in a couple of seconds here, but CI machines are slower
        workspace = whole_sandbox.workspace
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(**VIEWPORTS[device])).new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(whole_sandbox.url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_test_id("input").fill("create file notes.txt with hello")
                await page.keyboard.press("Enter")
                # On a phone the example requests fold away once something is sent; a desktop has the room.
                await expect(page.get_by_test_id("examples")).to_have_js_property("open", device != "phone")

                bots = page.get_by_test_id("bot-message")
                summary = bots.filter(has_text="Changes ready for review")
                await expect(summary.get_by_role("button")).to_have_text(
                    ["✅ Approve", "❌ Reject", "📝 Show Diff", "📊 Git Status"], timeout=slow
                )
                status = bots.filter(has_text="Claude finished")
                await expect(status).to_contain_text("edited")  # the ⏳ status message, edited in place
                await expect(status.get_by_role("button")).to_have_count(0)  # ⏹ Cancel gone when finished
                await expect(bots.filter(has_text="🤖 Claude:")).to_have_count(1)

                await summary.get_by_role("button", name="📝 Show Diff").click()

                diff = bots.locator("pre code.language-diff")
                await expect(diff).to_contain_text("+++ b/notes.txt", timeout=slow)
                await expect(diff.locator("span.add")).to_have_text(["+hello"])
                assert git(workspace, "status", "--porcelain") == "?? notes.txt\n"
                await assert_fits_the_width(page, screenshot_path(tmp_path, f"sandbox-{device}-diff"))

                shot = os.environ.get("VOICECODER_SANDBOX_SCREENSHOT")
                if shot:
                    await page.get_by_test_id("toast").evaluate("el => el.hidden = true")
                    await page.wait_for_timeout(1200)  # let the edit highlight and the pressed button settle
                    await page.screenshot(path=shot)

                key = await summary.get_attribute("data-key")
                await summary.get_by_role("button", name="✅ Approve").click()
                summary = page.locator(f'[data-key="{key}"]')  # its text changes when the decision is recorded

                await expect(bots.filter(has_text="✅ Changes approved and committed")).to_have_count(1, timeout=slow)
                await expect(summary).to_contain_text("✅ Approved and committed")
                await expect(summary.get_by_role("button")).to_have_text(["📝 Show Diff"])
                await assert_fits_the_width(page, screenshot_path(tmp_path, f"sandbox-{device}-approved"))
                assert errors == []
            finally:
                await browser.close()

        assert git(workspace, "show", "HEAD:notes.txt") == "hello\n"
        assert git(workspace, "status", "--porcelain") == ""

    @pytest.mark.slow
    async def test_voice_note_is_transcribed(self, chromium: str, whole_sandbox: SandboxInfo) -> None:
        """A voice note picked with 📎 goes through the real intake and local speech model: "🎤 Heard" shows it."""
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        if "local whisper" not in whole_sandbox.speech:
            pytest.skip(reason=f"local speech model unavailable in this install: {whole_sandbox.speech}")
        clip = VOICE.parent / "01_create_file.ogg"  # "create a file called test dot txt with hello world"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(whole_sandbox.url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_test_id("file").set_input_files(str(clip))

                await expect(page.get_by_test_id("my-message").locator("audio")).to_have_count(1)
                heard = page.get_by_test_id("bot-message").filter(has_text="🎤 Heard:")
                await expect(heard).to_contain_text("file called", ignore_case=True, timeout=120_000)
            finally:
                await browser.close()


class TestSandboxPage:
    async def test_type_see_the_answer_and_open_the_diff(
        self, chromium: str, sandbox: tuple[str, EchoBot], tmp_path: Path
    ) -> None:
        """
        A typed prompt reaches the bot; its status message updates in place, the answer and the change buttons
        appear, and 📝 Show Diff brings the diff, rendered as code with its markup escaped.
        """
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        url, bot = sandbox
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 520, "height": 940}, device_scale_factor=1.5)
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_test_id("input").fill("Add a docstring to greet() in hello.py")
                await page.keyboard.press("Enter")

                mine = page.get_by_test_id("my-message")
                await expect(mine).to_contain_text("Add a docstring to greet() in hello.py")
                bots = page.get_by_test_id("bot-message")
                await expect(bots.first).to_contain_text("Claude finished")  # the status, edited in place
                await expect(bots.first).to_contain_text("edited")
                await expect(bots.first.get_by_role("button")).to_have_count(0)  # ⏹ Cancel removed when done
                await expect(bots.nth(1)).to_contain_text("🤖 Claude: I added a docstring")
                summary = bots.nth(2)
                await expect(summary.get_by_role("button")).to_have_text(
                    ["✅ Approve", "❌ Reject", "📝 Show Diff", "📊 Git Status"]
                )

                await summary.get_by_role("button", name="📝 Show Diff").click()

                diff = bots.nth(3).locator("pre code.language-diff")
                await expect(diff).to_contain_text('+    """Say hello <politely>."""')
                await expect(diff.locator("span.add")).to_have_count(2)
                await expect(diff.locator("span.del")).to_have_count(1)
                await expect(page.get_by_test_id("toast")).to_have_text("📝 Diff below")
                await expect(bots).to_have_count(4)
                assert bot.pressed == ["d:c1:0123456789abcdef"]
                assert await page.locator("politely").count() == 0  # escaped text, not an element
                assert errors == []

                shot = tmp_path / "sandbox.png"
                await page.screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000
            finally:
                await browser.close()

    async def test_record_a_voice_note_with_the_microphone(self, chromium: str, sandbox: tuple[str, EchoBot]) -> None:
        """
        🎤 records with MediaRecorder (Chromium's fake microphone) and sends a voice note in a container the
        bot's audio intake accepts; the bot downloads the same bytes and its reply shows.
        """
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        url, bot = sandbox
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS + FAKE_MICROPHONE)
            try:
                page = await browser.new_page()
                await page.goto(url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_test_id("record").click()
                await expect(page.locator("#recording")).to_be_visible()
                await page.wait_for_timeout(1500)
                await page.get_by_test_id("record").click()

                await expect(page.get_by_test_id("bot-message")).to_contain_text("🎤 Heard: a voice note of")
                await expect(page.get_by_test_id("my-message").locator("audio")).to_have_count(1)
            finally:
                await browser.close()

        ((message, data),) = bot.audio
        voice = message["voice"]
        info = check_audio(Audio(data, voice["mime_type"], declared_duration_s=voice["duration"]), AudioLimits())
        assert voice["file_size"] == len(data)
        assert voice["duration"] >= 1
        assert info.duration_s is not None
        assert info.duration_s > 0.5

    async def test_upload_is_reachable_by_keyboard(self, chromium: str, sandbox: tuple[str, EchoBot]) -> None:
        """Tab reaches the upload button, Enter opens the file picker, and the picked file goes out as a voice note
        with its real length (Telegram clients send it; the label must not say 1 s for a 3 s clip)."""
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        url, bot = sandbox
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                # A listener from the start makes Playwright intercept file choosers before the first one opens.
                page.on("filechooser", lambda _chooser: None)
                await page.goto(url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                for _ in range(30):
                    await page.keyboard.press("Tab")
                    if await page.evaluate("document.activeElement && document.activeElement.id") == "upload":
                        break
                assert await page.evaluate("document.activeElement.id") == "upload"
                async with page.expect_file_chooser() as chooser:
                    await page.keyboard.press("Enter")
                await (await chooser.value).set_files(str(VOICE))

                await expect(page.get_by_test_id("bot-message")).to_contain_text("🎤 Heard: a voice note of")
                await expect(page.get_by_test_id("my-message")).to_contain_text("Voice note · 3 s")
            finally:
                await browser.close()

        ((message, _),) = bot.audio
        assert message["voice"]["duration"] == 3  # 02_check_workspace.ogg lasts 2.94 s

    async def test_upload_an_audio_file(self, chromium: str, sandbox: tuple[str, EchoBot]) -> None:
        """📎 sends a picked OGG file as a voice note with exactly its bytes."""
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        url, bot = sandbox
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_test_id("file").set_input_files(str(VOICE))

                await expect(page.get_by_test_id("bot-message")).to_contain_text("🎤 Heard: a voice note of")
            finally:
                await browser.close()

        ((message, data),) = bot.audio
        assert (message["voice"]["mime_type"], data) == ("audio/ogg", VOICE.read_bytes())

    async def test_long_diff_document_downloads(
        self, chromium: str, sandbox: tuple[str, EchoBot], tmp_path: Path
    ) -> None:
        """A .diff document the bot sends is shown as a file and downloads with its exact bytes."""
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        url, _ = sandbox
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(accept_downloads=True)).new_page()
                await page.goto(url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_role("button", name="/start").click()
                await expect(page.get_by_test_id("my-message").first).to_contain_text("/start")  # chips send commands
                await page.get_by_test_id("input").fill("/longdiff")
                await page.get_by_test_id("send").click()
                document = page.get_by_test_id("document")
                await expect(document).to_contain_text("change-c1.diff")
                await expect(page.get_by_test_id("bot-message").filter(has=document)).to_contain_text("Full diff")
                async with page.expect_download() as info:
                    await document.click()
                download = await info.value
                target = tmp_path / download.suggested_filename
                await download.save_as(target)
            finally:
                await browser.close()

        assert target.name == "change-c1.diff"
        assert target.read_bytes() == LONG_DIFF
