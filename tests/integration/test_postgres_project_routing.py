"""
With PROJECTS, a cluster routes each update to a (user, project) workspace at claim time, against a real PostgreSQL.

Two hosts: ``alpha`` lives on h1 and ``beta`` on h2 (their configured hosts). The claim follows the chat's route,
a button's project or ``/project NAME``; an outsider, an unknown project or a chat with no route goes to the lobby,
which any worker may lease; a workspace is placed on its project's host only; lane order holds across workspaces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from voicecoder.adapters.postgres.inbox import PostgresInbox
from voicecoder.adapters.postgres.leases import LOBBY, Lease, LeaseStore, OwnershipLostError, Placement
from voicecoder.adapters.postgres.project_choices import IN_HAND, InHand, PostgresProjectChoices
from voicecoder.domain.model import ChatId, UserId
from voicecoder.domain.projects import HeldKind, HeldPrompt

TTL = 3.0
ALICE, BOB, OUTSIDER = 11, 22, 99
ALLOWED = (ALICE, BOB)
PROJECTS = (("alpha", False, "h1"), ("beta", False, "h2"), ("docs", True, None))


def message(update_id: int, chat: int, user: int, text: str, topic: int | None = None) -> bytes:
    msg: dict[str, Any] = {"message_id": update_id, "chat": {"id": chat}, "from": {"id": user}, "text": text}
    if topic is not None:
        msg["message_thread_id"] = topic
    return json.dumps({"update_id": update_id, "message": msg}).encode()


def press(update_id: int, chat: int, user: int, data: str) -> bytes:
    query = {"id": str(update_id), "from": {"id": user}, "data": data, "message": {"chat": {"id": chat}}}
    return json.dumps({"update_id": update_id, "callback_query": query}).encode()


@pytest.fixture
def hosts(database_url: str) -> Iterator[tuple[LeaseStore, LeaseStore]]:
    h1 = LeaseStore(database_url, owner="h1/w", host="h1", ttl_s=TTL)
    h2 = LeaseStore(database_url, owner="h2/w", host="h2", ttl_s=TTL)
    h1.open()
    h2.open()
    h1.register_projects(PROJECTS)
    yield h1, h2
    h1.close()
    h2.close()


async def put(database_url: str, *items: tuple[int, str, bytes]) -> None:
    async with PostgresInbox(database_url) as inbox:
        for update_id, lane, body in items:
            assert await inbox.put(update_id, lane, body)


def route(database_url: str, chat: int, project: str, thread: int = 0) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO voicecoder_project_routes (chat, thread, project) VALUES (%s, %s, %s)",
            (
                chat,
                thread,
                project,
            ),
        )


def own(store: LeaseStore, placement: Placement) -> Lease:
    assert store.place(placement, f"/srv/{placement.workspace}")
    lease = store.acquire(placement.workspace)
    assert lease is not None
    return lease


def claimed(store: LeaseStore, lease: Lease) -> list[int]:
    return [item.update_id for item in store.claim_routed(lease, 16, ALLOWED)]


def done(store: LeaseStore, lease: Lease, *update_ids: int) -> None:
    for update_id in update_ids:
        store.complete(lease, update_id)


async def test_updates_reach_the_senders_workspace_of_the_routed_project_on_its_host(
    hosts: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    h1, h2 = hosts
    route(database_url, 100, "alpha")
    route(database_url, 200, "beta")
    await put(
        database_url,
        (1, "100:message", message(1, 100, ALICE, "fix the bug")),
        (2, "200:message", message(2, 200, BOB, "add a test")),
        (3, "300:message", message(3, 300, ALICE, "no project yet")),
        (4, "100:callback", press(4, 100, ALICE, "beta/a:0123abcd:0123456789abcdef")),
        (5, "400:message", message(5, 400, OUTSIDER, "let me in")),
    )
    # Each host places only what is configured on it; nothing is placed for the lobby or an outsider.
    assert set(h1.unplaced(ALLOWED)) == {Placement("alpha", ALICE)}
    assert set(h2.unplaced(ALLOWED)) == {Placement("beta", BOB), Placement("beta", ALICE)}
    alice_alpha = own(h1, Placement("alpha", ALICE))
    bob_beta = own(h2, Placement("beta", BOB))
    alice_beta = own(h2, Placement("beta", ALICE))
    # A workspace never moves: another host cannot take it, even when it is free.
    assert h1.acquire(bob_beta.workspace) is None
    lobby = h1.acquire(LOBBY)
    assert lobby is not None

    assert claimed(h1, alice_alpha) == [1]
    assert claimed(h2, bob_beta) == [2]
    assert claimed(h2, alice_beta) == [4]  # the press names beta although chat 100 works in alpha
    assert claimed(h1, lobby) == [3, 5]
    assert h1.unplaced(ALLOWED) == []
    assert h2.unplaced(ALLOWED) == []


async def test_project_command_a_topic_and_a_shared_project_route_where_they_say(
    hosts: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    h1, h2 = hosts
    route(database_url, 100, "alpha", thread=7)
    await put(
        database_url,
        (1, "100:message", message(1, 100, BOB, "/project beta")),
        (2, "100:message@7", message(2, 100, BOB, "in the alpha topic", topic=7)),
        (3, "500:message", message(3, 500, ALICE, "/project@somebot DOCS")),
        (4, "500:message", message(4, 500, BOB, "/project nosuch")),
    )
    bob_beta = own(h2, Placement("beta", BOB))
    bob_alpha = own(h1, Placement("alpha", BOB))
    # A shared project has one workspace for everyone; with no configured host the first host that looks takes it.
    assert h2.unplaced(ALLOWED) == [Placement("docs", None)]
    docs = own(h2, Placement("docs", None))
    assert docs.workspace == "p:docs:shared"
    lobby = h1.acquire(LOBBY)
    assert lobby is not None
    assert claimed(h2, bob_beta) == [1]
    assert claimed(h1, bob_alpha) == [2]
    assert claimed(h2, docs) == [3]
    assert claimed(h1, lobby) == []  # /project nosuch waits behind /project docs in chat 500's lane
    done(h2, docs, 3)
    assert claimed(h1, lobby) == [4]


async def test_a_lane_keeps_its_order_across_workspaces_and_hosts(
    hosts: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    h1, h2 = hosts
    route(database_url, 100, "alpha")
    await put(
        database_url,
        (1, "100:message", message(1, 100, ALICE, "first, in alpha")),
        (2, "100:message", message(2, 100, ALICE, "/project beta")),
        (3, "100:message", message(3, 100, BOB, "third, bob's alpha")),
    )
    alice_alpha = own(h1, Placement("alpha", ALICE))
    alice_beta = own(h2, Placement("beta", ALICE))
    bob_alpha = own(h1, Placement("alpha", BOB))
    assert claimed(h2, alice_beta) == []
    assert claimed(h1, bob_alpha) == []
    assert claimed(h1, alice_alpha) == [1]
    assert claimed(h2, alice_beta) == []  # 1 is still running
    done(h1, alice_alpha, 1)
    assert claimed(h1, bob_alpha) == []
    assert claimed(h2, alice_beta) == [2]
    done(h2, alice_beta, 2)
    assert claimed(h1, bob_alpha) == [3]


async def test_a_stale_owner_claims_nothing(hosts: tuple[LeaseStore, LeaseStore], database_url: str) -> None:
    h1, _ = hosts
    route(database_url, 100, "alpha")
    await put(database_url, (1, "100:message", message(1, 100, ALICE, "hello")))
    lease = own(h1, Placement("alpha", ALICE))
    h1.release(lease)
    other = LeaseStore(database_url, owner="h1/other", host="h1", ttl_s=TTL)
    other.open()
    try:
        newer = other.acquire(lease.workspace)
        assert newer is not None
        assert newer.epoch == lease.epoch + 1
        with pytest.raises(OwnershipLostError):
            h1.claim_routed(lease, 16, ALLOWED)
        assert claimed(other, newer) == [1]
    finally:
        other.close()


async def test_choices_and_held_prompts_are_shared_and_fenced(
    hosts: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    h1, h2 = hosts
    lobby = h1.acquire(LOBBY)
    assert lobby is not None
    chat = ChatId(300)
    on_h1, on_h2 = PostgresProjectChoices(h1), PostgresProjectChoices(h2)
    # The lobby (h1's worker) holds prompts of two users of a group chat that has no project yet.
    token = IN_HAND.set(InHand(lobby, None, None))
    try:
        assert await on_h1.chosen(chat) is None
        assert await on_h1.hold(chat, HeldPrompt(UserId(ALICE), HeldKind.PROMPT, text="alice's")) == 1
        assert await on_h1.hold(chat, HeldPrompt(UserId(BOB), HeldKind.PROMPT, text="bob's")) == 2
        await on_h1.choose(chat, "beta")
    finally:
        IN_HAND.reset(token)
    assert await on_h2.chosen(chat) == "beta"  # every worker sees the route
    # Bob's beta workspace (on h2) runs only Bob's held prompt; Alice's waits for her own workspace.
    bob_beta = own(h2, Placement("beta", BOB))
    token = IN_HAND.set(InHand(bob_beta, "beta", BOB))
    try:
        assert await on_h2.chosen(chat) == "beta"
        assert await on_h2.held(chat) == 1
        popped = await on_h2.pop_held(chat)
        assert popped is not None
        assert popped.text == "bob's"
        assert await on_h2.pop_held(chat) is None
    finally:
        IN_HAND.reset(token)
    alice_beta = own(h2, Placement("beta", ALICE))
    h2.release(alice_beta)  # a stale owner (its lease given up) takes nothing: the prompt stays for the next owner
    token = IN_HAND.set(InHand(alice_beta, "beta", ALICE))
    try:
        with pytest.raises(OwnershipLostError):
            await on_h2.pop_held(chat)
    finally:
        IN_HAND.reset(token)
    newer = h2.acquire(alice_beta.workspace)
    assert newer is not None
    token = IN_HAND.set(InHand(newer, "beta", ALICE))
    try:
        popped = await on_h2.pop_held(chat)
        assert popped is not None
        assert (popped.text, popped.user) == ("alice's", UserId(ALICE))
    finally:
        IN_HAND.reset(token)
