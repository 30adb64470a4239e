"""
Hypothesis strategies for every domain reply, with hostile text in every string a user, the agent or git controls.

A messenger (ours, or an embedder's) can render `replies()` to prove that no reply type, and no text inside one,
breaks its output format. `REPLY_TYPES` lists the members of `voicecoder.domain.replies.Reply`, so a test can
check that the strategies cover all of them.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from datetime import UTC, datetime

from hypothesis import strategies as st

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
    Decision,
    DiffView,
    ErrorReply,
    GitStatusView,
    Heard,
    HelpText,
    InfoReport,
    InterruptedPrompt,
    NoChanges,
    PermissionsView,
    ProjectChosen,
    ProjectPicker,
    Queued,
    Reply,
    SessionCleared,
    SpeechCheck,
    StalePrompt,
    StatusReport,
    ToolOutcome,
    ToolQuestion,
    ToolQuestionClosed,
    TurnOutcome,
    Unauthorized,
    Welcome,
    Working,
)

__all__ = ["REPLY_TYPES", "hostile_text", "markdown_text", "replies", "strategy_for"]

REPLY_TYPES: tuple[type, ...] = typing.get_args(Reply)

_HOSTILE = [
    "<",
    ">",
    "&",
    "&amp;",
    "&lt;",
    '"',
    "'",
    "<b>",
    "</i>",
    "<pre>",
    "`",
    "```",
    "**",
    "a",
    "\n",
    "🎤",
    "\u200b",
]


def hostile_text(*, min_size: int = 0, max_size: int = 60) -> st.SearchStrategy[str]:
    """Text that mixes markup-looking fragments, entities, emoji and plain characters."""
    # Markup-like fragments are drawn as often as plain text, so that they meet each other inside one string.
    piece = st.sampled_from(_HOSTILE) | st.sampled_from(_HOSTILE) | st.text(min_size=1, max_size=6)
    return (
        st.lists(piece, min_size=min_size, max_size=max(1, max_size // 4))
        .map("".join)
        .filter(lambda s: min_size <= len(s) <= max_size * 2)
    )


# Claude answers in Markdown; its delimiters meeting in every order is what breaks a naive converter.
_markdown = st.lists(st.sampled_from(["**", "`", "a", " "]), max_size=12).map("".join) | st.lists(
    st.sampled_from(["**", "`", "```", "a", "\n", "<", "&", "_"]), max_size=30
).map("".join)


def markdown_text() -> st.SearchStrategy[str]:
    """Markdown-flavoured text whose delimiters meet in every order (what Claude's answers look like, and worse)."""
    return _markdown


# Hypothesis takes naive bounds and attaches the zones itself.
_EARLIEST = datetime(2000, 1, 1)  # noqa: DTZ001
_LATEST = datetime(2100, 1, 1)  # noqa: DTZ001
_when = st.datetimes(min_value=_EARLIEST, max_value=_LATEST, timezones=st.just(UTC)) | st.datetimes(
    min_value=_EARLIEST, max_value=_LATEST
)
_ids = st.text(alphabet="0123456789abcdef", min_size=8, max_size=32).map(ChangeId)
_sha = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
_paths = st.lists(hostile_text(min_size=1, max_size=40), max_size=30).map(tuple)
_count = st.integers(min_value=0, max_value=10_000)
_seconds = st.floats(min_value=0, max_value=400_000, allow_nan=False) | st.sampled_from([0.0, 0.4, 0.999, 1.0])


def _file_changes() -> st.SearchStrategy[FileChange]:
    return st.builds(
        FileChange,
        path=hostile_text(min_size=1, max_size=40),
        kind=st.sampled_from(ChangeKind),
        additions=_count,
        deletions=_count,
        binary=st.booleans(),
        owner=st.sampled_from(Ownership),
    )


def _diffs() -> st.SearchStrategy[Diff]:
    return st.builds(
        Diff,
        unified=hostile_text(max_size=400) | st.text(max_size=5000),
        files=st.lists(_file_changes(), max_size=45).map(tuple),
        fingerprint=st.text(alphabet="0123456789abcdef", min_size=16, max_size=64),
        yours=st.just("") | hostile_text(max_size=400) | st.text(max_size=3000),
        late=st.lists(_file_changes(), max_size=10).map(tuple),
        late_unified=st.just("") | hostile_text(max_size=400),
    )


def _commits() -> st.SearchStrategy[CommitInfo]:
    return st.builds(
        CommitInfo,
        sha=_sha,
        message=hostile_text(min_size=1),
        author=hostile_text(),
        committed_at=_when,
        squashed=_paths,
    )


def _statuses() -> st.SearchStrategy[WorkspaceStatus]:
    names = st.lists(hostile_text(min_size=1, max_size=20), max_size=25).map(tuple)
    return st.builds(
        WorkspaceStatus,
        branch=st.none() | hostile_text(min_size=1, max_size=30),
        head=st.none() | _sha,
        staged=names,
        unstaged=names,
        untracked=names,
        tracked_files=_count,
        latest_subject=st.none() | hostile_text(),
        latest_time=st.none() | _when,
        path=hostile_text(),
    )


def _summaries() -> st.SearchStrategy[ChangeSummary]:
    return st.builds(
        ChangeSummary,
        change_id=_ids,
        diff=_diffs(),
        blocked_reasons=st.lists(hostile_text(), max_size=3).map(tuple),
        superseded_previous=st.booleans(),
        decision=st.none() | st.sampled_from(Decision),
        decision_detail=st.text(alphabet="0123456789abcdef", max_size=7),
    )


def _audit() -> st.SearchStrategy[AuditRecord]:
    return st.builds(
        AuditRecord,
        at=_when,
        chat_id=st.integers().map(ChatId),
        user_id=st.none() | st.integers().map(UserId),
        action=st.sampled_from(AuditAction),
        commit_sha=st.none() | _sha,
    )


def _tool_requests() -> st.SearchStrategy[ToolRequest]:
    return st.builds(
        ToolRequest,
        request_id=st.text(alphabet="0123456789abcdef-", min_size=1, max_size=36),
        tool=hostile_text(min_size=1, max_size=20),
        kind=st.sampled_from(ToolKind),
        label=hostile_text(min_size=1, max_size=200),
        paths=st.lists(hostile_text(min_size=1, max_size=60), max_size=3).map(tuple),
        command=st.none() | hostile_text(min_size=1, max_size=600),
        description=st.none() | hostile_text(max_size=120),
        url=st.none() | hostile_text(min_size=1, max_size=120),
        preview=st.none() | hostile_text(max_size=600) | st.text(max_size=3000),
    )


def _tool_questions() -> st.SearchStrategy[ToolQuestion]:
    return st.builds(
        ToolQuestion,
        question_id=st.text(alphabet="0123456789abcdef", min_size=8, max_size=32).map(QuestionId),
        request=_tool_requests(),
        timeout_s=_seconds,
        session_rule=st.none() | hostile_text(min_size=1, max_size=80),
        flagged=st.none() | hostile_text(min_size=1, max_size=80),
        uncovered=st.none() | hostile_text(min_size=1, max_size=80),
    )


# Built once per process: building them costs ~80 ms, and a test that draws `strategy_for` inside each example
# paid it per example (half the CPU of the strict-HTML property tests). Strategies are immutable, so sharing
# them changes no drawn value.
@functools.cache
def _strategies() -> Mapping[type, st.SearchStrategy[Reply]]:
    text = hostile_text()
    commands = st.lists(st.tuples(hostile_text(min_size=1, max_size=12), text), max_size=8).map(tuple)
    return {
        Welcome: st.builds(Welcome, user_name=st.none() | text, workspace=text, commands=commands),
        HelpText: st.builds(HelpText, commands=commands),
        Unauthorized: st.builds(Unauthorized, user_id=st.integers()),
        Heard: st.builds(
            Heard,
            text=hostile_text(min_size=1),
            confidence=st.none() | st.floats(min_value=0, max_value=1),
            language=st.none() | st.sampled_from(["en", "de", "fr"]),
        ),
        Queued: st.builds(Queued, ahead=_count),
        Working: st.builds(
            Working,
            prompt=hostile_text(min_size=1, max_size=600),
            steps=st.lists(hostile_text(min_size=1, max_size=250), max_size=10).map(tuple),
            elapsed_s=_seconds,
            cancellable=st.booleans(),
            finished=st.booleans(),
            outcome=st.none() | st.sampled_from(TurnOutcome),
            stop_reason=st.none() | text,
        ),
        AgentAnswer: st.builds(
            AgentAnswer,
            text=hostile_text(max_size=800) | _markdown,
            success=st.booleans(),
            cost_usd=st.none() | st.floats(min_value=0, max_value=100),
            num_turns=st.none() | _count,
            duration_ms=st.none() | _count,
            permission_denials=st.lists(
                st.builds(PermissionDenied, tool=hostile_text(min_size=1, max_size=12), label=text, hint=text),
                max_size=3,
            ).map(tuple),
            notices=st.lists(text, max_size=3).map(tuple),
            errors=st.lists(text, max_size=3).map(tuple),
        ),
        ChangeSummary: _summaries(),
        NoChanges: st.just(NoChanges()),
        AutoApproved: st.builds(AutoApproved, change_id=_ids, diff=_diffs(), commit=_commits(), rule=text),
        DiffView: st.builds(
            DiffView,
            diff=_diffs(),
            change_id=st.none() | _ids,
            blocked_reasons=st.lists(hostile_text(), max_size=3).map(tuple),
            refreshed=st.booleans(),
            decision=st.none() | st.sampled_from(Decision),
            decision_detail=st.text(alphabet="0123456789abcdef", max_size=7),
        ),
        ApprovalChoiceNeeded: st.builds(ApprovalChoiceNeeded, change_id=_ids, diff=_diffs()),
        GitStatusView: st.builds(GitStatusView, status=_statuses()),
        ChangeCommitted: st.builds(
            ChangeCommitted,
            change_id=_ids,
            commit=_commits(),
            files=_count,
            left_out=_paths,
            kept_yours=_paths,
            prompt=text,
        ),
        ChangeDiscarded: st.builds(
            ChangeDiscarded,
            change_id=_ids,
            paths=_paths,
            merged=_paths,
            kept=_paths,
            commits=_paths,
            branch=text,
            left_branch=text,
            moved_from=text,
            back_at=text,
        ),
        ChangeReverted: st.builds(ChangeReverted, reverted_sha=_sha, commit=_commits()),
        StatusReport: st.builds(
            StatusReport,
            user_id=st.integers(),
            agent_session_id=st.none() | hostile_text(min_size=1),
            turn_count=_count,
            compaction_threshold=_count,
            pending=st.none() | _summaries(),
            approved_count=_count,
            rejected_count=_count,
            history=st.lists(_audit(), max_size=6).map(tuple),
            workspace=st.none() | _statuses(),
            workspace_path=text,
            running=st.booleans(),
            session_started=st.none() | _when,
            user_name=st.none() | text,
            username=st.none() | hostile_text(min_size=1, max_size=32),
            tool_mode=st.none() | st.sampled_from(["ask", "auto-edits", "off"]),
            tool_rules=st.lists(text, max_size=4).map(tuple),
            operator_tool_rules=st.lists(text, max_size=4).map(tuple),
            project=st.just("") | _project_names,
        ),
        ProjectPicker: st.builds(
            ProjectPicker,
            projects=st.lists(_project_names, min_size=1, max_size=6, unique=True).map(tuple),
            current=st.none() | _project_names,
            held=st.booleans(),
        ),
        ProjectChosen: st.builds(ProjectChosen, project=_project_names, workspace=text, running_held=_count),
        InfoReport: st.builds(
            InfoReport,
            project=st.just("") | _project_names,
            diagnostics=st.lists(
                st.builds(
                    Diagnostic, name=text, ok=st.booleans(), detail=text, fix=st.none() | text, warning=st.booleans()
                ),
                max_size=8,
            ).map(tuple),
        ),
        SessionCleared: st.builds(
            SessionCleared, kept_pending=st.booleans(), cleared_rules=st.lists(text, max_size=4).map(tuple)
        ),
        Compaction: st.builds(Compaction, turns_before=_count, ok=st.booleans(), detail=text),
        Cancelled: st.builds(Cancelled, was_running=st.booleans(), reason=st.none() | text),
        ErrorReply: st.builds(ErrorReply, message=hostile_text(min_size=1), hint=st.none() | text),
        SpeechCheck: st.builds(
            SpeechCheck,
            text=text,
            audio_s=st.none() | _seconds,
            seconds=_seconds,
            confidence=st.none() | st.floats(min_value=0, max_value=1),
        ),
        InterruptedPrompt: st.builds(
            InterruptedPrompt, prompt=hostile_text(min_size=0, max_size=300), voice=st.booleans()
        ),
        StalePrompt: st.builds(
            StalePrompt,
            age_s=_seconds,
            max_age_s=_seconds,
            prompt=st.none() | hostile_text(min_size=1, max_size=300),
            voice_duration_s=st.none() | _seconds,
        ),
        ToolQuestion: _tool_questions(),
        ToolQuestionClosed: st.builds(
            ToolQuestionClosed,
            question=_tool_questions(),
            outcome=st.sampled_from(ToolOutcome),
            by=st.none() | text,
            reason=text,
        ),
        PermissionsView: st.builds(
            PermissionsView,
            mode=st.sampled_from(["ask", "auto-edits", "off"]),
            timeout_s=_seconds,
            operator_rules=st.lists(text, max_size=4).map(tuple),
            session_rules=st.lists(text, max_size=4).map(tuple),
            cleared=st.lists(text, max_size=4).map(tuple),
        ),
    }


_project_names = st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)


def strategy_for(reply_type: type) -> st.SearchStrategy[Reply]:
    """The strategy of one reply type.

    Raises:
        KeyError: *reply_type* is not a member of `Reply`.
    """
    return _strategies()[reply_type]


def replies() -> st.SearchStrategy[Reply]:
    """Any reply the domain can produce."""
    return st.one_of(*_strategies().values())
