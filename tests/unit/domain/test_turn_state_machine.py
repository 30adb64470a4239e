"""
Random prompt / approve / reject / clear / stale / double / cancel sequences against the use cases.

The developer keeps notes in ``notes/`` that the agent never touches and edits them at any moment, also while
a change is pending: those edits are late edits for the pending change, so its buttons go stale until Show
Diff is pressed, and neither Approve nor Reject may commit or undo them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from voicecoder.domain.model import ChangeStatus, ChatId, Session, UserId
from voicecoder.domain.replies import Action, Button, ChangeSummary, DiffView
from voicecoder.domain.services import Settings
from voicecoder.testing.fakes import AgentScript, build_voicecoder
from voicecoder.testing.profiles import budget

CHAT = ChatId(7)
ALICE = UserId(1)
THRESHOLD = 4

paths = st.sampled_from(["a.txt", "b.txt", "src/c.py", "README.md"])
contents = st.one_of(st.none(), st.binary(min_size=0, max_size=12).map(lambda b: b + b"\n"))
writes = st.dictionaries(paths, contents, max_size=3)
notes = st.sampled_from(["notes/todo.txt", "notes/ideas.md"])


def run(fn: Callable[[], Awaitable[None]]) -> None:
    # trio knows at once when every task is blocked; asyncio's wait_all_tasks_blocked polls every 0.1 s.
    anyio.run(fn, backend="trio")


def agents_part(tree: dict[str, tuple[bytes, int]]) -> dict[str, tuple[bytes, int]]:
    return {path: entry for path, entry in tree.items() if not path.startswith("notes/")}


class TurnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.app, self.fakes = build_voicecoder(
            settings=Settings(allowed_users=frozenset({ALICE}), compaction_threshold=THRESHOLD)
        )
        self.summaries: list[ChangeSummary] = []
        self.buttons: dict[str, tuple[Button, ...]] = {}
        """The newest buttons shown for each change (the summary's, or a refreshed diff's)."""
        self.pre_turn_tree = dict(self.fakes.workspace.files)
        self.turn_end_tree = dict(self.fakes.workspace.files)
        self.notes: dict[str, tuple[bytes, int]] = {}
        self.unseen_late = False
        self.committed: dict[str, int] = {}
        self.last_turns = 0
        self.reset_allowed = False
        self.n = 0

    # --- helpers -----------------------------------------------------------------

    def session(self) -> Session:
        # Read the fake store's map directly: preconditions ask for it often, and an event loop per look is slow.
        stored = self.fakes.store.sessions.get(CHAT)
        return stored if stored is not None else Session(CHAT)

    def press(self, button: Button, callback: str = "cb") -> None:
        async def go() -> None:
            await self.app.press(CHAT, ALICE, callback, button)

        run(go)

    def pending_summary(self) -> ChangeSummary | None:
        pending = self.session().pending
        if pending is None or not pending.is_pending:
            return None
        return next(s for s in reversed(self.summaries) if s.change_id == pending.id)

    def newest(self, summary: ChangeSummary, action: Action) -> Button | None:
        return next((b for b in self.buttons[summary.change_id.value] if b.action is action), None)

    def collect_summaries(self) -> None:
        known = {s.change_id for s in self.summaries}
        for summary in self.fakes.messenger.of_type(ChangeSummary):
            if summary.change_id not in known:
                self.summaries.append(summary)
                self.buttons[summary.change_id.value] = summary.buttons
                self.unseen_late = False

    def before_prompt(self, changes: dict[str, bytes | None]) -> None:
        if self.pending_summary() is None:
            self.pre_turn_tree = dict(self.fakes.workspace.files)
        self.fakes.agent.script(AgentScript(writes=changes))
        self.reset_allowed = self.session().needs_compaction

    def after_prompt(self) -> None:
        self.collect_summaries()
        self.turn_end_tree = dict(self.fakes.workspace.files)

    # --- rules -------------------------------------------------------------------

    @rule(changes=writes)
    def prompt(self, changes: dict[str, bytes | None]) -> None:
        self.before_prompt(changes)

        async def go() -> None:
            await self.app.prompt(CHAT, ALICE, "change things")

        run(go)
        self.after_prompt()

    @rule(changes=writes)
    def cancelled_prompt(self, changes: dict[str, bytes | None]) -> None:
        self.before_prompt(changes)
        self.fakes.agent.gate = anyio.Event()

        async def go() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.app.prompt, CHAT, ALICE, "slow")
                await anyio.wait_all_tasks_blocked()
                await self.app.press(CHAT, ALICE, "cancel", Button(Action.CANCEL))

        run(go)
        self.fakes.agent.gate = None
        self.after_prompt()

    @rule(path=notes)
    def developer_edits_notes(self, path: str) -> None:
        """The developer's own work, at any moment; while a change is pending it is a late edit for it."""
        self.n += 1
        self.fakes.workspace.write(path, f"note {self.n}\n")
        self.notes[path] = self.fakes.workspace.files[path]
        self.unseen_late = self.unseen_late or self.pending_summary() is not None

    @precondition(lambda self: self.pending_summary() is not None)
    @rule()
    def show_diff(self) -> None:
        summary = self.pending_summary()
        assert summary is not None
        shown_before = len(self.fakes.messenger.of_type(DiffView))

        self.press(Button(Action.SHOW_DIFF, summary.change_id))

        view = self.fakes.messenger.of_type(DiffView)[shown_before]
        if self.unseen_late:
            assert view.refreshed, "late edits must refresh the diff and its buttons"
        assert not any(f.path.startswith("notes/") for f in view.diff.files), "notes shown as the agent's"
        self.buttons[summary.change_id.value] = view.buttons
        self.unseen_late = False

    @precondition(lambda self: self.pending_summary() is not None)
    @rule()
    def approve(self) -> None:
        summary = self.pending_summary()
        assert summary is not None
        button = self.newest(summary, Action.APPROVE)
        assert button is not None, "the agent never overlaps the developer's notes: plain Approve is offered"
        commits_before = len(self.fakes.workspace.commits)
        tree_before = dict(self.fakes.workspace.files)

        self.press(button)

        if self.unseen_late:
            # Late edits nobody has seen: the old buttons are stale and nothing is committed.
            assert len(self.fakes.workspace.commits) == commits_before
            assert self.pending_summary() is not None
            return
        assert len(self.fakes.workspace.commits) == commits_before + 1
        self.committed[summary.change_id.value] = self.committed.get(summary.change_id.value, 0) + 1
        # The commit is the agent's change as it ended; the working tree is left as it is.
        head = self.fakes.workspace.head
        for path in summary.diff.paths:
            assert head.get(path) == self.turn_end_tree.get(path)
        assert self.fakes.workspace.files == tree_before
        self.pre_turn_tree = dict(self.fakes.workspace.files)

    @precondition(lambda self: self.pending_summary() is not None)
    @rule()
    def reject(self) -> None:
        summary = self.pending_summary()
        assert summary is not None
        button = self.newest(summary, Action.REJECT)
        assert button is not None

        self.press(button)

        assert agents_part(self.fakes.workspace.files) == agents_part(self.pre_turn_tree)

    @precondition(lambda self: self.pending_summary() is not None)
    @rule(data=st.binary(min_size=1, max_size=8))
    def stale_approve(self, data: bytes) -> None:
        summary = self.pending_summary()
        assert summary is not None
        path = summary.diff.paths[0]
        old = self.fakes.workspace.files.get(path)
        self.fakes.workspace.write(path, b"tampered " + data)
        commits_before = len(self.fakes.workspace.commits)
        button = self.newest(summary, Action.APPROVE)
        assert button is not None

        self.press(button)

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
        button = self.newest(summary, Action.APPROVE)
        assert button is not None

        self.press(button)

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
    def the_developers_notes_are_never_committed_or_destroyed(self) -> None:
        for path, entry in self.notes.items():
            assert self.fakes.workspace.files.get(path) == entry
            assert path not in self.fakes.workspace.head

    @invariant()
    def turn_count_only_grows_until_reset(self) -> None:
        turns = self.session().turn_count
        if not self.reset_allowed:
            assert turns >= self.last_turns
        self.last_turns = turns
        self.reset_allowed = False
        assert turns <= THRESHOLD


TurnMachine.TestCase.settings = budget(100, steps=20)
TestTurnMachine = TurnMachine.TestCase
