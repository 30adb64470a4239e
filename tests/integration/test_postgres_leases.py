"""Leases, fencing epochs, the per-lane claim and the shared send budget, against a real PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anyio
import psycopg
import pytest

from voicecoder.adapters.postgres.inbox import PostgresInbox
from voicecoder.adapters.postgres.leases import DEFAULT_WORKSPACE, Lease, LeaseStore, OwnershipLostError
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.inbox import NewUpdate

TTL = 3.0  # long enough that a loaded machine does not lapse a lease mid-test


def _body(update_id: int) -> bytes:
    return json.dumps({"update_id": update_id}).encode()


@pytest.fixture
def stores(database_url: str) -> Iterator[tuple[LeaseStore, LeaseStore]]:
    """Two workers on one host (same-host takeover is possible), both with the test ttl."""
    first = LeaseStore(database_url, owner="h1/first", host="h1", ttl_s=TTL)
    second = LeaseStore(database_url, owner="h1/second", host="h1", ttl_s=TTL)
    first.open()
    second.open()
    first.register(DEFAULT_WORKSPACE, "/srv/ws")
    yield first, second
    first.close()
    second.close()


async def put(database_url: str, *items: tuple[int, str]) -> None:
    async with PostgresInbox(database_url) as inbox:
        for update_id, lane in items:
            assert await inbox.put(update_id, lane, _body(update_id))


def states(database_url: str) -> dict[int, tuple[str, int, str | None, int | None]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT update_id, state, attempts, owner, epoch FROM voicecoder_inbox").fetchall()
    return {int(r[0]): (str(r[1]), int(r[2]), r[3], r[4]) for r in rows}


def take_over(store: LeaseStore) -> Lease:
    """Acquire as soon as the database lets us (after the holder's ttl), polling; fails after 10 s."""
    deadline = time.monotonic() + 10
    while (lease := store.acquire(DEFAULT_WORKSPACE)) is None:
        assert time.monotonic() < deadline, "the lease never lapsed"
        time.sleep(0.05)
    return lease


def test_one_owner_at_a_time_and_a_new_epoch_on_every_takeover(stores: tuple[LeaseStore, LeaseStore]) -> None:
    first, second = stores
    lease = first.acquire(DEFAULT_WORKSPACE)
    assert lease is not None
    assert second.acquire(DEFAULT_WORKSPACE) is None
    assert lease.live()
    assert lease.deadline <= time.monotonic() + TTL - first.margin_s

    taken = take_over(second)

    assert (lease.epoch, taken.epoch) == (1, 2)
    with pytest.raises(OwnershipLostError):
        first.renew(lease)
    renewed = second.renew(taken)
    assert renewed.epoch == 2
    assert renewed.deadline >= taken.deadline


def test_the_lease_pool_connects_like_every_other_connection(
    stores: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    """Keepalives notice a dead server (a lease store that hangs on it would hold the lease it can no longer
    renew); the server sees the same application name and the idle-in-transaction limit of half a lease."""
    first, _ = stores

    def settings(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[dict[str, str], str, str]:
        row = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        name = conn.execute("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()").fetchone()
        assert row is not None
        assert name is not None
        return conn.info.get_parameters(), str(row[0]), str(name[0])

    parameters, idle_limit, application = first.run("read the session's settings", settings)

    assert {k: parameters.get(k) for k in ("keepalives", "keepalives_idle", "connect_timeout")} == {
        "keepalives": "1",
        "keepalives_idle": "5",
        "connect_timeout": "5",
    }
    assert application == "voicecoder"
    assert idle_limit == "2s"  # half of the 3 s lease, at least 2 s (ADR 0035)


def test_another_host_never_takes_the_workspace(stores: tuple[LeaseStore, LeaseStore], database_url: str) -> None:
    """Leases give safety, not mobility: a free workspace whose tree is on h1 is never taken by h2."""
    elsewhere = LeaseStore(database_url, owner="h2/w", host="h2", ttl_s=TTL)
    elsewhere.open()
    try:
        assert elsewhere.acquire(DEFAULT_WORKSPACE) is None
    finally:
        elsewhere.close()


async def test_a_stale_owner_changes_nothing(stores: tuple[LeaseStore, LeaseStore], database_url: str) -> None:
    """After a takeover every write of the old epoch raises OwnershipLostError and leaves the rows as they were."""
    first, second = stores
    await put(database_url, (1, "7:message"), (2, "8:message"))
    old = first.acquire(DEFAULT_WORKSPACE)
    assert old is not None
    claimed = first.claim(10)
    first.attempt(old, 1)
    assert [i.update_id for i in claimed] == [1, 2]

    new = await anyio.to_thread.run_sync(take_over, second)
    after_takeover = states(database_url)
    for write in (
        lambda: first.complete(old, 1),
        lambda: first.fail(old, 2, "late"),
        lambda: first.record_error(old, 1, "late"),
        lambda: first.attempt(old, 1),
        lambda: first.take_send(old),
    ):
        with pytest.raises(OwnershipLostError):
            write()

    assert states(database_url) == after_takeover
    # The takeover gave the old owner's running items back, attempts kept, and they are claimable in order.
    assert after_takeover[1] == ("pending", 1, None, 1)
    assert [i.update_id for i in second.claim(10)] == [1, 2]
    second.complete(new, 1)
    assert states(database_url)[1][0] == "done"


def test_an_owner_paused_inside_a_transaction_blocks_neither_the_takeover_nor_the_sends(
    stores: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    """
    The owner stops (SIGSTOP, a frozen VM) between two statements of a transaction holding its workspace row and
    the send budget row: the server ends that session, so the next owner takes the workspace once the lease lapses,
    another worker's send is not held up for longer than that, and the woken owner's transaction fails.
    """
    first, second = stores
    elsewhere = LeaseStore(database_url, owner="h2/w", host="h2", ttl_s=TTL)
    elsewhere.open()
    elsewhere.register("ws2", "/srv/ws2")
    other = elsewhere.acquire("ws2")
    old = first.acquire(DEFAULT_WORKSPACE)
    assert other is not None
    assert old is not None
    elsewhere.take_send(other)  # the budget row exists
    locked, wake = threading.Event(), threading.Event()

    def paused(conn: psycopg.Connection[object]) -> None:
        conn.execute("SELECT 1 FROM voicecoder_workspaces WHERE id = %s FOR UPDATE", (DEFAULT_WORKSPACE,))
        conn.execute("UPDATE voicecoder_send_budget SET tokens = tokens WHERE id = 1")
        locked.set()
        wake.wait(60)

    with ThreadPoolExecutor(3) as pool:
        holder = pool.submit(first.run, "pause inside a transaction", paused)
        assert locked.wait(10)
        send = pool.submit(elsewhere.take_send, other)
        takeover = pool.submit(take_over, second)
        try:
            # Bounded waits: without the server ending the paused session both calls would block for good.
            assert send.result(timeout=first.idle_in_transaction_s + 10) >= 0.0
            new = takeover.result(timeout=TTL + first.idle_in_transaction_s + 10)
        finally:
            wake.set()
        assert new.epoch == old.epoch + 1
        with pytest.raises(StateStoreError, match="failed to pause inside a transaction"):
            holder.result(timeout=10)
    with pytest.raises(OwnershipLostError):
        first.renew(old)
    elsewhere.close()


async def test_a_lane_runs_one_item_at_a_time_in_order(
    stores: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    """Only a lane's oldest open item is claimable; the callback lane of the same chat is not held up."""
    first, _ = stores
    await put(database_url, (1, "5:message"), (2, "5:message"), (3, "5:callback"), (4, "6:message"))
    lease = first.acquire(DEFAULT_WORKSPACE)
    assert lease is not None

    claimed = [i.update_id for i in first.claim(10)]
    again = first.claim(10)
    first.complete(lease, 1)
    then = [i.update_id for i in first.claim(10)]

    assert claimed == [1, 3, 4]
    assert again == []
    assert then == [2]
    # The backstop: whatever a claim got wrong, the database refuses a second running item in a lane.
    with psycopg.connect(database_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO voicecoder_inbox (update_id, lane, body, received_at, state) "
                     "VALUES (9, '5:message', '\\x7b7d', 0, 'running')")  # fmt: skip


async def test_concurrent_claimers_keep_every_lane_in_order(
    stores: tuple[LeaseStore, LeaseStore], database_url: str
) -> None:
    """Eight threads claim and complete 600 items over 20 lanes: never two running in a lane, done in order."""
    first, _ = stores
    items = [(n, f"{n % 20}:message") for n in range(1, 601)]
    async with PostgresInbox(database_url) as inbox:
        await inbox.put_many([NewUpdate(n, lane, _body(n)) for n, lane in items])
    lease = first.acquire(DEFAULT_WORKSPACE)
    assert lease is not None
    live_lease = lease
    completed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def claimer() -> None:
        nonlocal live_lease
        idle = 0
        while idle < 50:
            try:
                batch = first.claim(5)
            except Exception:  # a unique-index refusal under contention is a claim that got nothing
                batch = []
            if not batch:
                idle += 1
                time.sleep(0.005)
                continue
            idle = 0
            for item in batch:
                with lock:
                    if not live_lease.live(time.monotonic() + 0.3):
                        live_lease = first.renew(live_lease)
                    current = live_lease
                first.complete(current, item.update_id)
                with lock:
                    completed.append((item.lane, item.update_id))

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(n for _, n in completed) == list(range(1, 601))
    for lane in {lane for _, lane in items}:
        order = [n for lane_of, n in completed if lane_of == lane]
        assert order == sorted(order), lane


def test_the_send_budget_is_shared_by_all_workers(database_url: str) -> None:
    """
    Two workers of two workspaces take 90 sends at once: after a burst of 30 the waits space them at 30/s bot-wide.

    The check holds however slowly the takes run: the i-th send is scheduled no earlier than (i - 30) / 30 s after
    the first take, and no wait exceeds what 60 sends beyond the burst need.
    """
    workers = [LeaseStore(database_url, owner=f"h{n}/w", host=f"h{n}", ttl_s=120) for n in (1, 2)]
    leases = []
    for n, store in enumerate(workers, start=1):
        store.open()
        store.register(f"ws{n}", f"/srv/ws{n}")
        lease = store.acquire(f"ws{n}")
        assert lease is not None
        leases.append(lease)
    try:
        start = time.monotonic()
        schedule, waits = [], []
        for n in range(90):
            wait = workers[n % 2].take_send(leases[n % 2])
            waits.append(wait)
            schedule.append(time.monotonic() - start + wait)
    finally:
        for store in workers:
            store.close()
    assert waits[:25] == [0.0] * 25
    assert max(waits) <= 60 / 30 + 0.05
    for i, at in enumerate(schedule, start=1):
        assert at >= (i - 30) / 30 - 0.01, (i, at)
