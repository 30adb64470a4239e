"""Random prompt / approve / reject / clear / stale / double / cancel sequences against the use cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from voicecoder.domain.model import ChangeStatus, ChatId, Session, UserId
from voicecoder.domain.replies import Action, Button, ChangeSummary
from voicecoder.domain.services import Settings
from voicecoder.testing.fakes import AgentScript, build_voicecoder

CHAT = ChatId(7)
ALICE = UserId(1)
THRESHOLD = 4

paths = st.sampled_from(["a.txt", "b.txt", "src/c.py", "README.md"])
contents = st.one_of(st.none(), st.binary(min_size=0, max_size=12).map(lambda b: b + b"\n"))
writes = st.dictionaries(paths, contents, max_size=3)


def run(fn: Callable[[], Awaitable[None]]) -> None:
    anyio.run(fn)


class TurnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app, self.fakes = build_voicecoder(
            settings=Settings(allowed_users=frozenset({ALICE}), compaction_threshold=THRESHOLD)
        )
        self.summaries: list[ChangeSummary] = []
        self.pre_turn_tree = dict(self.fakes.workspace.files)
        self.committed: dict[str, int] = {}
        self.last_turns = 0
        self.reset_allowed = False

    # --- helpers -----------------------------------------------------------------

    def session(self) -> Session:
        box: list[Session | None] = []

        async def load() -> None:
            box.append(await self.fakes.store.load_session(CHAT))

        run(load)
        return box[0] or Session(CHAT)

    def press(self, summary: ChangeSummary, action: Action, callback: str = "cb") -> None:
        button = next(b for b in summary.buttons if b.action is action)

        async def go() -> None:
            await self.app.press(CHAT, ALICE, callback, button)

        run(go)

    def pending_summary(self) -> ChangeSummary | None:
        pending = self.session().pending
        if pending is None or not pending.is_pending:
            return None
        return next(s for s in reversed(self.summaries) if s.change_id == pending.id)

    def collect_summaries(self) -> None:
        known = {s.change_id for s in self.summaries}
        self.summaries += [s for s in self.fakes.messenger.of_type(ChangeSummary) if s.change_id not in known]

    # --- rules -------------------------------------------------------------------

    @rule(changes=writes)
    def prompt(self, changes: dict[str, bytes | None]) -> None:
        if self.pending_summary() is None:
            self.pre_turn_tree = dict(self.fakes.workspace.files)
        self.fakes.agent.script(AgentScript(writes=changes))
        self.reset_allowed = self.session().needs_compaction

        async def go() -> None:
            await self.app.prompt(CHAT, ALICE, "change things")

        run(go)
        self.collect_summaries()

    @rule(changes=writes)
    def cancelled_prompt(self, changes: dict[str, bytes | None]) -> None:
        if self.pending_summary() is None:
            self.pre_turn_tree = dict(self.fakes.workspace.files)
        self.fakes.agent.script(AgentScript(writes=changes))
        self.fakes.agent.gate = anyio.Event()
        self.reset_allowed = self.session().needs_compaction

        async def go() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.app.prompt, CHAT, ALICE, "slow")
                await anyio.wait_all_tasks_blocked()
                await self.app.press(CHAT, ALICE, "cancel", Button(Action.CANCEL))

        run(go)
        self.fakes.agent.gate = None
        self.collect_summaries()

    @precondition(lambda self: self.pending_summary() is not None)
    @rule()
    def approve(self) -> None:
        summary = self.pending_summary()
        assert summary is not None
        commits_before = len(self.fakes.workspace.commits)
        tree_before = dict(self.fakes.workspace.files)

        self.press(summary, Action.APPROVE)

        assert len(self.fakes.workspace.commits) == commits_before + 1
        self.committed[summary.change_id.value] = self.committed.get(summary.change_id.value, 0) + 1
        # The commit equals the diff shown: HEAD now holds exactly the shown paths as the tree had them.
        for path in summary.diff.paths:
            assert self.fakes.workspace.head.get(path) == tree_before.get(path)
        self.pre_turn_tree = dict(self.fakes.workspace.files)

    @precondition(lambda self: self.pending_summary() is not None)
    @rule()
    def reject(self) -> None:
        summary = self.pending_summary()
        assert summary is not None

        self.press(summary, Action.REJECT)

        assert self.fakes.workspace.files == self.pre_turn_tree

    @precondition(lambda self: self.pending_summary() is not None)
    @rule(data=st.binary(min_size=1, max_size=8))
    def stale_approve(self, data: bytes) -> None:
        summary = self.pending_summary()
        assert summary is not None
        path = summary.diff.paths[0]
        old = self.fakes.workspace.files.get(path)
        self.fakes.workspace.write(path, b"tampered " + data)
        commits_before = len(self.fakes.workspace.commits)

        self.press(summary, Action.APPROVE)

        assert len(self.fakes.workspace.commits) == commits_before
        # Put the tree back as the agent left it, so the invariants keep describing the pending change.
        if old is None:
            self.fakes.workspace.delete(path)
        else:
            self.fakes.workspace.files[path] = old

    @precondition(lambda self: any(s.change_id.value in self.committed for s in self.summaries))
    @rule()
    def double_approve(self) -> None:
        summary = next(s for s in self.summaries if s.change_id.value in self.committed)
        commits_before = len(self.fakes.workspace.commits)

        self.press(summary, Action.APPROVE)

        assert len(self.fakes.workspace.commits) == commits_before

    @rule()
    def clear(self) -> None:
        async def go() -> None:
            await self.app.clear(CHAT, ALICE)

        run(go)
        self.reset_allowed = True

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def at_most_one_pending(self) -> None:
        session = self.session()
        pending_ids = [
            s.change_id for s in self.summaries if session.pending is not None and s.change_id == session.pending.id
        ]
        assert len(pending_ids) <= 1
        if session.pending is not None and session.pending.is_pending:
            assert session.pending.status is ChangeStatus.PENDING

    @invariant()
    def each_approved_change_committed_once(self) -> None:
        assert all(n == 1 for n in self.committed.values())
        trailers = [c.message for c in self.fakes.workspace.commits]
        for change_id in self.committed:
            assert sum(f"Voicecoder-Change: {change_id}" in t for t in trailers) == 1

    @invariant()
    def turn_count_only_grows_until_reset(self) -> None:
        turns = self.session().turn_count
        if not self.reset_allowed:
            assert turns >= self.last_turns
        self.last_turns = turns
        self.reset_allowed = False
        assert turns <= THRESHOLD


TurnMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)
TestTurnMachine = TurnMachine.TestCase
