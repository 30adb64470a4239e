"""Replies of every kind, each with hostile text, that the Telegram rendering and messenger tests send."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from voicecoder.domain.model import (
    AuditAction,
    AuditRecord,
    ChangeId,
    ChangeKind,
    ChatId,
    CommitInfo,
    Diagnostic,
    Diff,
    FileChange,
    Ownership,
    PermissionDenied,
    QuestionId,
    ToolKind,
    ToolRequest,
    UserId,
    WorkspaceStatus,
)
from voicecoder.domain.replies import (
    AgentAnswer,
    ApprovalChoiceNeeded,
    AutoApproved,
    Cancelled,
    ChangeCommitted,
    ChangeDiscarded,
    ChangeReverted,
    ChangeSummary,
    Compaction,
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    NoChanges,
    PermissionsView,
    Queued,
    Reply,
    SessionCleared,
    StatusReport,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
    TurnOutcome,
    Unauthorized,
    Welcome,
    Working,
)
from voicecoder.simulators.bot_api import (
    DEFAULT_USER,
)

CHAT = ChatId(DEFAULT_USER.id)
NASTY = "if a < b && c > d: print('<b>not bold</b> &amp;')"
CHANGE = ChangeId("0123abcd")
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def make_diff(unified: str = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a < b\n+a <= b\n") -> Diff:
    return Diff(
        unified=unified,
        files=(
            FileChange("src/<app>.py", ChangeKind.MODIFIED, 3, 1),
            FileChange("new & shiny.txt", ChangeKind.ADDED, 10, 0),
            FileChange("logo.png", ChangeKind.DELETED, binary=True),
        ),
        fingerprint=hashlib.sha256(unified.encode()).hexdigest(),
    )


def overlap_diff() -> Diff:
    """Claude's change in two files, one overlapping the developer's uncommitted edits; a late edit too."""
    return Diff(
        unified="diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a < b\n+a <= b\n",
        files=(
            FileChange("x.py", ChangeKind.MODIFIED, 1, 1, owner=Ownership.OVERLAP),
            FileChange("y<&>.py", ChangeKind.MODIFIED, 2, 0, owner=Ownership.BOTH),
        ),
        fingerprint="ab" * 32,
        yours="diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+a < b # mine\n",
        late=(FileChange("late & <new>.txt", ChangeKind.ADDED, 1, 0),),
        late_unified="diff --git a/late b/late\n+late <text>\n",
    )


COMMIT = CommitInfo("abcdef1234567890", f"Apply changes\n\n{NASTY}", "Ada <ada@example.com>", NOW)
STATUS = WorkspaceStatus(
    branch="feature/<x>",
    head="abcdef1234567890",
    staged=("a&b.py",),
    unstaged=("c.py",),
    untracked=("<d>.txt",),
    latest_subject=NASTY,
    latest_time=NOW,
    path="/work/repo",
)

QUESTION = ToolQuestion(
    QuestionId("abcdef0123"),
    ToolRequest(
        "req-1", "Bash", ToolKind.SHELL, f"Bash: {NASTY}", command=f"{NASTY} && echo '<b>'", description="a <test>"
    ),
    timeout_s=600,
    session_rule="Bash(if *)",
    uncovered="your rule Bash(<x> *) does not cover every command of this line",
)
EDIT_QUESTION = ToolQuestion(
    QuestionId("abcdef0124"),
    ToolRequest("req-2", "Write", ToolKind.EDIT, "Write .git/<hooks>", paths=("/w/.git/x",), preview="-a < b\n+a <= b"),
    timeout_s=30,
    flagged="it writes into .git/, the repository's own <data>",
)

SAMPLES: list[Reply] = [
    Welcome("Ada <Lovelace>", "/work/<repo>"),
    Welcome(None, ""),
    HelpText((("start", "Welcome"), ("status", NASTY))),
    Unauthorized(42),
    Heard(NASTY, confidence=0.4, language="en"),
    Queued(ahead=2),
    Working(prompt=NASTY, steps=("🔧 Bash: ls <dir>", "⚠️ failed: a & b"), elapsed_s=65.2),
    Working(prompt=NASTY, steps=(), elapsed_s=3, cancellable=False, finished=True),
    AgentAnswer(
        text=f"Done. `x < y` and **bold & brave**\n```python\n{NASTY}\n```\nbye",
        success=True,
        cost_usd=0.0123,
        num_turns=3,
        duration_ms=12_300,
        permission_denials=(PermissionDenied("Bash", "rm -rf <everything>"),),
        notices=("fresh <session>",),
    ),
    AgentAnswer(text="", success=False, errors=(NASTY,)),
    ChangeSummary(CHANGE, make_diff(), blocked_reasons=(f"possible secret: {NASTY}",), superseded_previous=True),
    NoChanges(),
    AutoApproved(CHANGE, make_diff(), COMMIT, "docs <only>"),
    DiffView(make_diff(), CHANGE),
    DiffView(Diff.empty()),
    ChangeSummary(CHANGE, overlap_diff()),
    DiffView(overlap_diff(), CHANGE, blocked_reasons=(f"possible secret: {NASTY}",), refreshed=True),
    ApprovalChoiceNeeded(CHANGE, overlap_diff()),
    GitStatusView(STATUS),
    GitStatusView(WorkspaceStatus(branch=None, head=None)),
    ChangeCommitted(CHANGE, COMMIT, files=3),
    ChangeCommitted(CHANGE, COMMIT, files=1, left_out=("x<1>.py",), kept_yours=("y&.py",)),
    ChangeDiscarded(CHANGE, ("a<b>.py", "c&d.py")),
    ChangeDiscarded(CHANGE, ("a<b>.py",), merged=("a<b>.py",), kept=("k&.py",)),
    ChangeReverted("fedcba9876543210", COMMIT),
    StatusReport(
        user_id=DEFAULT_USER.id,
        agent_session_id="5f3c2a1b-aaaa-bbbb-cccc-000000000000",
        turn_count=4,
        compaction_threshold=20,
        pending=ChangeSummary(CHANGE, make_diff()),
        approved_count=2,
        rejected_count=1,
        history=(AuditRecord(NOW, CHAT, UserId(1), AuditAction.APPROVE, commit_sha="abcdef1234"),),
        workspace=STATUS,
        workspace_path="/work/<repo>",
        running=True,
        session_started=NOW,
    ),
    StatusReport(
        user_id=1,
        agent_session_id=None,
        turn_count=0,
        compaction_threshold=20,
        pending=None,
        approved_count=0,
        rejected_count=0,
        history=(),
        workspace=None,
        workspace_path="",
        running=False,
    ),
    InfoReport(
        (
            Diagnostic("git", ok=True, detail="dulwich 1.2"),
            Diagnostic("claude <cli>", ok=False, detail="not found", fix="npm install -g @anthropic-ai/claude-code"),
            Diagnostic("stt", ok=True, detail="local & slow", fix="set KEY", warning=True),
        )
    ),
    InfoReport(()),
    SessionCleared(kept_pending=True),
    Compaction(20, ok=True),
    Compaction(20, ok=False, detail=NASTY),
    Cancelled(was_running=True),
    Cancelled(was_running=False),
    ErrorReply(NASTY),
    QUESTION,
    EDIT_QUESTION,
    ToolQuestion(
        QuestionId("abcdef0125"),
        ToolRequest("r", "WebFetch", ToolKind.FETCH, "WebFetch https://x/<y>", url="https://x/<y>?a&b"),
        timeout_s=600,
        session_rule="WebFetch(domain:x)",
    ),
    *(ToolQuestionClosed(QUESTION, outcome, by="Ada <L>", reason=NASTY) for outcome in ToolOutcome),
    ToolQuestionClosed(EDIT_QUESTION, ToolOutcome.TIMED_OUT),
    PermissionsView("auto-edits", 600, operator_rules=("Bash(<x> *)",), session_rules=("Bash(a & b *)",)),
    PermissionsView("off", 600, cleared=("Bash(<y>)",)),
    SessionCleared(kept_pending=False, cleared_rules=("Bash(<z> *)",)),
    Cancelled(was_running=True, reason="voicecoder is <restarting>"),
    Working(
        prompt=NASTY,
        steps=(),
        elapsed_s=0.2,
        cancellable=False,
        finished=True,
        outcome=TurnOutcome.CANCELLED,
        stop_reason="voicecoder is <restarting>",
    ),
]
