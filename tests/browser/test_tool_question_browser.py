"""
A tool question in the sandbox page, in headless Chromium: the whole sandbox with the demo agent (the real CLI on
the fake Anthropic API, the real webhook and use cases), driven only through the page, at phone width.
"""

from __future__ import annotations

import pytest

from tests.browser.test_sandbox_browser import (  # the fixtures are used by name
    CHROMIUM_ARGS,
    _chromium,  # noqa: F401
    _whole_sandbox,  # noqa: F401
)
from voicecoder.entrypoints.sandbox import SandboxInfo, sandbox_user_name
from voicecoder.simulators.demo_model import TESTS_COMMAND

pytestmark = pytest.mark.browser

SLOW = 90_000  # ms


class TestToolQuestionOnThePage:
    async def test_run_the_tests_then_deny_with_a_reason(self, chromium: str, whole_sandbox: SandboxInfo) -> None:
        """
        The "run the tests" chip asks with the exact command and three buttons; "↩ Reply with a reason" denies it,
        the question then says who denied it and why, and Claude's answer quotes the reason.
        """
        from playwright.async_api import async_playwright, expect  # noqa: PLC0415 - only the browser tests need it

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(whole_sandbox.url)
                await expect(page.get_by_test_id("status")).to_have_text("bot · local sandbox")

                await page.get_by_test_id("examples").get_by_role("button", name="run the tests").click()

                bots = page.get_by_test_id("bot-message")
                question = bots.filter(has_text="Claude wants to run a command")
                await expect(question.get_by_test_id("inline-button")).to_have_text(
                    ["✅ Allow", "🔓 Allow Bash(python3 -m unittest *) for this session", "❌ Deny"], timeout=SLOW
                )
                await expect(question).to_contain_text(TESTS_COMMAND)
                await question.get_by_test_id("reply").click()
                await expect(page.get_by_test_id("reply-bar")).to_be_visible()
                await page.get_by_test_id("input").fill("not now, CI runs them")
                await page.keyboard.press("Enter")

                await expect(bots.filter(has_text=f"Denied by {sandbox_user_name()}")).to_contain_text(
                    "not now, CI runs them", timeout=SLOW
                )
                answer = bots.filter(has_text="🤖 Claude:")
                await expect(answer).to_contain_text("I did not run", timeout=SLOW)
                await expect(answer).to_contain_text("not now, CI runs them")
                await expect(page.get_by_test_id("reply-bar")).to_be_hidden()
                assert errors == []
            finally:
                await browser.close()
