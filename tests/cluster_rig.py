"""Cluster roles as real subprocesses (`voicecoder serve --role …`) against the session's PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Self

import aiohttp
import anyio
import attrs
import psycopg
from aiohttp import web

from tests.loopback import free_port
from tests.serve_rig import cli_env, start_cli
from voicecoder.adapters.postgres.tree_fence import agents_in
from voicecoder.simulators.bot_api import DEFAULT_USER, BotMessage, FakeBotApi, FakeUser

WEBHOOK_PATH = "/tg/cluster-hook-path-0123456789"
WEBHOOK_SECRET = "cluster-secret-token-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@attrs.define
class RoleProcess:
    """One `serve --role …` process; its output goes to a file, read by `output`."""

    process: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hook(self) -> str:
        return self.url + WEBHOOK_PATH

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: a crash, nothing runs after it."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait: a graceful stop; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def role_environment(tmp_path: Path, database_url: str | None, port: int, **extra: str) -> dict[str, str]:
    defaults = {
        "DATA_DIR": str(tmp_path / "data"),
        "WORKSPACE_DIR": str(tmp_path / "ws"),
        "LOG_LEVEL": "INFO",
        "LISTEN_PORT": str(port),
        "WEBHOOK_PATH": WEBHOOK_PATH,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DATABASE_URL": database_url,
    }
    return cli_env(tmp_path, **{**defaults, **extra})  # *extra* overrides (a worker names its host's dirs)


@contextlib.contextmanager
def running_role(
    tmp_path: Path,
    role: str,
    database_url: str | None,
    *,
    name: str,
    extra_args: tuple[str, ...] = (),
    **extra: str,
) -> Iterator[RoleProcess]:
    """Start `voicecoder serve --role ROLE` in *tmp_path*/*name*; stopped (SIGTERM, then SIGKILL) on exit."""
    home = tmp_path / name
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "output.log"
    env = role_environment(home, database_url, port, **extra)
    process = start_cli(home, env, "serve", "--role", role, *extra_args, log=log)
    handle = RoleProcess(process, log, port)
    try:
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@attrs.define
class RoundRobin:
    """
    A per-request L7 balancer on 127.0.0.1 (Caddy's ``lb_policy round_robin``): each request goes to the next
    backend; one that cannot be reached is answered 502, and Telegram (the fake Bot API) delivers again.
    """

    backends: list[str]
    forwarded: list[tuple[str, int]] = attrs.field(factory=list)
    _runner: web.AppRunner | None = None
    _next: int = 0
    port: int = 0

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def hook(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    async def _forward(self, request: web.Request) -> web.Response:
        backend = self.backends[self._next % len(self.backends)]
        self._next += 1
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in {SECRET_HEADER.lower(), "content-type"}}
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.request(request.method, backend + request.path, data=body, headers=headers) as answer,
            ):
                payload = await answer.read()
                self.forwarded.append((backend, answer.status))
                retry = {"Retry-After": answer.headers["Retry-After"]} if "Retry-After" in answer.headers else {}
                return web.Response(status=answer.status, body=payload, headers=retry)
        except aiohttp.ClientError:
            self.forwarded.append((backend, 502))
            return web.Response(status=502, text="Bad Gateway")


FAKE_CLAUDE = Path(__file__).resolve().parent / "fakes" / "fake_claude.py"
TOKEN = "7777777:cluster-worker-token-not-a-real-one-abcdef"
# Long enough that a loaded machine (load average 13 on 2 cores seen) does not lapse a lease, nor starve a worker
# past its idle-in-transaction limit (half a lease, ADR 0035), by itself: at 3 s a run lost the heir's lease once.
LEASE_TTL = "5"


def worker_env(bot_api_url: str, host_dir: Path, users: Iterable[int], **extra: str) -> dict[str, str]:
    """A worker of host *host_dir* (its workspace tree and DATA_DIR are shared by that host's workers)."""
    return {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_BASE_URL": bot_api_url,
        "ALLOWED_USER_IDS": ",".join(str(u) for u in users),
        "WORKSPACE_DIR": str(host_dir / "ws"),
        "DATA_DIR": str(host_dir / "data"),
        "CLAUDE_BINARY": str(FAKE_CLAUDE),
        "STT_PROVIDER": "local",
        "TOOL_APPROVAL": "off",
        **extra,
    }


@contextlib.contextmanager
def running_worker(
    tmp_path: Path,
    database_url: str,
    bot_api_url: str,
    name: str,
    *,
    host: str,
    users: Iterable[int],
    ttl: str = LEASE_TTL,
    **extra: str,
) -> Iterator[RoleProcess]:
    with running_role(
        tmp_path, "worker", database_url, name=name, extra_args=("--host-id", host, "--lease-ttl", ttl),
        **worker_env(bot_api_url, tmp_path / host, users, **extra),
    ) as process:  # fmt: skip
        yield process


def lease_row(database_url: str) -> tuple[str | None, int]:
    """(owner, epoch) of the default workspace."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT owner, epoch FROM voicecoder_workspaces WHERE id = 'default'").fetchone()
    return (None, 0) if row is None else (row[0], int(row[1]))


def inbox_rows(database_url: str) -> dict[int, tuple[str, int]]:
    """update_id → (state, attempts)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT update_id, state, attempts FROM voicecoder_inbox").fetchall()
    return {int(u): (str(s), int(a)) for u, s, a in rows}


async def wait_until(
    what: str, predicate: Callable[[], object], within: float = 30.0, *, explain: Callable[[], str] | None = None
) -> None:
    """Poll *predicate* until it is true; fail naming *what* (and what *explain* says then) after *within* s."""
    deadline = anyio.current_time() + within
    while not predicate():
        if anyio.current_time() > deadline:
            detail = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {within:g} s waiting for: {what}{detail}")
        await anyio.sleep(0.05)


# --- the scenario the chaos tests share: a turn cut off on its owner, settled and approved by the next ------------


def git(tree: Path, *args: str) -> str:
    """The git CLI in *tree* (the oracle); its stdout."""
    return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=True).stdout


async def set_webhook(bot_api: FakeBotApi, url: str) -> None:
    """Register *url* (and the cluster's secret) with the fake Bot API, as `voicecoder webhook set` would."""
    async with aiohttp.ClientSession() as http:
        await http.post(f"{bot_api.base_url}/bot{TOKEN}/setWebhook", json={"url": url, "secret_token": WEBHOOK_SECRET})


def agent_turns(record_dir: Path) -> list[str]:
    """The prompts the fake agent was started with, in order (``FAKE_CLAUDE_RECORD`` in *record_dir*)."""
    record = record_dir / "agent-turns.ndjson"
    if not record.exists():
        return []
    return [json.loads(line)["stdin"] for line in record.read_text().splitlines() if '"stdin"' in line]


@attrs.frozen
class TurnInFlight:
    """A prompt whose agent is running in *tree*, and the lease of its workspace when it was seen running."""

    tree: Path
    owner: str | None
    epoch: int
    agents: list[int]


async def start_a_turn(
    bot_api: FakeBotApi,
    record_dir: Path,
    tree: Path,
    lease: Callable[[], tuple[str | None, int]],
    *texts: str,
    user: FakeUser = DEFAULT_USER,
) -> TurnInFlight:
    """
    Send *texts* (the last one the prompt) and wait until the agent runs that prompt in *tree*.

    *lease* reads (owner, epoch) of the workspace the prompt runs in; it is read once the agent works.
    """
    for text in texts:
        await bot_api.send_text(text, user=user)
    prompt = texts[-1]
    await wait_until("the agent's turn started", lambda: prompt in agent_turns(record_dir), 60)
    await wait_until("the agent works in the tree", lambda: agents_in(tree) != [], 60)
    owner, epoch = lease()
    return TurnInFlight(tree, owner, epoch, agents_in(tree))


def offered_again(bot_api: FakeBotApi, user: FakeUser = DEFAULT_USER, *, after: int = 0) -> BotMessage | None:
    """The 'not run again' offer (ADR 0023) the bot sent in *user*'s chat after message *after*, if any."""
    found = [
        m
        for m in bot_api.bot_messages(user.id)
        if m.message_id > after and (m.text or "").startswith("↩️ Not run again")
    ]
    return found[-1] if found else None


async def approve_the_settled_turn(
    bot_api: FakeBotApi, turn: TurnInFlight, *, approve: str = "a:", user: FakeUser = DEFAULT_USER
) -> None:
    """
    After a takeover: wait until the cut-off turn is offered again (not run) and its change is up for review, press
    ✅ (the button whose data starts with *approve*), and wait for the commit in the turn's tree.
    """

    def summary() -> BotMessage | None:
        return next(
            (m for m in bot_api.bot_messages(user.id) if any(d.startswith(approve) for d in m.callback_datas())), None
        )

    await wait_until("the offer to run it again", lambda: offered_again(bot_api, user) is not None, 60)
    await wait_until("the change to review", lambda: summary() is not None, 60)
    change = summary()
    assert change is not None
    head = git(turn.tree, "rev-parse", "HEAD")
    await bot_api.press(change.message_id, next(d for d in change.callback_datas() if d.startswith(approve)), user=user)
    await wait_until("the commit", lambda: git(turn.tree, "rev-parse", "HEAD") != head, 60)
