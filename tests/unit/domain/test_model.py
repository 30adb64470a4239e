from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voicecoder.domain.errors import (
    ApprovalBlockedError,
    ApprovalChoiceRequiredError,
    ChangeNotPendingError,
    NoPendingChangeError,
    StaleChangeError,
)
from voicecoder.domain.model import (
    ApprovalChoice,
    Baseline,
    ChangeId,
    ChangeKind,
    ChangeStatus,
    ChatId,
    CommitInfo,
    CommitMessage,
    Diff,
    FileChange,
    Ownership,
    PendingChange,
    Prompt,
    SecretFinding,
    Session,
    TurnId,
    UserId,
)
from voicecoder.domain.policy import ApprovalPolicy, Verdict

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE = UserId(1)
FP = "ab" * 32
COMMIT = CommitInfo("c" * 40, "Apply changes from Claude\n", "a <a@b>", NOW)


def make_change(change_id: str = "0123456789abcdef", findings: tuple[SecretFinding, ...] = ()) -> PendingChange:
    return PendingChange(
        id=ChangeId(change_id),
        turn_id=TurnId("t1"),
        chat_id=ChatId(1),
        prompt=Prompt.typed("x"),
        baseline=Baseline(TurnId("t1"), "snap"),
        diff=Diff("diff", (FileChange("a.py", ChangeKind.ADDED, 1, 0),), FP),
        created_at=NOW,
        findings=findings,
    )


@pytest.fixture(name="change")
def _change() -> PendingChange:
    return make_change()


class TestPendingChange:
    def test_approve_twice_raises(self, change: PendingChange) -> None:
        """
        Approving an already-approved change raises ChangeNotPendingError.
        """
        change.approve(ALICE, COMMIT, now=NOW)

        with pytest.raises(ChangeNotPendingError, match="no longer pending"):
            change.approve(ALICE, COMMIT, now=NOW)

    def test_overlaps_need_a_choice(self, change: PendingChange) -> None:
        """
        A diff with a file overlapping the developer's edits is approvable only with an explicit choice.
        """
        change.diff = Diff("d", (FileChange("a.py", ChangeKind.MODIFIED, owner=Ownership.OVERLAP),), FP)

        with pytest.raises(ApprovalChoiceRequiredError, match=r"a\.py") as raised:
            change.check_approvable(FP[:16])
        change.check_approvable(FP[:16], ApprovalChoice.LEAVE_OUT)

        assert raised.value.paths == ("a.py",)

    def test_refresh_replaces_the_diff_of_a_pending_change_only(self, change: PendingChange) -> None:
        """
        A refreshed diff (late edits seen) becomes the change's; a decided change cannot be refreshed.
        """
        fresh = Diff("new", (FileChange("a.py", ChangeKind.ADDED, 1, 0),), "cd" * 32)

        change.refresh(fresh, ())
        change.approve(ALICE, COMMIT, now=NOW)

        assert change.diff == fresh
        with pytest.raises(ChangeNotPendingError):
            change.refresh(Diff.empty(), ())

    def test_wrong_fingerprint_is_stale(self, change: PendingChange) -> None:
        """
        The fingerprint prefix from the button must match the diff.
        """
        with pytest.raises(StaleChangeError):
            change.check_approvable("cd" * 8)

    def test_short_fingerprint_is_refused(self, change: PendingChange) -> None:
        """
        A too-short prefix could match anything: refused.
        """
        with pytest.raises(StaleChangeError):
            change.check_approvable("ab")

    def test_findings_block_approval(self) -> None:
        """
        A secret finding blocks approval and the message names file:line, not the secret.
        """
        change = make_change(findings=(SecretFinding("k.py", 3, "Telegram bot token"),))

        with pytest.raises(ApprovalBlockedError, match=r"Telegram bot token at k\.py:3"):
            change.check_approvable(FP[:16])

    def test_transitions_record_events(self, change: PendingChange) -> None:
        """
        Reject moves to REJECTED and records the event; nothing else is allowed afterwards.
        """
        change.reject(ALICE, now=NOW)

        assert change.status is ChangeStatus.REJECTED
        assert len(change.events) == 1
        with pytest.raises(ChangeNotPendingError):
            change.supersede(ChangeId("fedcba9876543210"), now=NOW)


class TestSession:
    def test_attach_supersedes_previous(self, change: PendingChange) -> None:
        """
        Only one change is pending: attaching another supersedes the first.
        """
        session = Session(ChatId(1))
        session.attach(change, now=NOW)
        newer = make_change("fedcba9876543210")

        previous = session.attach(newer, now=NOW)

        assert previous is change
        assert change.status is ChangeStatus.SUPERSEDED
        assert session.pending_change() is newer
        with pytest.raises(ChangeNotPendingError):
            session.pending_change(change.id)

    def test_no_pending(self) -> None:
        """
        Asking for the pending change of a fresh session is a clear error.
        """
        with pytest.raises(NoPendingChangeError):
            Session(ChatId(1)).pending_change()

    def test_compaction_threshold(self) -> None:
        """
        A session needs compaction once it has threshold turns.
        """
        session = Session(ChatId(1), compaction_threshold=2)
        session.record_turn("s", now=NOW)
        assert not session.needs_compaction

        session.record_turn("s", now=NOW)

        assert session.needs_compaction


class TestCommitMessage:
    def test_render_with_trailers(self) -> None:
        """
        Subject, body and trailers are separated by blank lines, like git expects.
        """
        message = CommitMessage("Apply changes from Claude", "Prompt: x", (("Voicecoder-Change", "abc"),))

        assert message.render() == "Apply changes from Claude\n\nPrompt: x\n\nVoicecoder-Change: abc\n"


class TestApprovalPolicy:
    def test_default_always_asks(self, change: PendingChange) -> None:
        """
        With no rules, every change needs approval.
        """
        assert ApprovalPolicy().decide(change.diff).verdict is Verdict.ASK

    def test_no_changes(self) -> None:
        """
        An empty diff needs nothing.
        """
        assert ApprovalPolicy().decide(Diff.empty()).verdict is Verdict.NO_CHANGES

    def test_secret_blocks_even_allow_listed(self, change: PendingChange) -> None:
        """
        A secret finding wins over an auto-approve rule.
        """
        decision = ApprovalPolicy(("*.py",)).decide(change.diff, [SecretFinding("a.py", 1, "key")])

        assert decision.verdict is Verdict.BLOCKED

    def test_auto_approve_needs_every_path(self) -> None:
        """
        Auto-approval only applies when all paths match.
        """
        diff = Diff("d", (FileChange("docs/a.md", ChangeKind.ADDED), FileChange("src/x.py", ChangeKind.ADDED)), FP)

        assert ApprovalPolicy(("docs/*",)).decide(diff).verdict is Verdict.ASK
        assert ApprovalPolicy(("docs/*", "src/*")).decide(diff).verdict is Verdict.AUTO_APPROVE

    def test_overlapping_edits_are_never_auto_approved(self) -> None:
        """
        A file whose agent edits overlap the developer's needs their choice, even on an allow-listed path.
        """
        diff = Diff("d", (FileChange("docs/a.md", ChangeKind.MODIFIED, owner=Ownership.OVERLAP),), FP)

        assert ApprovalPolicy(("docs/*",)).decide(diff).verdict is Verdict.ASK
