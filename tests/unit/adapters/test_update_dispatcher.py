from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingress_rig import UpdateLog
from voicecoder.adapters.sqlite.inbox import InboxItem, ItemState, SqliteInbox
from voicecoder.adapters.telegram.dispatcher import DispatchStats, UpdateDispatcher, exponential_delays
from voicecoder.adapters.telegram.routing import lane_key

FAST = (0.001,)


def message(update_id: int, chat: int, text: str = "") -> bytes:
    return json.dumps(
        {"update_id": update_id, "message": {"message_id": update_id, "chat": {"id": chat}, "text": text}}
    ).encode()


async def store(inbox: SqliteInbox, update_id: int, chat: int, kind: str = "message", text: str = "") -> InboxItem:
    await inbox.put(update_id, lane_key(chat, kind), message(update_id, chat, text))
    item = await inbox.get(update_id)
    assert item is not None
    return item


def chat_of(update: dict[str, Any]) -> int:
    chat: int = update["message"]["chat"]["id"]
    return chat


@pytest.fixture(name="inbox")
async def _inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    async with SqliteInbox(tmp_path / "inbox.sqlite3") as inbox:
        yield inbox


class Recorder:
    """A real handler: records what it saw, optionally sleeping, blocking or failing per update text."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.started: list[int] = []
        self.concurrent = 0
        self.peak = 0
        self.gates: dict[int, anyio.Event] = {}
        self.failures: dict[int, int] = {}

    async def __call__(self, update: dict[str, Any]) -> None:
        update_id: int = update["update_id"]
        self.started.append(update_id)
        self.concurrent += 1
        self.peak = max(self.peak, self.concurrent)
        try:
            text = update["message"]["text"]
            if text.startswith("sleep:"):
                await anyio.sleep(float(text.removeprefix("sleep:")))
            gate = self.gates.get(update_id)
            if gate is not None:
                await gate.wait()
            if self.failures.get(update_id, 0) > 0:
                self.failures[update_id] -= 1
                raise RuntimeError(f"scripted failure of {update_id}")
            self.seen.append(update_id)
        finally:
            self.concurrent -= 1


async def started(tg: anyio.abc.TaskGroup, dispatcher: UpdateDispatcher, *, resumed: int = 0) -> UpdateDispatcher:
    """
    Start *dispatcher*, checking it resumed exactly *resumed* pending items.

    A test of submit() stores its items after this: items stored before are resumed by the start, and submitting
    them again would only test the dispatcher's duplicate check, and only while none of them had finished.
    """
    await tg.start(dispatcher.run)
    assert dispatcher.stats.submitted == resumed, "the inbox held pending items when the dispatcher started"
    return dispatcher


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


Run = Callable[[UpdateDispatcher], Awaitable[None]]


class TestUpdateDispatcher:
    async def test_one_lane_is_strictly_ordered(self, inbox: SqliteInbox) -> None:
        """Messages of one chat are handled in arrival order even when earlier ones are slower."""
        handler = Recorder()
        dispatcher = UpdateDispatcher(inbox, handler, max_concurrency=8)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            items = [await store(inbox, i, chat=1, text=f"sleep:{0.02 if i % 2 else 0}") for i in range(1, 9)]
            for item in items:
                dispatcher.submit(item)
            await dispatcher.join()
            await dispatcher.stop()

        assert handler.seen == list(range(1, 9))
        assert await inbox.depth() == 0

    async def test_many_chats_keep_their_order(self, inbox: SqliteInbox) -> None:
        """Interleaved updates of 10 chats are processed with zero per-chat inversions."""
        order: dict[int, list[int]] = {}

        async def handler(update: dict[str, Any]) -> None:
            await anyio.sleep(0.001 * (update["update_id"] % 3))
            order.setdefault(chat_of(update), []).append(update["update_id"])

        dispatcher = UpdateDispatcher(inbox, handler, max_concurrency=4)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            items = [await store(inbox, i, chat=i % 10) for i in range(200)]
            for item in items:
                dispatcher.submit(item)
            await dispatcher.join()
            await dispatcher.stop()

        assert sum(len(ids) for ids in order.values()) == 200
        assert all(ids == sorted(ids) for ids in order.values())

    async def test_callback_lane_overtakes_a_blocked_message_lane(self, inbox: SqliteInbox) -> None:
        """A button press of a chat is handled while that chat's message is still running."""
        handler = Recorder()
        handler.gates[1] = anyio.Event()
        dispatcher = UpdateDispatcher(inbox, handler)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            running_turn = await store(inbox, 1, chat=5, kind="message")
            cancel_press = await store(inbox, 2, chat=5, kind="callback")
            dispatcher.submit(running_turn)
            dispatcher.submit(cancel_press)
            await wait_for(lambda: handler.seen == [2])
            handler.gates[1].set()
            await dispatcher.join()
            await dispatcher.stop()

        assert handler.seen == [2, 1]

    async def test_concurrency_is_bounded(self, inbox: SqliteInbox) -> None:
        """With max_concurrency=2, no more than two lanes run at once."""
        handler = Recorder()
        dispatcher = UpdateDispatcher(inbox, handler, max_concurrency=2)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            items = [await store(inbox, i, chat=i, text="sleep:0.02") for i in range(6)]
            for item in items:
                dispatcher.submit(item)
            await dispatcher.join()
            await dispatcher.stop()

        assert handler.peak == 2
        assert sorted(handler.seen) == list(range(6))

    async def test_a_lane_waiting_for_its_retry_leaves_the_worker_to_other_lanes(self, inbox: SqliteInbox) -> None:
        """With one worker, a lane backing off after a failure does not hold it: another chat runs meanwhile."""
        handler = Recorder()
        handler.failures[1] = 1
        dispatcher = UpdateDispatcher(inbox, handler, max_concurrency=1, retry_delays=(30.0,))

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            dispatcher.submit(await store(inbox, 1, chat=1))
            await wait_for(lambda: dispatcher.stats.retries == 1)
            dispatcher.submit(await store(inbox, 2, chat=2))
            await wait_for(lambda: handler.seen == [2])
            first = await inbox.get(1)
            await dispatcher.stop()

        assert first is not None
        assert (first.state, first.attempts, first.last_error) == (
            ItemState.PENDING,
            1,
            "RuntimeError: scripted failure of 1",
        )

    async def test_busy_lanes_take_turns_item_by_item(self, inbox: SqliteInbox) -> None:
        """With one worker and two busy chats, each item goes to the back of the line: the chats alternate."""
        handler = Recorder()
        handler.gates[1] = anyio.Event()
        dispatcher = UpdateDispatcher(inbox, handler, max_concurrency=1)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            dispatcher.submit(await store(inbox, 1, chat=1))
            await wait_for(lambda: handler.started == [1])
            for update_id, chat in ((2, 1), (3, 1), (4, 2), (5, 2)):
                dispatcher.submit(await store(inbox, update_id, chat=chat))
            handler.gates[1].set()
            await dispatcher.join()
            await dispatcher.stop()

        assert handler.seen == [1, 4, 2, 5, 3]

    async def test_done_only_after_processing(self, inbox: SqliteInbox) -> None:
        """While the handler runs the item is still pending in the inbox; it is done after it returns."""
        handler = Recorder()
        handler.gates[1] = anyio.Event()
        dispatcher = UpdateDispatcher(inbox, handler)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            item = await store(inbox, 1, chat=1)
            dispatcher.submit(item)
            await wait_for(lambda: handler.started == [1])
            during = await inbox.get(1)
            handler.gates[1].set()
            await dispatcher.join()
            after = await inbox.get(1)
            await dispatcher.stop()

        assert during is not None
        assert after is not None
        assert (during.state, after.state) == (ItemState.PENDING, ItemState.DONE)

    async def test_resumes_pending_in_update_id_order(self, inbox: SqliteInbox) -> None:
        """On start, what the inbox holds as pending is processed, oldest update first; finished ones are not."""
        for update_id in (3, 1, 2):
            await store(inbox, update_id, chat=1)
        await store(inbox, 4, chat=1)
        await inbox.mark_done(4)
        handler = Recorder()
        dispatcher = UpdateDispatcher(inbox, handler)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher, resumed=3)
            await dispatcher.join()
            await dispatcher.stop()

        assert handler.seen == [1, 2, 3]

    async def test_transient_failure_is_retried_once_processed(self, inbox: SqliteInbox) -> None:
        """An update failing once is retried and succeeds; it ends done with two attempts."""
        handler = Recorder()
        handler.failures[1] = 1
        stats = DispatchStats()
        dispatcher = UpdateDispatcher(inbox, handler, retry_delays=FAST, stats=stats)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            item = await store(inbox, 1, chat=1)
            dispatcher.submit(item)
            await dispatcher.join()
            await dispatcher.stop()

        stored = await inbox.get(1)
        assert stored is not None
        assert (stored.state, stored.attempts, stored.last_error) == (
            ItemState.DONE,
            2,
            "RuntimeError: scripted failure of 1",
        )
        assert handler.seen == [1]
        assert (stats.processed, stats.retries, stats.failed) == (1, 1, 0)

    async def test_persistent_failure_recorded_and_lane_moves_on(self, inbox: SqliteInbox) -> None:
        """After max_attempts the update is failed with its error, and the chat's next message is still handled."""
        handler = Recorder()
        handler.failures[1] = 99
        log = UpdateLog()
        failed = log.failures
        stats = DispatchStats(observer=log)
        dispatcher = UpdateDispatcher(inbox, handler, max_attempts=3, retry_delays=FAST, stats=stats)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            poison = await store(inbox, 1, chat=1)
            later = await store(inbox, 2, chat=1)
            dispatcher.submit(poison)
            dispatcher.submit(later)
            await dispatcher.join()
            await dispatcher.stop()

        stored = await inbox.get(1)
        assert stored is not None
        assert (stored.state, stored.attempts) == (ItemState.FAILED, 3)
        assert failed == [(1, "RuntimeError: scripted failure of 1")]
        assert handler.started.count(1) == 3
        assert handler.seen == [2]

    async def test_crash_looping_update_fails_across_restarts(self, inbox: SqliteInbox) -> None:
        """Attempts are durable: an update claimed by earlier runs that never finished fails after N in total."""
        await store(inbox, 1, chat=1)
        await inbox.claim(1)
        await inbox.claim(1)  # two earlier processes died while handling it
        handler = Recorder()
        handler.failures[1] = 99
        dispatcher = UpdateDispatcher(inbox, handler, max_attempts=3, retry_delays=FAST)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher, resumed=1)
            await dispatcher.join()
            await dispatcher.stop()

        stored = await inbox.get(1)
        assert stored is not None
        assert (stored.state, stored.attempts, handler.started) == (ItemState.FAILED, 3, [1])

    async def test_stored_garbage_is_failed_not_crashing(self, inbox: SqliteInbox) -> None:
        """A stored body that is not JSON is recorded as failed and the lane goes on."""
        handler = Recorder()
        dispatcher = UpdateDispatcher(inbox, handler)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            await inbox.put(1, "1:message", b"{not json")
            garbage = await inbox.get(1)
            assert garbage is not None
            good = await store(inbox, 2, chat=1)
            dispatcher.submit(garbage)
            dispatcher.submit(good)
            await dispatcher.join()
            await dispatcher.stop()

        stored = await inbox.get(1)
        assert stored is not None
        assert stored.state is ItemState.FAILED
        assert handler.seen == [2]

    async def test_duplicate_submit_is_ignored(self, inbox: SqliteInbox) -> None:
        """Submitting an item that is already queued does not process it twice."""
        handler = Recorder()
        handler.gates[1] = anyio.Event()
        dispatcher = UpdateDispatcher(inbox, handler)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            item = await store(inbox, 1, chat=1)
            dispatcher.submit(item)
            dispatcher.submit(item)
            handler.gates[1].set()
            await dispatcher.join()
            await dispatcher.stop()

        assert handler.seen == [1]

    async def test_graceful_stop_finishes_in_flight_and_leaves_rest_pending(self, inbox: SqliteInbox) -> None:
        """Stop lets the running update finish, takes nothing new; the next start processes the rest once."""
        handler = Recorder()
        dispatcher = UpdateDispatcher(inbox, handler, grace_s=5)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            items = [await store(inbox, i, chat=1, text="sleep:0.05") for i in range(1, 5)]
            for item in items:
                dispatcher.submit(item)
            await wait_for(lambda: handler.started == [1])
            await dispatcher.stop()
        first_run = list(handler.seen)
        pending_after_stop = [i.update_id for i in await inbox.pending()]
        second = UpdateDispatcher(inbox, handler)
        async with anyio.create_task_group() as tg:
            await started(tg, second, resumed=3)
            await second.join()
            await second.stop()

        assert first_run == [1]
        assert pending_after_stop == [2, 3, 4]
        assert handler.seen == [1, 2, 3, 4]

    async def test_on_stop_runs_first_and_can_end_an_in_flight_update(self, inbox: SqliteInbox) -> None:
        """The on_stop hook runs when stopping begins, so an update waiting on something it ends finishes in time."""
        handler = Recorder()
        handler.gates[1] = anyio.Event()

        async def on_stop() -> None:
            handler.gates[1].set()  # like the app denying a tool question nobody can answer any more

        dispatcher = UpdateDispatcher(inbox, handler, grace_s=30, on_stop=on_stop)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            item = await store(inbox, 1, chat=1)
            dispatcher.submit(item)
            await wait_for(lambda: handler.started == [1])
            await dispatcher.stop()

        assert handler.seen == [1]
        assert await inbox.pending() == []

    async def test_stop_after_grace_leaves_in_flight_pending(self, inbox: SqliteInbox) -> None:
        """An update still running when the grace period ends is cancelled and stays pending."""
        handler = Recorder()
        handler.gates[1] = anyio.Event()  # never released
        dispatcher = UpdateDispatcher(inbox, handler, grace_s=0.05)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            item = await store(inbox, 1, chat=1)
            dispatcher.submit(item)
            await wait_for(lambda: handler.started == [1])
            with anyio.fail_after(2):
                await dispatcher.stop()

        stored = await inbox.get(1)
        assert stored is not None
        assert (stored.state, handler.seen, dispatcher.running) == (ItemState.PENDING, [], False)

    async def test_submit_when_stopped_is_ignored(self, inbox: SqliteInbox) -> None:
        """After stop, submissions are ignored (the item is durable and waits for the next start)."""
        handler = Recorder()
        dispatcher = UpdateDispatcher(inbox, handler)
        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            await dispatcher.stop()

        dispatcher.submit(await store(inbox, 1, chat=1))

        assert (handler.started, await inbox.depth()) == ([], 1)

    async def test_processed_hook_reports_latency(self, inbox: SqliteInbox) -> None:
        """The observer gets the lane and the latency since receipt (processed), and the handler's duration."""
        log = UpdateLog()
        seen, attempts = log.done, log.attempts
        stats = DispatchStats(observer=log)
        dispatcher = UpdateDispatcher(inbox, Recorder(), stats=stats)

        async with anyio.create_task_group() as tg:
            await started(tg, dispatcher)
            item = await store(inbox, 1, chat=9, kind="callback")
            dispatcher.submit(item)
            await dispatcher.join()
            await dispatcher.stop()

        assert [lane for lane, _ in seen] == ["9:callback"]
        assert 0 <= seen[0][1] < 5
        assert len(attempts) == 1
        assert 0 <= attempts[0] < 5
        assert (stats.submitted, stats.processed, stats.in_flight) == (1, 1, 0)

    def test_exponential_delays(self) -> None:
        """The helper grows delays geometrically."""
        assert exponential_delays(0.5) == (0.5, 2.0, 8.0, 32.0)

    def test_rejects_nonsense_configuration(self, tmp_path: Path) -> None:
        """Zero attempts or no delays are configuration errors."""
        inbox = SqliteInbox(tmp_path / "x.sqlite3")

        with pytest.raises(ValueError, match="max_attempts"):
            UpdateDispatcher(inbox, Recorder(), max_attempts=0)
        with pytest.raises(ValueError, match="retry_delays"):
            UpdateDispatcher(inbox, Recorder(), retry_delays=())


class TestUpdateDispatcherProperties:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        plan=st.lists(
            st.tuples(st.integers(0, 3), st.sampled_from(["message", "callback"]), st.integers(0, 3)),
            min_size=1,
            max_size=25,
        ),
        max_attempts=st.integers(1, 3),
        concurrency=st.integers(1, 4),
    )
    async def test_every_update_ends_done_or_failed_in_lane_order(
        self, plan: list[tuple[int, str, int]], max_attempts: int, concurrency: int
    ) -> None:
        """
        Whatever the mix of lanes and failures: each update ends done (if it succeeds within max_attempts)
        or failed (otherwise), succeeds at most once, and successes keep per-lane order.
        """
        succeeded: list[int] = []
        remaining = {i: fails for i, (_, _, fails) in enumerate(plan)}

        async def handler(update: dict[str, Any]) -> None:
            update_id = update["update_id"]
            await anyio.sleep(0)
            if remaining[update_id] > 0:
                remaining[update_id] -= 1
                raise RuntimeError("planned")
            succeeded.append(update_id)

        with tempfile.TemporaryDirectory() as tmp:
            async with SqliteInbox(Path(tmp) / "inbox.sqlite3") as inbox:
                dispatcher = UpdateDispatcher(
                    inbox, handler, max_concurrency=concurrency, max_attempts=max_attempts, retry_delays=(0,)
                )
                async with anyio.create_task_group() as tg:
                    await started(tg, dispatcher)
                    items = [await store(inbox, i, chat=chat, kind=kind) for i, (chat, kind, _) in enumerate(plan)]
                    for item in items:
                        dispatcher.submit(item)
                    with anyio.fail_after(10):
                        await dispatcher.join()
                    await dispatcher.stop()
                states = {i: (await inbox.get(i)) for i in range(len(plan))}

        expected_ok = [i for i, (_, _, fails) in enumerate(plan) if fails < max_attempts]
        assert sorted(succeeded) == expected_ok
        for i, stored in states.items():
            assert stored is not None
            assert stored.state is (ItemState.DONE if i in expected_ok else ItemState.FAILED)
        for lane in {(chat, kind) for chat, kind, _ in plan}:
            in_lane = [i for i in succeeded if plan[i][:2] == lane]
            assert in_lane == sorted(in_lane)
