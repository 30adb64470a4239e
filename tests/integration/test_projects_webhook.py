"""
Several projects per bot, end to end: a real `voicecoder serve` with PROJECTS (two projects), two developers and
an outsider, Telegram played by the fake Bot API delivering to the real webhook, the real Claude CLI on the fake
Anthropic API, and the git CLI as the oracle for what happened in which tree.
"""

from __future__ import annotations

import functools
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.gitoracle import git
from tests.loopback import free_port, wait_http
from tests.real_cli import CLAUDE, make_repo, needs_cli
from tests.serve_rig import WebhookBot, real_claude, start_cli
from voicecoder.testing.fake_anthropic import FakeAnthropicApi, Reply, write_file
from voicecoder.testing.fake_bot_api import BotMessage, FakeBotApi, FakeUser

pytestmark = needs_cli

TOKEN = "7000000005:AAFakeTokenForTheProjectsWebhookTest_0123"
HOOK = "/telegram/projects-hook"
SECRET = "projects-webhook-secret"
DEV = FakeUser(id=1001, first_name="Dev")
ADA = FakeUser(id=1002, first_name="Ada")
STRANGER = FakeUser(id=6666, first_name="Eve")
UNAUTHORIZED = "⛔ You are not authorized to use this bot."
BOT = WebhookBot(TOKEN, HOOK, SECRET)


def serve(
    tmp_path: Path,
    port: int,
    bot: FakeBotApi,
    anthropic: FakeAnthropicApi,
    *,
    projects: str | None = None,
    extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    assert CLAUDE is not None
    env = BOT.env(
        tmp_path,
        bot.base_url,
        port,
        WORKSPACE_DIR=None,  # PROJECTS instead
        ALLOWED_USER_IDS=f"{DEV.id},{ADA.id}",
        PROJECTS=projects or f"api={tmp_path / 'src' / 'api'};web={tmp_path / 'src' / 'web'}",
        WORKSPACES_ROOT=str(tmp_path / "trees"),
        **real_claude(CLAUDE, anthropic.base_url, tmp_path / "home"),
        **(extra or {}),
    )
    return start_cli(tmp_path, env, "serve", log=tmp_path / "serve.log")


async def until(what: str, predicate: Callable[[], object], within: float = 120.0) -> None:
    """Wait for *predicate()*; the bot is another process, so look again every 50 ms."""
    try:
        with anyio.fail_after(within):
            while not predicate():
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def said(bot: FakeBotApi, user: FakeUser, start: str, *, after: int = 0) -> BotMessage | None:
    """The latest message the bot sent *user* after message id *after* whose text starts with *start*."""
    found = [m for m in bot.bot_messages(user.id) if m.message_id > after and (m.text or "").startswith(start)]
    return found[-1] if found else None


def last_id(bot: FakeBotApi, user: FakeUser) -> int:
    return max((m.message_id for m in bot.bot_messages(user.id)), default=0)


def log(tree: Path) -> list[str]:
    return git(tree, "log", "--format=%s").splitlines()


def status(tree: Path) -> str:
    return git(tree, "status", "--porcelain", "--untracked-files=all")


async def turn(bot: FakeBotApi, user: FakeUser, text: str, *, after: int) -> BotMessage:
    """Send *text* and wait for the change summary of the turn it starts."""
    await bot.send_text(text, user=user)
    await until(f"the change summary for {text!r}", lambda: said(bot, user, "📝 Changes ready", after=after))
    summary = said(bot, user, "📝 Changes ready", after=after)
    assert summary is not None
    return summary


async def test_two_users_two_projects_each_in_their_own_tree(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    api_src, web_src = make_repo(tmp_path / "src" / "api"), make_repo(tmp_path / "src" / "web")
    trees = tmp_path / "trees"
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot, FakeAnthropicApi() as anthropic:
        # chosen once the fakes hold their ports: serve's port must not be one of theirs (a fake bound
        # to it after free_port() made serve fail to start and the fake deliver updates to itself)
        port = free_port()
        for user in (DEV, ADA, STRANGER):
            bot.add_chat(user)
        server = serve(tmp_path, port, bot, anthropic)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await BOT.set_webhook(bot.base_url, port)
            await until("the command menu", lambda: bot.calls_to("setMyCommands"))
            menu = [c["command"] for c in bot.calls_to("setMyCommands")[-1].params["commands"]]
            assert menu[:3] == ["start", "help", "project"]

            # No project chosen yet: the prompt is held, the chat is asked once, and the choice runs it.
            anthropic.script(Reply.tool(write_file("dev.txt", "dev in api\n")), Reply.text("wrote dev.txt"))
            await bot.send_text("write dev.txt", user=DEV)
            await until("the project question", lambda: said(bot, DEV, "📁 Which project"))
            picker = said(bot, DEV, "📁 Which project")
            assert picker is not None
            assert picker.callback_datas() == ["api/j::", "web/j::"]
            assert "runs there as soon as you choose" in (picker.text or "")
            mark = last_id(bot, DEV)
            await bot.press(picker.message_id, "api/j::", user=DEV)
            await until("the held prompt's change", lambda: said(bot, DEV, "📝 Changes ready", after=mark))
            dev_api_summary = said(bot, DEV, "📝 Changes ready", after=mark)
            assert dev_api_summary is not None
            assert said(bot, DEV, "📁 Now working in api") is not None
            assert "📁 api" in (dev_api_summary.text or "")
            approve = next(d for d in dev_api_summary.callback_datas() if d.startswith("api/a:"))
            assert all(len(d.encode()) <= 64 for d in dev_api_summary.callback_datas())

            # Ada picks web by name and works there; Dev's tree is not hers.
            await bot.send_text("/project web", user=ADA)
            await until("Ada's switch", lambda: said(bot, ADA, "📁 Now working in web"))
            anthropic.script(Reply.tool(write_file("ada.txt", "ada in web\n")), Reply.text("wrote ada.txt"))
            await turn(bot, ADA, "write ada.txt", after=last_id(bot, ADA))

            dev_api, ada_web = trees / "api" / "user-1001", trees / "web" / "user-1002"
            assert status(dev_api) == "?? dev.txt\n"
            assert status(ada_web) == "?? ada.txt\n"
            assert not (trees / "api" / "user-1002").exists()
            assert not (trees / "web" / "user-1001").exists()
            assert status(api_src) == status(web_src) == ""  # the projects' own trees are never touched

            # Dev switches to web, then approves the api change from its old message: it commits in api only.
            await bot.send_text("/project web", user=DEV)
            await until("Dev's switch", lambda: said(bot, DEV, "📁 Now working in web"))
            mark = last_id(bot, DEV)
            await bot.press(dev_api_summary.message_id, approve, user=DEV)
            await until("the commit in api", lambda: said(bot, DEV, "✅ Changes approved", after=mark))
            assert len(log(dev_api)) == 2
            assert log(dev_api)[1] == "init"
            assert status(dev_api) == ""
            assert (dev_api / "dev.txt").read_text() == "dev in api\n"
            assert log(trees / "web" / "user-1001") == ["init"]
            assert status(ada_web) == "?? ada.txt\n"
            assert log(api_src) == log(web_src) == ["init"]

            # A stranger is refused and nothing is created for them.
            await bot.send_text("write evil.txt", user=STRANGER)
            await until("the refusal", lambda: said(bot, STRANGER, UNAUTHORIZED))
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)

        assert not any(p.name == f"user-{STRANGER.id}" for p in trees.glob("*/*"))

        # After a restart every chat is still in the project it chose.
        server = serve(tmp_path, port, bot, anthropic)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            mark_dev, mark_ada = last_id(bot, DEV), last_id(bot, ADA)
            await bot.send_text("/status", user=DEV)
            await bot.send_text("/status", user=ADA)
            await until("Dev's status", lambda: said(bot, DEV, "📋 Status", after=mark_dev))
            await until("Ada's status", lambda: said(bot, ADA, "📋 Status", after=mark_ada))
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)
    dev_status, ada_status = said(bot, DEV, "📋 Status", after=mark_dev), said(bot, ADA, "📋 Status", after=mark_ada)
    assert dev_status is not None
    assert ada_status is not None
    assert "📁 web" in (dev_status.text or "")
    assert str(trees / "web" / "user-1001") in (dev_status.text or "")
    assert "📁 web" in (ada_status.text or "")
    assert str(trees / "web" / "user-1002") in (ada_status.text or "")


def processes_in(tree: Path) -> list[int]:
    """Pids of the processes whose working directory is inside *tree* (the agents working there)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cwd = (proc / "cwd").readlink()
            except OSError:
                continue
            if cwd == tree or tree in cwd.parents:
                found.append(int(proc.name))
    return found


async def test_idle_agents_of_every_workspace_are_reaped(tmp_path: Path) -> None:
    """Each workspace's warm CLI (300-500 MB each) is closed after CLAUDE_KEEP_WARM idle, not kept until shutdown."""
    (tmp_path / "src").mkdir()
    make_repo(tmp_path / "src" / "api")
    make_repo(tmp_path / "src" / "web")
    trees = tmp_path / "trees"
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot, FakeAnthropicApi() as anthropic:
        # chosen once the fakes hold their ports: serve's port must not be one of theirs (a fake bound
        # to it after free_port() made serve fail to start and the fake deliver updates to itself)
        port = free_port()
        for user in (DEV, ADA):
            bot.add_chat(user)
        server = serve(tmp_path, port, bot, anthropic, extra={"CLAUDE_KEEP_WARM": "2"})
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await BOT.set_webhook(bot.base_url, port)
            for user, project in ((DEV, "api"), (ADA, "web")):
                switched = f"📁 Now working in {project}"
                await bot.send_text(f"/project {project}", user=user)
                await until(switched, functools.partial(said, bot, user, switched))
                anthropic.script(Reply.tool(write_file("x.txt", "x\n")), Reply.text("wrote x.txt"))
                await turn(bot, user, "write x.txt", after=last_id(bot, user))

            reaped = "closing claude process of session"
            await until(
                "both workspaces' idle agents closed",
                lambda: (tmp_path / "serve.log").read_text().count(reaped) >= 2,
                within=60,
            )
            # The log line comes as the close begins; the processes are gone once it has finished.
            await until(
                "no agent process left in either tree",
                lambda: not processes_in(trees / "api" / "user-1001") and not processes_in(trees / "web" / "user-1002"),
                within=30,
            )
            assert server.poll() is None  # the service itself runs on
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)


async def test_an_unreachable_remote_is_a_chat_error_and_the_held_prompt_waits(tmp_path: Path) -> None:
    """The remote's clone fails: the chat is told what to fix, nothing is left behind, the prompt still runs."""
    (tmp_path / "src").mkdir()
    make_repo(tmp_path / "src" / "api")
    dead = f"http://127.0.0.1:{free_port()}/team/web.git"  # nothing listens there
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot, FakeAnthropicApi() as anthropic:
        # chosen once the fakes hold their ports: serve's port must not be one of theirs (a fake bound
        # to it after free_port() made serve fail to start and the fake deliver updates to itself)
        port = free_port()
        bot.add_chat(DEV)
        server = serve(tmp_path, port, bot, anthropic, projects=f"web={dead};api={tmp_path / 'src' / 'api'}")
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await BOT.set_webhook(bot.base_url, port)
            anthropic.script(Reply.tool(write_file("kept.txt", "kept\n")), Reply.text("wrote kept.txt"))
            await bot.send_text("write kept.txt", user=DEV)
            await until("the project question", lambda: said(bot, DEV, "📁 Which project"))
            picker = said(bot, DEV, "📁 Which project")
            assert picker is not None
            await bot.press(picker.message_id, "web/j::", user=DEV)
            await until("the clone error", lambda: said(bot, DEV, "⚠️ 📁 web"))
            failure = said(bot, DEV, "⚠️ 📁 web")
            assert failure is not None
            mark = last_id(bot, DEV)
            await bot.press(picker.message_id, "api/j::", user=DEV)
            await until("the held prompt's change in api", lambda: said(bot, DEV, "📝 Changes ready", after=mark))
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)

    assert "📁 web: cannot clone" in (failure.text or "")
    assert "reach it" in (failure.text or "")
    assert not (tmp_path / "trees" / "web").exists() or not any((tmp_path / "trees" / "web").iterdir())
    assert status(tmp_path / "trees" / "api" / "user-1001") == "?? kept.txt\n"


async def test_a_prompt_held_for_the_project_choice_survives_a_restart(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    make_repo(tmp_path / "src" / "api")
    make_repo(tmp_path / "src" / "web")
    async with FakeBotApi(TOKEN, time_scale=0.02) as bot, FakeAnthropicApi() as anthropic:
        # chosen once the fakes hold their ports: serve's port must not be one of theirs (a fake bound
        # to it after free_port() made serve fail to start and the fake deliver updates to itself)
        port = free_port()
        bot.add_chat(DEV)
        server = serve(tmp_path, port, bot, anthropic)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            await BOT.set_webhook(bot.base_url, port)
            await bot.send_text("write held.txt", user=DEV)
            await until("the project question", lambda: said(bot, DEV, "📁 Which project"))
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)
        picker = said(bot, DEV, "📁 Which project")
        assert picker is not None

        anthropic.script(Reply.tool(write_file("held.txt", "held\n")), Reply.text("wrote held.txt"))
        server = serve(tmp_path, port, bot, anthropic)
        try:
            await wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            mark = last_id(bot, DEV)
            await bot.press(picker.message_id, "web/j::", user=DEV)
            await until("the held prompt's change", lambda: said(bot, DEV, "📝 Changes ready", after=mark))
        finally:
            server.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(server.wait, 60)

    chosen = said(bot, DEV, "📁 Now working in web")
    assert chosen is not None
    assert "Running the 1 message you sent before choosing" in (chosen.text or "")
    assert status(tmp_path / "trees" / "web" / "user-1001") == "?? held.txt\n"
    assert not (tmp_path / "trees" / "api").exists()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
