"""
voicecoder on trio: the real domain, `DulwichWorkspace`, `SqliteStateStore` and the real Claude Code CLI through
`ClaudeCliAgent`, opened with `open_voicecoder`, run a whole session under ``trio`` — prompt, progress, Show Diff,
Approve, Reject, a voice note, and ⏹ Cancel that interrupts the turn (the session's CLI stays warm until the
agent is closed, and then nothing it started is left).

The fake Anthropic API is an aiohttp server, and aiohttp is asyncio-only: it runs on its own asyncio event loop in
its own thread, reached over 127.0.0.1 like the real API. Nothing else in the test touches asyncio.
"""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Self, TypeVar

import anyio
import pytest
import sniffio

from tests.agent_processes import alive_with, roots
from tests.integration.cli_agent import real_cli_agent
from tests.real_cli import CLAUDE
from voicecoder import Action, Audio, ChatId, UserId, open_voicecoder
from voicecoder.adapters import SqliteStateStore
from voicecoder.domain.model import ChangeStatus
from voicecoder.domain.replies import (
    Cancelled,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeSummary,
    DiffView,
    Heard,
    Working,
)
from voicecoder.simulators.anthropic import FakeAnthropicApi, Reply
from voicecoder.testing import FakeTranscriber, RecordingMessenger

pytestmark = [
    pytest.mark.real_cli,
    pytest.mark.skipif(CLAUDE is None, reason="Claude Code CLI not installed: run `python3 dev.py test`"),
]

CHAT = ChatId(42)
DEV = UserId(42)
VOICE = b"OggS" + bytes(range(256)) * 8
_T = TypeVar("_T")


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


class AnthropicOnItsOwnLoop:
    """`FakeAnthropicApi` served from an asyncio loop in a thread; calls into it are marshalled onto that loop."""

    def __init__(self) -> None:
        self.api = FakeAnthropicApi()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-anthropic", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        self._submit(self.api.start()).result(30)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._submit(self._shutdown()).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _shutdown(self) -> None:
        await self.api.close()
        # A request still stalling (the cancelled turn's) ends with its loop.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _submit(self, coro: Coroutine[Any, Any, _T]) -> Future[_T]:
        # A fresh context: the caller's would tell anyio (via sniffio's context variable) it runs on trio.
        return contextvars.Context().run(asyncio.run_coroutine_threadsafe, coro, self._loop)

    def call(self, fn: Callable[[], _T]) -> _T:
        done: Future[_T] = Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run, context=contextvars.Context())
        return done.result(30)

    async def wait_for_requests(self, count: int) -> None:
        await anyio.to_thread.run_sync(self._submit(self.api.wait_for_requests(count, 60)).result)


@pytest.fixture(name="anthropic")
def _anthropic() -> Iterator[AnthropicOnItsOwnLoop]:
    with AnthropicOnItsOwnLoop() as served:
        yield served


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


async def until(predicate: Callable[[], Any], within: float = 60.0) -> Any:
    """Wait for *predicate()* to hold (the recording messenger has no events of its own to wait on)."""
    with anyio.fail_after(within):
        while not (value := predicate()):
            await anyio.sleep(0.02)
        return value


@pytest.mark.timeout(240)
async def test_a_whole_session_on_trio(tmp_path: Path, anthropic: AnthropicOnItsOwnLoop) -> None:
    assert sniffio.current_async_library() == "trio"
    workspace, data = tmp_path / "ws", tmp_path / "data"
    mark = uuid.uuid4().hex
    messenger = RecordingMessenger()
    transcriber = FakeTranscriber()
    transcriber.learn(VOICE, "create file voice.txt with spoken")

    agent = real_cli_agent(tmp_path / "home", workspace, anthropic.api.base_url, VOICECODER_TRIO_TEST=mark)
    async with (
        agent,  # the embedder's agent is the embedder's to close, with its warm CLI process
        open_voicecoder(
            messenger=messenger,
            workspace=workspace,
            data_dir=data,
            allowed_users=[DEV.value],
            agent=agent,
            transcriber=transcriber,
        ) as app,
    ):
        # prompt → progress → Show Diff → Approve (by button, as a chat would)
        await app.prompt(CHAT, DEV, "create file notes.txt with hello")
        (summary,) = messenger.of_type(ChangeSummary)
        assert summary.diff.paths == ("notes.txt",)
        progress = [reply for _, reply in messenger.edits if isinstance(reply, Working)]
        assert progress
        assert progress[-1].finished
        assert any("notes.txt" in step for w in progress for step in w.steps)
        show = next(b for b in summary.buttons if b.action is Action.SHOW_DIFF)
        await app.press(CHAT, DEV, "cb-1", show)
        assert "+hello" in messenger.of_type(DiffView)[-1].diff.unified
        approve = next(b for b in summary.buttons if b.action is Action.APPROVE)
        ack = await app.press(CHAT, DEV, "cb-2", approve, answer=False)
        (committed,) = messenger.of_type(ChangeCommitted)
        assert ack.text == f"✅ Committed {committed.commit.short_sha}"
        assert git(workspace, "rev-parse", "HEAD").strip() == committed.commit.sha
        assert git(workspace, "show", "HEAD:notes.txt") == "hello\n"

        # prompt → Reject, called directly
        await app.prompt(CHAT, DEV, "create file reject.txt with no")
        assert (workspace / "reject.txt").exists()
        assert await app.reject(CHAT, DEV) is True
        assert not (workspace / "reject.txt").exists()
        assert messenger.of_type(ChangeDiscarded)[-1].paths == ("reject.txt",)

        # a voice note
        await app.voice(CHAT, DEV, Audio(VOICE, "audio/ogg"))
        assert messenger.of_type(Heard)[-1].text == "create file voice.txt with spoken"
        assert (workspace / "voice.txt").read_text() == "spoken\n"
        assert await app.approve(CHAT, DEV) is not None

        # ⏹ Cancel interrupts the turn and kills what it started; the CLI stays, idle, for the next turn
        anthropic.call(lambda: anthropic.api.script(Reply.text("never mind", stall_s=60)))
        before = len(anthropic.api.requests)
        async with anyio.create_task_group() as tg:
            tg.start_soon(app.prompt, CHAT, DEV, "think for a long time")
            await anthropic.wait_for_requests(before + 1)
            assert alive_with("VOICECODER_TRIO_TEST", mark)
            assert await app.cancel(CHAT, DEV) is True
        assert messenger.of_type(Cancelled)
        assert len(roots(alive_with("VOICECODER_TRIO_TEST", mark))) == 1
        assert len(agent.warm_sessions) == 1
        store = app.ports.store

    # Closing the agent ends its CLI and every process it started.
    assert alive_with("VOICECODER_TRIO_TEST", mark) == []

    # The SQLite store was real: a fresh one reads what the session wrote.
    reopened = SqliteStateStore(data / "state.sqlite3")
    session = await reopened.load_session(CHAT)
    await reopened.close()
    assert session is not None
    assert session.approved_count == 2
    assert session.rejected_count == 1
    assert session.latest_change is not None
    assert session.latest_change.status is ChangeStatus.APPROVED
    assert len(git(workspace, "log", "--format=%H").split()) == 3  # initial, notes.txt, voice.txt
    assert store is not reopened
