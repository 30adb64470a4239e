"""
Chaos against the cluster: real `serve --role ingress|worker` processes, a real PostgreSQL, Telegram played by the
fake Bot API delivering by webhook (through a per-request balancer when there are two ingress replicas).

What must hold whatever is killed or paused: no acknowledged update lost; none handled twice except the documented
case (an update whose worker died after its handler ran and before its "done" was committed runs again: at least
once); no lane inversion; never two agents in one tree; the change an interrupted turn left is kept for review;
a prompt cut off mid-turn is never run again silently (ADR 0023); a paused owner changes nothing when it wakes
(ADR 0030).

The agent is the fake CLI (`tests/fakes/fake_claude.py`); where a turn must still be running when the worker goes,
it hangs, and the test edits the tree the way the agent would have before it was cut off.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from tests.cluster_rig import (
    TOKEN,
    RoleProcess,
    RoundRobin,
    TurnInFlight,
    agent_turns,
    approve_the_settled_turn,
    git,
    inbox_rows,
    lease_row,
    running_role,
    running_worker,
    set_webhook,
    start_a_turn,
    wait_until,
)
from tests.fence_oracles import snapshot
from tests.loopback import wait_http
from voicecoder.adapters.postgres.tree_fence import agents_in
from voicecoder.simulators.bot_api import DEFAULT_USER, FakeBotApi, FakeUser
from voicecoder.testing.postgres_server import PostgresServer

HANG = "\n".join(
    [
        json.dumps({"type": "system", "subtype": "init", "session_id": "@SESSION_ID@", "model": "fake-model"}),
        json.dumps({"@hang": True}),
    ]
)


@pytest.fixture(name="bot_api")
async def _bot_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(TOKEN, time_scale=0.02) as api:
        yield api


def hanging_agent(tmp_path: Path) -> dict[str, str]:
    """Agent settings for workers whose every turn hangs, recording each turn it starts."""
    script = tmp_path / "hang.ndjson"
    script.write_text(HANG + "\n")
    return {
        "FAKE_CLAUDE_SCRIPT": str(script),
        "FAKE_CLAUDE_RECORD": str(tmp_path / "agent-turns.ndjson"),
        "AGENT_ENV_PASSTHROUGH": "FAKE_CLAUDE_SCRIPT FAKE_CLAUDE_RECORD",
    }


async def own_and_standby(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi, *, users: list[int], **extra: str
) -> AsyncGenerator[tuple[RoleProcess, RoleProcess], None]:
    """Two workers of host h1, started one after the other; yields (owner, standby)."""
    with running_worker(tmp_path, database_url, bot_api.base_url, "w1", host="h1", users=users, **extra) as w1:
        await wait_until("w1 owns the workspace", lambda: lease_row(database_url)[0] is not None)
        with running_worker(tmp_path, database_url, bot_api.base_url, "w2", host="h1", users=users, **extra) as w2:
            await wait_until("w2 is ready", lambda: "waiting for a lease" in w2.output())
            yield w1, w2


@asynccontextmanager
async def owner_mid_turn(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi, prompt: str
) -> AsyncIterator[tuple[RoleProcess, RoleProcess, TurnInFlight]]:
    """
    The ingress and two workers of h1 (their agents hang); *prompt* running on the owner, which has written
    ``notes.txt`` the way an agent would before it is cut off. Yields (owner, standby, the turn).
    """
    with running_role(tmp_path, "ingress", database_url, name="ingress") as ingress:
        await wait_http(ingress.url + "/readyz")
        await set_webhook(bot_api, ingress.hook)
        workers = own_and_standby(tmp_path, database_url, bot_api, users=[DEFAULT_USER.id], **hanging_agent(tmp_path))
        owner, standby = await workers.__anext__()
        try:
            turn = await start_a_turn(
                bot_api, tmp_path, tmp_path / "h1" / "ws", lambda: lease_row(database_url), prompt
            )
            (turn.tree / "notes.txt").write_text("half done\n")
            yield owner, standby, turn
        finally:
            await workers.aclose()


async def test_kill_9_of_the_owner_mid_turn_settles_the_turn_and_asks(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi
) -> None:
    """
    The owner dies while its agent runs: the orphan agent is stopped before the new owner touches the tree, the
    redelivered prompt is settled (its edit becomes a change to review) and offered, not run; ✅ commits it once.
    """
    async with owner_mid_turn(tmp_path, database_url, bot_api, "write the notes") as (owner, standby, turn):
        owner.kill()
        await wait_until("a takeover", lambda: lease_row(database_url)[1] == turn.epoch + 1)
        await approve_the_settled_turn(bot_api, turn)
        takeover_log = standby.output()

    tree, orphans, epoch = turn.tree, turn.agents, turn.epoch
    assert orphans, "the agent was not running when its worker was killed"
    assert agents_in(tree) == []
    assert agent_turns(tmp_path) == ["write the notes"], "the cut-off prompt ran again without being asked"
    stopped_at = takeover_log.index("fence: stopped")
    assert stopped_at < takeover_log.index(f"at epoch {epoch + 1}"), takeover_log
    assert git(tree, "log", "-1", "--name-only", "--format=").split() == ["notes.txt"]
    assert git(tree, "rev-list", "--count", "HEAD").strip() == "2"  # the initial commit and this one, once
    assert (tree / "notes.txt").read_text() == "half done\n"


async def test_a_paused_owner_is_replaced_and_changes_nothing_when_it_wakes(
    tmp_path: Path, database_url: str, bot_api: FakeBotApi
) -> None:
    """
    SIGSTOP of the owner mid-turn (its agent keeps running) past its lease: the standby takes over — it stops that
    agent, kills the paused owner that still holds the tree's lock (ADR 0030), fences the state at its epoch — then
    settles the turn, offers it again and commits the change on ✅. On SIGCONT the old owner never runs again: the
    tree, its refs, the state rows and everything the bot sent are exactly as the new owner left them.
    """
    state = tmp_path / "h1" / "data" / "state.sqlite3"
    async with owner_mid_turn(tmp_path, database_url, bot_api, "long job") as (owner, standby, turn):
        owner.process.send_signal(signal.SIGSTOP)
        try:
            await wait_until("a takeover", lambda: lease_row(database_url)[1] == turn.epoch + 1)
            await approve_the_settled_turn(bot_api, turn)
            await wait_until(
                "every update done", lambda: all(s == "done" for s, _ in inbox_rows(database_url).values())
            )
            before = snapshot(turn.tree, state, bot_api)
        finally:
            owner.process.send_signal(signal.SIGCONT)
        await wait_until("the old owner is gone", lambda: owner.process.poll() is not None)
        after = snapshot(turn.tree, state, bot_api)
        owner_log, standby_log = owner.output(), standby.output()

    tree, agent, first_owner, epoch = turn.tree, turn.agents, turn.owner, turn.epoch
    assert agent, "the agent was not running when its worker was paused"
    assert first_owner is not None
    assert first_owner in owner_log
    assert owner.process.returncode == -signal.SIGKILL
    assert after == before
    assert agent_turns(tmp_path) == ["long job"]
    assert f"killed 1 stale holder(s) of the lock of {tree}: [{owner.process.pid}]" in standby_log
    assert standby_log.index("fence: stopped") < standby_log.index(f"at epoch {epoch + 1}"), standby_log
    assert lease_row(database_url)[1] == epoch + 1
    assert before["rows"]["owner_fence"] == [(1, "default", epoch + 1)]
    assert git(tree, "log", "-1", "--name-only", "--format=").split() == ["notes.txt"]


async def test_a_burst_through_two_ingresses_survives_kill_9_of_an_ingress_a_worker_and_postgres(
    tmp_path: Path, postgres_server: PostgresServer, database_url: str, bot_api: FakeBotApi
) -> None:
    """
    2 ingress replicas behind a per-request balancer, 3 workers (two on the workspace's host, one elsewhere),
    2 chats × 8 prompts (two, so both sessions' agents stay warm and a turn takes milliseconds). Mid-burst:
    kill -9 of one ingress, of the owning worker and of PostgreSQL (restarted).
    Every update Telegram saw acknowledged is processed; each chat's answers come in the order it wrote.
    """
    users = [FakeUser(2000 + n, first_name=f"U{n}") for n in range(2)]
    for user in users:
        bot_api.add_chat(user)
    ids = [u.id for u in users]
    with (
        running_role(tmp_path, "ingress", database_url, name="ingress-a") as a,
        running_role(tmp_path, "ingress", database_url, name="ingress-b") as b,
    ):
        await wait_http(a.url + "/readyz")
        await wait_http(b.url + "/readyz")
        async with RoundRobin([a.url, b.url]) as balancer:
            await set_webhook(bot_api, balancer.hook)
            workers = own_and_standby(tmp_path, database_url, bot_api, users=ids)
            w1, w2 = await workers.__anext__()
            try:
                with running_worker(tmp_path, database_url, bot_api.base_url, "w3", host="h2", users=ids) as w3:
                    await wait_until("w3 is ready", lambda: "waiting for a lease" in w3.output())
                    owner_id, _ = lease_row(database_url)
                    assert owner_id is not None
                    owner = w1 if owner_id in w1.output() else w2
                    for round_ in range(8):
                        for user in users:
                            await bot_api.send_text(f"m{round_}", user=user)
                        if round_ == 2:
                            await wait_until("some acks", lambda: len(bot_api.webhook_deliveries) >= 4)
                            a.kill()
                        if round_ == 4:
                            owner.kill()
                        if round_ == 6:
                            await anyio.to_thread.run_sync(postgres_server.kill)
                            await anyio.to_thread.run_sync(postgres_server.start)
                    await bot_api.drain(within=120)
                    acked = {u for u, status in bot_api.webhook_deliveries if status == 200}
                    await wait_until(
                        "every acknowledged update done",
                        lambda: all(inbox_rows(database_url).get(u, ("", 0))[0] == "done" for u in acked),
                        within=120,
                    )
                    w3_log = w3.output()
            finally:
                await workers.aclose()

    rows = inbox_rows(database_url)
    assert len(acked) == 16
    assert acked <= set(rows)
    assert "owns workspace" not in w3_log  # the tree is on h1: a worker elsewhere never takes it
    twice = [u for u, (_, attempts) in rows.items() if attempts > 1]
    assert len(twice) <= 3, twice  # only items in flight at a kill may run again (at least once)
    for user in users:
        # Sends and edits in the order the bot made them (a reply later edited into something else still counts);
        # a prompt cut off by a kill is answered by the offer to run it again, which quotes it.
        said = [e.get("text") or "" for e in bot_api.transcript(chat_id=user.id) if e["side"] == "bot"]
        answered = [
            int(found.group(1))
            for text in said
            if (found := re.search(r"Echo: m(\d+)", text) or re.search(r"^↩️ Not run again.*\bm(\d+)", text, re.DOTALL))
        ]
        firsts = list(dict.fromkeys(answered))
        assert sorted(firsts) == list(range(8)), (user.id, said)
        assert firsts == sorted(firsts), (user.id, said)  # no lane inversion
