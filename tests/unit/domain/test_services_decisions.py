"""VoiceCoder's decisions through its facade: approve, reject, decided changes, undo and checkpoints."""

from __future__ import annotations

import anyio
import pytest

from tests.unit.domain.scenario import ALICE, CHAT
from tests.unit.domain.scenario import button as _press
from tests.unit.domain.scenario import change as _change
from voicecoder.domain.model import (
    AuditAction,
    ChangeStatus,
    ChatId,
)
from voicecoder.domain.policy import ApprovalPolicy
from voicecoder.domain.replies import (
    Action,
    AutoApproved,
    Button,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeReverted,
    ChangeSummary,
    Decision,
    DiffView,
    ErrorReply,
    GitStatusView,
    MessageRef,
    Reply,
    StatusReport,
)
from voicecoder.domain.services import Settings, VoiceCoder
from voicecoder.testing.fakes import AgentScript, FakePorts, RecordingMessenger, build_voicecoder


class TestApproval:
    async def test_approve_commits_exactly_the_turn(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Approve commits the turn's paths only; the user's own edit stays uncommitted.
        """
        fakes.workspace.write("mine.txt", "user edit\n")
        summary = await _change(app, fakes, {"hello.py": b"print('hi')\n"})

        await app.press(CHAT, ALICE, "cb", _press(summary, Action.APPROVE))

        (commit,) = fakes.workspace.commits
        assert commit.subject == "Apply changes from Claude"
        assert "Prompt: do it" in commit.message
        assert f"Voicecoder-Change: {summary.change_id}" in commit.message
        assert "hello.py" in fakes.workspace.head
        assert "mine.txt" not in fakes.workspace.head
        assert fakes.messenger.of_type(ChangeCommitted)[0].commit == commit
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert session.latest_change is not None
        assert session.latest_change.status is ChangeStatus.APPROVED
        assert session.approved_count == 1

    async def test_double_approve_commits_once(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A second tap on Approve is refused with "no longer pending"; there is one commit.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        await app.press(CHAT, ALICE, "cb1", _press(summary, Action.APPROVE))

        await app.press(CHAT, ALICE, "cb2", _press(summary, Action.APPROVE))

        assert len(fakes.workspace.commits) == 1
        cb, text = fakes.messenger.callbacks[-1]
        assert cb == "cb2"
        assert text is not None
        assert "no longer pending" in text

    async def test_stale_approve_is_refused(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        When the tree changed after the diff was shown, Approve commits nothing.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        fakes.workspace.write("a.txt", b"tampered\n")

        await app.press(CHAT, ALICE, "cb", _press(summary, Action.APPROVE))

        assert fakes.workspace.commits == []
        assert "changed since this diff" in (fakes.messenger.callbacks[-1][1] or "")

    async def test_button_of_an_older_diff_is_refused(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Buttons carry the fingerprint they were shown with; a mismatching one is refused.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        forged = Button(Action.APPROVE, summary.change_id, "0" * 16)

        await app.press(CHAT, ALICE, "cb", forged)

        assert fakes.workspace.commits == []

    async def test_reject_restores_the_baseline(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Reject puts back what the turn changed and keeps the user's edits.
        """
        fakes.workspace.write("mine.txt", "user edit\n")
        before = dict(fakes.workspace.files)
        summary = await _change(app, fakes, {"README.md": None, "new.py": b"x\n"})

        await app.press(CHAT, ALICE, "cb", _press(summary, Action.REJECT))

        assert fakes.workspace.files == before
        assert fakes.messenger.of_type(ChangeDiscarded)[0].paths == ("README.md", "new.py")
        session = await fakes.store.load_session(CHAT)
        assert session is not None
        assert session.rejected_count == 1

    async def test_secret_blocks_approval(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A likely secret in added lines is reported with file:line and approval is refused.
        """
        summary = await _change(app, fakes, {"config.py": b"ok = 1\nKEY = 'FAKE-SECRET-ABC123'\n"})

        await app.press(CHAT, ALICE, "cb", _press(summary, Action.APPROVE))

        assert summary.blocked_reasons == ("possible secret: api key at config.py:2",)
        assert fakes.workspace.commits == []
        assert "FAKE-SECRET" not in str(fakes.messenger.callbacks)

    async def test_auto_approve_for_allow_listed_paths(self) -> None:
        """
        An opt-in rule commits changes confined to allow-listed paths without asking.
        """
        app, fakes = build_voicecoder(
            settings=Settings(allowed_users=frozenset({ALICE}), policy=ApprovalPolicy(("docs/*",)))
        )
        fakes.agent.script(AgentScript(writes={"docs/a.md": b"doc\n"}))

        await app.prompt(CHAT, ALICE, "doc it")

        (auto,) = fakes.messenger.of_type(AutoApproved)
        assert auto.rule == "docs/*"
        assert fakes.workspace.head["docs/a.md"][0] == b"doc\n"

    async def test_new_prompt_extends_pending_change(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A prompt on top of a pending change supersedes it with a cumulative diff; Reject undoes both.
        """
        before = dict(fakes.workspace.files)
        first = await _change(app, fakes, {"a.txt": b"a\n"})
        second = await _change(app, fakes, {"b.txt": b"b\n"})

        await app.press(CHAT, ALICE, "old", _press(first, Action.APPROVE))
        await app.press(CHAT, ALICE, "new", _press(second, Action.REJECT))

        assert second.superseded_previous
        assert second.diff.paths == ("a.txt", "b.txt")
        assert fakes.workspace.commits == []
        assert fakes.workspace.files == before

    async def test_show_diff_and_git_status(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Show Diff returns the pending diff; Git Status the workspace status.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})

        await app.press(CHAT, ALICE, "d", _press(summary, Action.SHOW_DIFF))
        await app.press(CHAT, ALICE, "s", _press(summary, Action.GIT_STATUS))

        (view,) = fakes.messenger.of_type(DiffView)
        assert "+a" in view.diff.unified
        (status,) = fakes.messenger.of_type(GitStatusView)
        assert status.status.untracked == ("a.txt",)
        assert [cb for cb, _ in fakes.messenger.callbacks] == ["d", "s"]


class TestDecidedChanges:
    async def test_approve_reply_names_commit_prompt_and_time(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        The Approve reply carries the commit, the prompt that produced it and the commit time.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})

        await app.press(CHAT, ALICE, "a", _press(summary, Action.APPROVE))

        (committed,) = fakes.messenger.of_type(ChangeCommitted)
        assert committed.prompt == "do it"
        assert committed.commit.subject == "Apply changes from Claude"
        assert committed.files == 1

    @pytest.mark.parametrize(
        ("action", "decision"), [(Action.APPROVE, Decision.APPROVED), (Action.REJECT, Decision.REJECTED)]
    )
    async def test_decided_summary_is_edited(
        self, app: VoiceCoder, fakes: FakePorts, action: Action, decision: Decision
    ) -> None:
        """
        After Approve or Reject the summary message says what happened and keeps only Show Diff.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        (sent,) = [s for s in fakes.messenger.sent if s.reply == summary]

        await app.press(CHAT, ALICE, "x", _press(summary, action))

        ref, edited = fakes.messenger.edits[-1]
        assert ref == sent.ref
        assert isinstance(edited, ChangeSummary)
        assert edited.decision is decision
        assert [b.action for b in edited.buttons] == [Action.SHOW_DIFF]

    async def test_diff_views_lose_their_buttons_when_decided(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A Show Diff message of a pending change carries Approve/Reject; once the change is approved, it is edited
        to the decided diff, without them.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        await app.press(CHAT, ALICE, "d", _press(summary, Action.SHOW_DIFF))
        (shown,) = [s for s in fakes.messenger.sent if isinstance(s.reply, DiffView)]

        await app.press(CHAT, ALICE, "a", _press(summary, Action.APPROVE))

        (edited,) = [r for ref, r in fakes.messenger.edits if ref == shown.ref]
        assert isinstance(edited, DiffView)
        assert edited.decision is Decision.APPROVED

    async def test_approve_tapped_the_moment_the_summary_shows_is_not_refused(self) -> None:
        """
        The change summary goes out once the workspace is free: an Approve pressed as soon as the buttons appear
        commits instead of being refused as "a turn is running", and the summary still ends up marked decided.
        """
        presses: list[Button] = []

        class InstantTapper(RecordingMessenger):
            async def send(self, chat: ChatId, reply: Reply, /) -> MessageRef:
                ref = await super().send(chat, reply)
                if isinstance(reply, ChangeSummary) and not presses:
                    presses.append(_press(reply, Action.APPROVE))
                    await app.press(chat, ALICE, "instant", presses[0])
                return ref

        messenger = InstantTapper()
        app, fakes = build_voicecoder(allowed_users=[ALICE.value], messenger=messenger)
        fakes.agent.script(AgentScript(text="Edited.", writes={"a.txt": b"a\n"}))

        await app.prompt(CHAT, ALICE, "do it")

        assert len(fakes.workspace.commits) == 1
        assert messenger.of_type(ChangeCommitted)
        (summary,) = [s for s in messenger.sent if isinstance(s.reply, ChangeSummary)]
        edited = [r for ref, r in messenger.edits if ref == summary.ref]
        assert [r.decision for r in edited if isinstance(r, ChangeSummary)] == [Decision.APPROVED]

    async def test_replaced_summary_is_edited(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        A summary replaced by a newer change (a prompt on top of it) is edited to say so and loses Approve/Reject.
        """
        first = await _change(app, fakes, {"a.txt": b"a\n"})
        (sent,) = [s for s in fakes.messenger.sent if s.reply == first]

        await _change(app, fakes, {"b.txt": b"b\n"})

        edited = [r for ref, r in fakes.messenger.edits if ref == sent.ref]
        assert len(edited) == 1
        assert isinstance(edited[0], ChangeSummary)
        assert edited[0].decision is Decision.SUPERSEDED

    @pytest.mark.parametrize("action", [Action.APPROVE, Action.REJECT])
    async def test_show_diff_of_a_decided_change(self, app: VoiceCoder, fakes: FakePorts, action: Action) -> None:
        """
        📝 Show Diff on a decided change still shows its diff, marked with the decision, and answers the press once.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        await app.press(CHAT, ALICE, "x", _press(summary, action))

        await app.press(CHAT, ALICE, "d", _press(summary, Action.SHOW_DIFF))

        (view,) = fakes.messenger.of_type(DiffView)
        assert view.change_id == summary.change_id
        assert "+a" in view.diff.unified
        assert view.decision is (Decision.APPROVED if action is Action.APPROVE else Decision.REJECTED)
        assert [cb for cb, _ in fakes.messenger.callbacks].count("d") == 1


class TestUndo:
    async def test_undo_reverts_the_last_approved_change_once(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        /undo reverts the latest approved change with a new commit; a second /undo reverts the one before.
        """
        first = await _change(app, fakes, {"a.txt": b"a\n"})
        await app.press(CHAT, ALICE, "cb1", _press(first, Action.APPROVE))
        second = await _change(app, fakes, {"b.txt": b"b\n"})
        await app.press(CHAT, ALICE, "cb2", _press(second, Action.APPROVE))
        approved = [c.sha for c in fakes.workspace.commits]

        await app.undo(CHAT, ALICE)
        await app.undo(CHAT, ALICE)
        await app.undo(CHAT, ALICE)

        reverted = fakes.messenger.of_type(ChangeReverted)
        assert [r.reverted_sha for r in reverted] == [approved[1], approved[0]]
        assert "a.txt" not in fakes.workspace.files
        assert "b.txt" not in fakes.workspace.files
        assert fakes.workspace.commits[-1].subject == 'Revert "Apply changes from Claude"'
        assert "Nothing to undo" in fakes.messenger.of_type(ErrorReply)[-1].message

    async def test_undo_reverts_an_auto_approved_change_and_status_lists_it(self) -> None:
        """
        An auto-approved change is in /status's history as auto-approved, and /undo reverts it like any approved one.
        """
        app, fakes = build_voicecoder(
            settings=Settings(allowed_users=frozenset({ALICE}), policy=ApprovalPolicy(("docs/*",)))
        )
        fakes.agent.script(AgentScript(writes={"docs/a.md": b"doc\n"}))
        await app.prompt(CHAT, ALICE, "doc it")
        (auto,) = fakes.messenger.of_type(AutoApproved)

        await app.status(CHAT, ALICE)
        await app.undo(CHAT, ALICE)

        report = fakes.messenger.of_type(StatusReport)[-1]
        assert [(r.action, r.commit_sha) for r in report.history] == [(AuditAction.AUTO_APPROVE, auto.commit.sha)]
        assert [r.reverted_sha for r in fakes.messenger.of_type(ChangeReverted)] == [auto.commit.sha]
        assert "docs/a.md" not in fakes.workspace.files
        reverted = await fakes.store.load_change(CHAT, auto.change_id)
        assert reverted is not None
        assert reverted.reverted_by == fakes.workspace.commits[-1].sha

    async def test_undo_is_refused_while_a_turn_runs(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Reverting while the agent writes would mix the two: the user is told to wait.
        """
        first = await _change(app, fakes, {"a.txt": b"a\n"})
        await app.press(CHAT, ALICE, "cb1", _press(first, Action.APPROVE))
        fakes.agent.gate = anyio.Event()

        async with anyio.create_task_group() as tg:
            tg.start_soon(app.prompt, CHAT, ALICE, "more")
            await anyio.wait_all_tasks_blocked()
            await app.undo(CHAT, ALICE)
            fakes.agent.gate.set()

        assert fakes.messenger.of_type(ChangeReverted) == []
        assert "still working" in fakes.messenger.of_type(ErrorReply)[0].message


class TestCheckpoints:
    async def test_settled_turns_release_their_checkpoint(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """
        Approve, Reject and a turn without changes release the checkpoint; a pending change keeps it.
        """
        approved = await _change(app, fakes, {"a.txt": b"a\n"})
        await app.press(CHAT, ALICE, "cb1", _press(approved, Action.APPROVE))
        rejected = await _change(app, fakes, {"b.txt": b"b\n"})
        await app.press(CHAT, ALICE, "cb2", _press(rejected, Action.REJECT))
        await app.prompt(CHAT, ALICE, "just look")
        assert fakes.workspace.snapshots == {}
        assert fakes.workspace.turn_ends == {}

        await _change(app, fakes, {"c.txt": b"c\n"})

        assert len(fakes.workspace.snapshots) == 1
        assert len(fakes.workspace.turn_ends) == 1
