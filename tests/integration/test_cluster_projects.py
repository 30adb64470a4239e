"""
A cluster serving several projects: real `serve --role ingress|worker` processes on a real PostgreSQL.

Two hosts: h1 runs two workers, h2 one; project ``alpha`` lives on h1 and ``beta`` on h2 (PROJECTS_FILE ``host``).
Two developers, each in their own chat, switch between the projects and prompt in both: every prompt runs in the
sender's tree of the chosen project on that project's host (the git CLI is the oracle), in the order sent. Then
h1's owning worker is killed with -9 mid-turn: h1's other worker takes h1's workspaces over (the orphan agent
stopped first; the cut-off turn settled and offered, never run again), h2's workspaces keep their owner and epoch,
and no update is lost. A paused owner is replaced the same way and, woken, changes nothing (ADR 0030).
"""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from tests.cluster_rig import (
    TOKEN,
    RoleProcess,
    TurnInFlight,
    agent_turns,
    approve_the_settled_turn,
    git,
    inbox_rows,
    offered_again,
    running_role,
    running_worker,
    set_webhook,
    start_a_turn,
    wait_until,
)
from tests.fence_oracles import snapshot
from tests.loopback import wait_http
from voicecoder.adapters.postgres.tree_fence import agents_in
from voicecoder.simulators.bot_api import BotMessage, FakeBotApi, FakeUser

ALICE = FakeUser(id=1001, first_name="Alice", username="alice")
BOB = FakeUser(id=1002, first_name="Bob", username="bob")
HOST_OF = {"alpha": "h1", "beta": "h2"}


@pytest.fixture(name="bot_api")
async def _bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN, time_scale=0.02) as api:
        yield api


def source_repos(tmp_path: Path) -> Path:
    """Two small git repositories and the PROJECTS_FILE naming them, each on its host."""
    lines = []
    for name, host in HOST_OF.items():
        src = tmp_path / "src" / name
        src.mkdir(parents=True)
        git(src, "init", "-q", "-b", "main")
        (src / "README.md").write_text(f"# {name}\n")
        git(src, "add", "README.md")
        git(src, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "init")
        lines.append(f'[[project]]\nname = "{name}"\npath = "{src}"\nhost = "{host}"\n')
    projects = tmp_path / "projects.toml"
    projects.write_text("\n".join(lines))
    return projects


def tree(tmp_path: Path, project: str, user: FakeUser) -> Path:
    return tmp_path / HOST_OF[project] / "trees" / project / f"user-{user.id}"


def said(bot: FakeBotApi, user: FakeUser, start: str, *, after: int = 0) -> BotMessage | None:
    found = [m for m in bot.bot_messages(user.id) if m.message_id > after and (m.text or "").startswith(start)]
    return found[-1] if found else None


def last_id(bot: FakeBotApi, user: FakeUser) -> int:
    return max((m.message_id for m in bot.bot_messages(user.id)), default=0)


def leases(database_url: str) -> dict[str, tuple[str | None, int]]:
    """workspace → (owner, epoch)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, owner, epoch FROM voicecoder_workspaces").fetchall()
    return {str(ws): (owner, int(epoch)) for ws, owner, epoch in rows}


def worker_id(process: RoleProcess) -> str | None:
    found = re.search(r"worker (h\d/[0-9a-f]+): ready", process.output())
    return found.group(1) if found else None


def takeover_state(database_url: str, heir: RoleProcess) -> str:
    """What a failed takeover wait shows: every lease and the end of the heir's log."""
    tail = "\n".join(heir.output().splitlines()[-30:])
    return f"leases: {leases(database_url)}\nheir {worker_id(heir)}'s log ends:\n{tail}"


async def ready(name: str, process: RoleProcess) -> None:
    def up() -> bool:
        return worker_id(process) is not None or process.process.poll() is not None

    await wait_until(f"{name} ready", up, 60)
    assert process.process.poll() is None, process.output()


ALICE_ALPHA = f"p:alpha:u{ALICE.id}"


async def slow_turn_in_alices_alpha(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi, cluster: dict[str, RoleProcess]
) -> tuple[TurnInFlight, str, RoleProcess]:
    """Alice's slow prompt running in her alpha tree; (the turn, the name of its owning worker, h1's other worker)."""
    turn = await start_a_turn(
        bot_api,
        tmp_path,
        tree(tmp_path, "alpha", ALICE),
        lambda: leases(database_url)[ALICE_ALPHA],
        "/project alpha",
        "slowly write slow.txt",
        user=ALICE,
    )
    victim = next(name for name in ("h1a", "h1b") if worker_id(cluster[name]) == turn.owner)
    return turn, victim, cluster["h1b" if victim == "h1a" else "h1a"]


@pytest.fixture
async def cluster(tmp_path: Path, database_url: str, bot_api: FakeBotApi) -> AsyncIterator[dict[str, RoleProcess]]:
    """
    The ingress (as 'ingress', its webhook set) and the ready workers h1a, h1b, h2a.

    All three start at once: h1's two create that host's state files together (their migration is taken under the
    write lock, ADR 0030).
    """
    projects = source_repos(tmp_path)
    agent = {
        "PROJECTS_FILE": str(projects),
        "FAKE_CLAUDE_WRITE": "1",
        "FAKE_CLAUDE_HANG_ON": "slowly",
        "FAKE_CLAUDE_RECORD": str(tmp_path / "agent-turns.ndjson"),
        "AGENT_ENV_PASSTHROUGH": "FAKE_CLAUDE_WRITE FAKE_CLAUDE_HANG_ON FAKE_CLAUDE_RECORD",
    }
    users = [ALICE.id, BOB.id]
    with ExitStack() as stack:
        ingress = stack.enter_context(running_role(tmp_path, "ingress", database_url, name="ingress"))
        roles = {"ingress": ingress}
        await wait_http(ingress.url + "/readyz")
        await set_webhook(bot_api, ingress.hook)
        for name, host in (("h1a", "h1"), ("h1b", "h1"), ("h2a", "h2")):
            roles[name] = stack.enter_context(
                running_worker(
                    tmp_path,
                    database_url,
                    bot_api.base_url,
                    name,
                    host=host,
                    users=users,
                    WORKSPACES_ROOT=str(tmp_path / host / "trees"),
                    **agent,
                )
            )
        for name in ("h1a", "h1b", "h2a"):
            await ready(name, roles[name])
        yield roles


async def test_prompts_of_two_users_in_two_projects_run_in_their_trees_and_survive_kill_9(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi, cluster: dict[str, RoleProcess]
) -> None:
    # Each user sends everything at once: the lane keeps the order across workspaces and hosts, so each prompt
    # runs in the project chosen just before it.
    for user in (ALICE, BOB):
        for project in HOST_OF:
            await bot_api.send_text(f"/project {project}", user=user)
            await bot_api.send_text(f"write {project}-{user.username}.txt", user=user)
    for user in (ALICE, BOB):

        def two_changes(u: FakeUser = user) -> bool:
            return len([m for m in bot_api.bot_messages(u.id) if (m.text or "").startswith("📝")]) == 2

        await wait_until(f"{user.username}'s two changes", two_changes, 90)
    for user in (ALICE, BOB):
        for project, host in HOST_OF.items():
            where = tree(tmp_path, project, user)
            assert git(where, "status", "--porcelain", "--untracked-files=all").split() == [
                "??",
                f"{project}-{user.username}.txt",
            ], (project, user, [m.text for m in bot_api.bot_messages(user.id)])
            other = "h2" if host == "h1" else "h1"
            assert not (tmp_path / other / "trees" / project).exists(), "a workspace was created on the wrong host"
    chosen = [m.text for m in bot_api.bot_messages(ALICE.id) if (m.text or "").startswith("📁 Now working in")]
    assert [t.split()[4].rstrip(".") for t in chosen if t] == ["alpha", "beta"], chosen

    # Alice now works in beta; ✅ on her alpha change still acts in alpha (the button names its project).
    alpha_tree = tree(tmp_path, "alpha", ALICE)
    summary = next(m for m in bot_api.bot_messages(ALICE.id) if (m.text or "").startswith("📝 Changes ready"))
    assert "alpha-alice.txt" in (summary.text or "")
    approve = next(d for d in summary.callback_datas() if d.startswith("alpha/a:"))
    await bot_api.press(summary.message_id, approve, user=ALICE)
    await wait_until("the alpha commit", lambda: git(alpha_tree, "rev-list", "--count", "HEAD").strip() == "2", 60)
    assert git(alpha_tree, "log", "-1", "--name-only", "--format=").split() == ["alpha-alice.txt"]
    assert git(tree(tmp_path, "beta", ALICE), "rev-list", "--count", "HEAD").strip() == "1"

    # Kill -9 of the worker that owns Alice's alpha workspace, mid-turn.
    before = leases(database_url)
    mark = last_id(bot_api, ALICE)
    turn, victim, heir = await slow_turn_in_alices_alpha(tmp_path, database_url, bot_api, cluster)
    owner, epoch = turn.owner, turn.epoch
    h2_before = {ws: lease for ws, lease in leases(database_url).items() if ws.startswith("p:beta:")}
    cluster[victim].kill()

    heir_id = worker_id(heir)
    await wait_until(
        "the takeover",
        lambda: leases(database_url)[ALICE_ALPHA] == (heir_id, epoch + 1),
        60,
        explain=lambda: takeover_state(database_url, heir),
    )
    await wait_until("the offer to run it again", lambda: offered_again(bot_api, ALICE, after=mark) is not None, 60)
    await wait_until(
        "every update done",
        lambda: all(state == "done" for state, _ in inbox_rows(database_url).values()),
        60,
    )
    assert agent_turns(tmp_path).count("slowly write slow.txt") == 1, "the cut-off prompt ran again"
    assert agents_in(alpha_tree) == []
    log = heir.output()
    assert log.index("fence: stopped") < log.index(f"owns workspace {ALICE_ALPHA} at epoch {epoch + 1}"), log
    # h2's workspaces were never touched; every h1 workspace the dead worker held is now the heir's.
    assert {ws: lease for ws, lease in leases(database_url).items() if ws.startswith("p:beta:")} == h2_before
    # Each lease of the dead worker expires on its own clock: wait for the heir to hold every one of them.
    held_by_the_dead = sorted(ws for ws, (was, _) in before.items() if ws.startswith("p:alpha:") and was == owner)
    await wait_until(
        "the heir holds every alpha workspace the dead worker held",
        lambda: all(leases(database_url)[ws][0] == heir_id for ws in held_by_the_dead),
        60,
    )
    assert "slow.txt" in git(alpha_tree, "status", "--porcelain", "--untracked-files=all")
    rows = inbox_rows(database_url)
    assert len(rows) == 11, rows  # 2 users x 2 projects x (/project + prompt), ✅, /project and the slow prompt
    assert rows[max(rows)] == ("done", 2), "the cut-off prompt was not delivered again to be settled"


async def test_a_held_prompt_survives_the_death_of_the_worker_that_asked(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi, cluster: dict[str, RoleProcess]
) -> None:
    """A chat with no project is asked by the lobby's owner; killed, its held prompt still runs once chosen."""
    await bot_api.send_text("write held.txt", user=BOB)
    await wait_until("the project question", lambda: said(bot_api, BOB, "📁 Which project") is not None, 60)
    picker = said(bot_api, BOB, "📁 Which project")
    assert picker is not None
    owner, epoch = leases(database_url)["lobby"]
    victim = next(name for name in ("h1a", "h1b", "h2a") if worker_id(cluster[name]) == owner)
    project = "beta" if victim.startswith("h1") else "alpha"  # a project whose host keeps a worker
    cluster[victim].kill()
    await wait_until("the lobby's takeover", lambda: leases(database_url)["lobby"][1] == epoch + 1, 60)

    choice = next(d for d in picker.callback_datas() if d.startswith(f"{project}/"))
    await bot_api.press(picker.message_id, choice, user=BOB)
    where = tree(tmp_path, project, BOB)
    await wait_until("the held prompt's change", lambda: said(bot_api, BOB, "📝") is not None, 60)
    assert git(where, "status", "--porcelain", "--untracked-files=all").split() == ["??", "held.txt"]
    assert agent_turns(tmp_path) == ["write held.txt"]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM voicecoder_held_prompts").fetchone() == (0,)
        route = conn.execute("SELECT project FROM voicecoder_project_routes WHERE chat = %s", (BOB.id,)).fetchone()
    assert route == (project,)


async def test_a_paused_owner_of_a_project_workspace_changes_nothing_when_it_wakes(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi, cluster: dict[str, RoleProcess]
) -> None:
    """
    SIGSTOP of the worker owning Alice's alpha workspace mid-turn: h1's other worker kills it (it holds the tree's
    lock), fences the workspace's state, settles and offers the turn; Alice approves through the new owner. On
    SIGCONT nothing changes: the tree, its refs, the state rows and the bot's messages stay as the heir left them.
    """
    alpha_tree = tree(tmp_path, "alpha", ALICE)
    state = tmp_path / "h1" / "data" / "projects" / "alpha" / f"user-{ALICE.id}.sqlite3"
    turn, victim, heir = await slow_turn_in_alices_alpha(tmp_path, database_url, bot_api, cluster)
    epoch = turn.epoch
    paused = cluster[victim].process
    paused.send_signal(signal.SIGSTOP)
    try:
        await wait_until(
            "the takeover",
            lambda: leases(database_url)[ALICE_ALPHA] == (worker_id(heir), epoch + 1),
            60,
            explain=lambda: takeover_state(database_url, heir),
        )
        await approve_the_settled_turn(bot_api, turn, approve="alpha/a:", user=ALICE)
        await wait_until("every update done", lambda: all(s == "done" for s, _ in inbox_rows(database_url).values()))
        before = snapshot(alpha_tree, state, bot_api)
    finally:
        paused.send_signal(signal.SIGCONT)
    await wait_until("the old owner is gone", lambda: paused.poll() is not None)
    after = snapshot(alpha_tree, state, bot_api)

    assert paused.returncode == -signal.SIGKILL
    assert after == before
    assert before["rows"]["owner_fence"] == [(1, ALICE_ALPHA, epoch + 1)]
    assert f"stale holder(s) of the lock of {alpha_tree}: [{paused.pid}]" in heir.output()
    assert agent_turns(tmp_path).count("slowly write slow.txt") == 1
    assert git(alpha_tree, "log", "-1", "--name-only", "--format=").split() == ["slow.txt"]
