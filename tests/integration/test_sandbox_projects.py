"""`voicecoder sandbox --projects`: two demo projects, chosen from the web chat's buttons, each its own clone."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from tests.gitoracle import git
from tests.integration.test_product import HEADERS, bot_texts, wait_for
from tests.real_cli import needs_cli
from voicecoder.bootstrap.sandbox import DEMO_PROJECTS, SANDBOX_USER
from voicecoder.entrypoints.sandbox import SandboxInfo, run_sandbox

pytestmark = needs_cli


@pytest.fixture(name="demo")
async def _demo(tmp_path: Path) -> AsyncIterator[tuple[SandboxInfo, aiohttp.ClientSession]]:
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        run = functools.partial(
            run_sandbox, tmp_path / "sbx", port=0, demo_agent=True, projects=True, stop=stop, handle_signals=False
        )
        info = await tg.start(run)
        async with aiohttp.ClientSession(headers=HEADERS) as http:
            yield info, http
        stop.set()


def picker(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((m for m in messages if m["from"] == "bot" and "Which project" in m["html"]), None)


async def test_the_sandbox_offers_two_demo_projects_and_runs_the_first_message_in_the_one_chosen(
    demo: tuple[SandboxInfo, aiohttp.ClientSession],
) -> None:
    info, http = demo
    await http.post(info.url + "api/send", json={"text": "what is in this project?"})
    messages = await wait_for(http, info.url, lambda ms: picker(ms) is not None)
    question = picker(messages)
    assert question is not None
    buttons = {b["text"]: b["callback_data"] for row in question["buttons"] for b in row}
    assert buttons == {"📁 shop": "shop/j::", "📁 blog": "blog/j::"}

    await http.post(info.url + "api/press", json={"message_id": question["id"], "data": "blog/j::"})
    messages = await wait_for(http, info.url, lambda ms: any("🤖 Claude:" in t for t in bot_texts(ms)))
    assert any("Now working in <b>blog</b>" in t for t in bot_texts(messages))

    await http.post(info.url + "api/send", json={"text": "/project shop"})
    await wait_for(http, info.url, lambda ms: any("Now working in <b>shop</b>" in t for t in bot_texts(ms)))

    blog = info.workspace / "blog" / f"user-{SANDBOX_USER}"
    assert set(DEMO_PROJECTS["blog"]) <= {p.name for p in blog.iterdir()}
    assert git(blog, "log", "--format=%s").splitlines() == ["blog: demo project"]
    assert (info.workspace / "shop" / f"user-{SANDBOX_USER}" / "cart.py").exists()
