"""
"run the tests" in the sandbox with ``--demo-agent``: the real CLI, the demo model on the fake Anthropic API,
the real webhook and the web chat's JSON API, as a user taps through it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.integration.test_product import HEADERS, bot_texts, wait_for
from tests.real_cli import needs_cli
from voicecoder.entrypoints.sandbox import SandboxInfo, run_sandbox, sandbox_user_name
from voicecoder.simulators.demo_model import TESTS_COMMAND

pytestmark = needs_cli


@pytest.fixture(name="demo")
async def _demo(tmp_path: Path) -> AsyncIterator[tuple[SandboxInfo, aiohttp.ClientSession]]:
    """The sandbox with --demo-agent, and a client that talks to its page's API."""
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        run = functools.partial(run_sandbox, tmp_path / "sbx", port=0, demo_agent=True, stop=stop, handle_signals=False)
        info = await tg.start(run)
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            yield info, http
        stop.set()


def question_of(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in messages if m["from"] == "bot" and "Claude wants to run a command" in m["html"]), None)


def button(message: dict[str, Any], label: str) -> str:
    return str(next(b["callback_data"] for row in message["buttons"] for b in row if b["text"].startswith(label)))


async def ask_to_run_the_tests(info: SandboxInfo, http: aiohttp.ClientSession) -> dict[str, Any]:
    (info.workspace / "test_sum.py").write_text(
        "import unittest\n\n\nclass TestSum(unittest.TestCase):\n"
        "    def test_sum(self):\n        self.assertEqual(sum([1, 2]), 3)\n"
    )
    await http.post(info.url + "api/send", json={"text": "run the tests"})
    messages = await wait_for(http, info.url, lambda ms: question_of(ms) is not None)
    question = question_of(messages)
    assert question is not None
    return question


class TestRunTheTestsInTheSandbox:
    async def test_allow_runs_the_command_and_its_output_reaches_the_answer(
        self, demo: tuple[SandboxInfo, aiohttp.ClientSession]
    ) -> None:
        """The question shows the exact command; ✅ Allow runs it; the test run's output is in Claude's answer."""
        info, http = demo
        question = await ask_to_run_the_tests(info, http)

        assert TESTS_COMMAND in re.sub(r"<[^>]+>", "", question["html"])
        await http.post(
            info.url + "api/press", json={"message_id": question["id"], "data": button(question, "✅ Allow")}
        )
        messages = await wait_for(http, info.url, lambda ms: any("🤖 Claude:" in t for t in bot_texts(ms)))

        answer = next(t for t in bot_texts(messages) if "🤖 Claude:" in t)
        assert "Ran 1 test" in answer
        closed = next(m for m in messages if m["id"] == question["id"])
        assert closed["html"].startswith(f"✅ <b>Allowed</b> by {sandbox_user_name()}")
        assert closed["buttons"] == []

    async def test_deny_with_a_reply_tells_the_model_why(self, demo: tuple[SandboxInfo, aiohttp.ClientSession]) -> None:
        """Replying to the question denies it; the model's answer quotes the reason; nothing ran."""
        info, http = demo
        question = await ask_to_run_the_tests(info, http)

        async with http.post(
            info.url + "api/send", json={"text": "not now, the CI runs them", "reply_to": question["id"]}
        ) as response:
            assert response.status == 200, await response.text()
        messages = await wait_for(http, info.url, lambda ms: any("🤖 Claude:" in t for t in bot_texts(ms)))

        answer = next(t for t in bot_texts(messages) if "🤖 Claude:" in t)
        assert "I did not run" in answer
        assert "not now, the CI runs them" in answer
        closed = next(m for m in messages if m["id"] == question["id"])
        assert "Denied" in closed["html"]
        assert "not now, the CI runs them" in closed["html"]
