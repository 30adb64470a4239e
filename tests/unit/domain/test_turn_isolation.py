"""The use cases around the three-way turn model: turn-end snapshots, late edits, overlaps and their choice."""

from __future__ import annotations

import pytest

from tests.unit.domain.scenario import ALICE, CHAT, change
from voicecoder.domain.model import Ownership
from voicecoder.domain.replies import (
    Action,
    ApprovalChoiceNeeded,
    Button,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeSummary,
    DiffView,
)
from voicecoder.domain.services import VoiceCoder
from voicecoder.testing.fakes import FakePorts

_change = change


def _button(buttons: tuple[Button, ...], action: Action) -> Button:
    return next(b for b in buttons if b.action is action)


class TestTurnEnd:
    async def test_the_turn_end_is_recorded_with_the_pending_change(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """When the agent finishes, its turn-end snapshot is taken and kept (durably) with the pending change."""
        await _change(app, fakes, {"a.txt": b"a\n"})

        session = await fakes.store.load_session(CHAT)

        assert session is not None
        assert session.pending is not None
        assert session.pending.baseline.turn_end in fakes.workspace.turn_ends
        assert session.open_turn is None


class TestLateEdits:
    async def test_late_edits_make_the_buttons_stale_until_the_diff_is_seen(
        self, app: VoiceCoder, fakes: FakePorts
    ) -> None:
        """
        An edit after the turn end: Approve from the summary commits nothing and says the workspace changed;
        Show Diff lists the late edit and brings new buttons; approving them commits the agent's change only.
        """
        summary = await _change(app, fakes, {"a.txt": b"a\n"})
        fakes.workspace.write("mine.txt", b"written while the change waits\n")

        await app.press(CHAT, ALICE, "cb1", _button(summary.buttons, Action.APPROVE))
        refused = fakes.messenger.callbacks[-1]
        await app.press(CHAT, ALICE, "cb2", _button(summary.buttons, Action.SHOW_DIFF))
        (view,) = fakes.messenger.of_type(DiffView)
        await app.press(CHAT, ALICE, "cb3", _button(summary.buttons, Action.APPROVE))
        stale = fakes.messenger.callbacks[-1]
        await app.press(CHAT, ALICE, "cb4", _button(view.buttons, Action.APPROVE))

        assert "workspace changed" in (refused[1] or "")
        assert view.refreshed
        assert [f.path for f in view.diff.late] == ["mine.txt"]
        assert view.diff.paths == ("a.txt",)
        assert "older diff" in (stale[1] or "")
        (commit,) = fakes.workspace.commits
        assert "mine.txt" not in fakes.workspace.head
        assert fakes.workspace.head["a.txt"] == (b"a\n", 0o100644)
        assert fakes.messenger.of_type(ChangeCommitted)[0].commit == commit

    async def test_show_diff_without_late_edits_keeps_the_buttons(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """Nothing changed since the summary: the diff is the summary's, and its buttons stay valid."""
        summary = await _change(app, fakes, {"a.txt": b"a\n"})

        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.SHOW_DIFF))

        (view,) = fakes.messenger.of_type(DiffView)
        assert not view.refreshed
        assert view.diff == summary.diff


class TestReject:
    async def test_reject_keeps_the_developers_edits_and_says_so(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """Edits made while the change waits survive Reject; the reply names what was restored and what kept."""
        summary = await _change(app, fakes, {"README.md": b"# demo\nagent\n", "new.py": b"x = 1\n"})
        fakes.workspace.write("README.md", b"mine\n# demo\nagent\n")
        fakes.workspace.write("later.txt", b"mine\n")

        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.REJECT))

        (discarded,) = fakes.messenger.of_type(ChangeDiscarded)
        assert (discarded.paths, discarded.merged, discarded.kept) == (("README.md", "new.py"), ("README.md",), ())
        assert fakes.workspace.read("README.md") == b"mine\n# demo\n"
        assert fakes.workspace.read("later.txt") == b"mine\n"
        assert "new.py" not in fakes.workspace.files

    async def test_reject_names_what_it_could_not_take_back(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """A file whose later edits overlap the agent's lines is left alone and reported as kept."""
        summary = await _change(app, fakes, {"README.md": b"# agent\n"})
        fakes.workspace.write("README.md", b"# agent, then mine\n")

        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.REJECT))

        (discarded,) = fakes.messenger.of_type(ChangeDiscarded)
        assert (discarded.paths, discarded.kept) == ((), ("README.md",))
        assert fakes.workspace.read("README.md") == b"# agent, then mine\n"


class TestOverlap:
    @pytest.fixture(name="summary")
    async def _summary(self, app: VoiceCoder, fakes: FakePorts) -> ChangeSummary:
        """The developer changed README.md's only line; the agent changes the same line and adds a file."""
        fakes.workspace.write("README.md", b"# mine\n")
        return await _change(app, fakes, {"README.md": b"# agent\n", "new.py": b"x = 1\n"})

    async def test_the_summary_marks_the_file_and_offers_the_choice(self, summary: ChangeSummary) -> None:
        """The overlapping file is marked, and plain Approve is replaced by the two explicit choices."""
        owners = {f.path: f.owner for f in summary.diff.files}

        assert owners == {"README.md": Ownership.OVERLAP, "new.py": Ownership.AGENT}
        assert [b.action for b in summary.buttons] == [
            Action.APPROVE_WITH_MY_EDITS,
            Action.APPROVE_LEAVE_OUT,
            Action.REJECT,
            Action.SHOW_DIFF,
            Action.GIT_STATUS,
        ]
        assert [b.label for b in summary.buttons[:2]] == ["✅ Commit with my edits", "✅ Leave this file out"]
        assert "+# mine" in summary.diff.yours

    async def test_plain_approve_asks_for_the_choice(
        self, app: VoiceCoder, fakes: FakePorts, summary: ChangeSummary
    ) -> None:
        """Approve without a choice (an older keyboard, an embedder) commits nothing and asks in the chat."""
        plain = Button(Action.APPROVE, summary.change_id, summary.diff.fingerprint[:16])

        await app.press(CHAT, ALICE, "cb", plain)

        assert fakes.workspace.commits == []
        (asked,) = fakes.messenger.of_type(ApprovalChoiceNeeded)
        assert asked.diff.overlapping == ("README.md",)
        assert [b.action for b in asked.buttons] == [
            Action.APPROVE_WITH_MY_EDITS,
            Action.APPROVE_LEAVE_OUT,
            Action.SHOW_DIFF,
        ]

    async def test_leave_out_commits_the_rest(self, app: VoiceCoder, fakes: FakePorts, summary: ChangeSummary) -> None:
        """Leaving the file out commits the other files; the overlapping one stays as it is, uncommitted."""
        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.APPROVE_LEAVE_OUT))

        (committed,) = fakes.messenger.of_type(ChangeCommitted)
        assert (committed.files, committed.left_out) == (1, ("README.md",))
        assert fakes.workspace.head["README.md"] == (b"# demo\n", 0o100644)
        assert fakes.workspace.head["new.py"] == (b"x = 1\n", 0o100644)
        assert fakes.workspace.read("README.md") == b"# agent\n"

    async def test_with_my_edits_commits_the_file_whole(
        self, app: VoiceCoder, fakes: FakePorts, summary: ChangeSummary
    ) -> None:
        """Committing with the developer's edits commits the file as the agent left it."""
        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.APPROVE_WITH_MY_EDITS))

        (committed,) = fakes.messenger.of_type(ChangeCommitted)
        assert (committed.files, committed.left_out) == (2, ())
        assert fakes.workspace.head["README.md"] == (b"# agent\n", 0o100644)
        assert fakes.workspace.commits[0].message.count("Voicecoder-Change") == 1


class TestApproveKeepsTheDevelopersLines:
    async def test_both_owned_files_commit_only_the_agents_lines(self, app: VoiceCoder, fakes: FakePorts) -> None:
        """A file with the developer's separate edit: the agent's line is committed, theirs stays uncommitted."""
        fakes.workspace.write("README.md", b"mine\n# demo\n")
        summary = await _change(app, fakes, {"README.md": b"mine\n# demo\nagent\n"})

        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.APPROVE))

        (committed,) = fakes.messenger.of_type(ChangeCommitted)
        assert committed.kept_yours == ("README.md",)
        assert fakes.workspace.head["README.md"] == (b"# demo\nagent\n", 0o100644)
        assert fakes.workspace.read("README.md") == b"mine\n# demo\nagent\n"


class TestExtension:
    async def test_a_second_prompt_keeps_edits_made_in_between_the_developers(
        self, app: VoiceCoder, fakes: FakePorts
    ) -> None:
        """Edits between two prompts of one change are the developer's: not in the diff, not committed."""
        await _change(app, fakes, {"a.txt": b"a\n"})
        fakes.workspace.write("mine.txt", b"mine\n")
        summary = await _change(app, fakes, {"b.txt": b"b\n"})

        await app.press(CHAT, ALICE, "cb", _button(summary.buttons, Action.APPROVE))

        assert summary.superseded_previous
        assert summary.diff.paths == ("a.txt", "b.txt")
        assert summary.diff.late == ()
        assert "mine.txt" not in fakes.workspace.head
        assert fakes.workspace.snapshots == {}
        assert fakes.workspace.turn_ends == {}
