"""
Hypothesis strategies for the domain's stored values: sessions, pending changes, audit records and their parts.

The `StateStore` contract draws from them, and so can a third party's store tests or state machines.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from voicecoder.domain.model import (
    AuditAction,
    AuditRecord,
    Baseline,
    ChangeId,
    ChangeKind,
    ChangeStatus,
    ChatId,
    CommitInfo,
    Diff,
    FileChange,
    Ownership,
    PendingChange,
    Prompt,
    PromptSource,
    SecretFinding,
    Session,
    TurnId,
    UserId,
)

__all__ = [
    "audit_records",
    "aware_datetimes",
    "baselines",
    "change_ids",
    "chat_ids",
    "commit_infos",
    "diffs",
    "file_changes",
    "pending_changes",
    "prompts",
    "secret_findings",
    "sessions",
    "turn_ids",
    "user_ids",
]

# Explicit on purpose: attrs validators (id patterns) defeat `st.builds` inference.
#
# The argument-free factories are cached: a strategy is an immutable description, and building one is not free.
# `st.timezones()` lists the system's zone database (~2,500 files) the first time each instance is drawn from,
# and the composites below ask for their parts on every draw, so a fresh instance each time cost ~40 ms per
# datetime drawn: two thirds of the StateStore contract's CPU. One instance per process draws the same values.

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_HEX = "0123456789abcdef"


@functools.cache
def chat_ids() -> st.SearchStrategy[ChatId]:
    """Any 64-bit chat id (Telegram groups are negative)."""
    return _INT64.map(ChatId)


@functools.cache
def user_ids() -> st.SearchStrategy[UserId]:
    return _INT64.map(UserId)


@functools.cache
def change_ids() -> st.SearchStrategy[ChangeId]:
    return st.text(alphabet=_HEX, min_size=8, max_size=32).map(ChangeId)


@functools.cache
def turn_ids() -> st.SearchStrategy[TurnId]:
    return st.from_regex(r"[0-9a-zA-Z_-]{1,64}", fullmatch=True).map(TurnId)


@functools.cache
def _fixed_offsets() -> st.SearchStrategy[timezone]:
    limit = timedelta(hours=23, minutes=59)
    return st.timedeltas(min_value=-limit, max_value=limit).map(timezone)


@functools.cache
def aware_datetimes() -> st.SearchStrategy[datetime]:
    """
    Timezone-aware datetimes in IANA zones (including DST gaps and folds), fixed offsets and UTC.

    Kept a day away from `datetime.min`/`max` so that converting to UTC cannot overflow.
    """
    return st.datetimes(
        min_value=datetime(1, 1, 3),  # noqa: DTZ001 - bounds of a naive range, zones come from `timezones`
        max_value=datetime(9999, 12, 29),  # noqa: DTZ001
        timezones=st.one_of(st.timezones(), _fixed_offsets(), st.just(UTC)),
    )


@functools.cache
def _hex_digests(size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_HEX, min_size=size, max_size=size)


@functools.cache
def prompts() -> st.SearchStrategy[Prompt]:
    return st.builds(
        Prompt,
        text=st.text(),
        source=st.sampled_from(PromptSource),
        confidence=st.none() | st.floats(min_value=0.0, max_value=1.0),
        audio_digest=st.none() | _hex_digests(64),
    )


@functools.cache
def file_changes() -> st.SearchStrategy[FileChange]:
    modes = st.none() | st.sampled_from([0o100644, 0o100755, 0o120000, 0o160000]) | st.integers(0, 0o177777)
    return st.builds(
        FileChange,
        path=st.text(min_size=1),
        kind=st.sampled_from(ChangeKind),
        additions=st.integers(min_value=0, max_value=2**40),
        deletions=st.integers(min_value=0, max_value=2**40),
        binary=st.booleans(),
        old_mode=modes,
        new_mode=modes,
        owner=st.sampled_from(Ownership),
    )


@functools.cache
def diffs() -> st.SearchStrategy[Diff]:
    return st.builds(
        Diff,
        unified=st.text(),
        files=st.lists(file_changes(), max_size=4).map(tuple),
        fingerprint=_hex_digests(64) | st.just(""),
        yours=st.text(),
        late=st.lists(file_changes(), max_size=2).map(tuple),
        late_unified=st.text(),
    )


def baselines(turn: TurnId) -> st.SearchStrategy[Baseline]:
    """A baseline of *turn*, with or without a turn-end snapshot."""
    return st.builds(
        Baseline, turn_id=st.just(turn), snapshot=_hex_digests(40) | st.text(), turn_end=st.none() | _hex_digests(40)
    )


@functools.cache
def secret_findings() -> st.SearchStrategy[SecretFinding]:
    return st.builds(
        SecretFinding, path=st.text(min_size=1), line=st.integers(min_value=1, max_value=10**7), kind=st.text()
    )


@functools.cache
def commit_infos() -> st.SearchStrategy[CommitInfo]:
    return st.builds(
        CommitInfo,
        sha=_hex_digests(40),
        message=st.text(min_size=1),
        author=st.text(),
        committed_at=aware_datetimes(),
    )


@st.composite
def pending_changes(
    draw: st.DrawFn, *, chat: ChatId | None = None, status: ChangeStatus | None = None
) -> PendingChange:
    """A change of *chat* in *status* (any when None), with the decision fields that status implies."""
    chat = chat if chat is not None else draw(chat_ids())
    status = status if status is not None else draw(st.sampled_from(ChangeStatus))
    turn = draw(turn_ids())
    decided = status is not ChangeStatus.PENDING
    approved = status in (ChangeStatus.APPROVED, ChangeStatus.AUTO_APPROVED)
    return PendingChange(
        id=draw(change_ids()),
        turn_id=turn,
        chat_id=chat,
        prompt=draw(prompts()),
        baseline=draw(baselines(turn)),
        diff=draw(diffs()),
        created_at=draw(aware_datetimes()),
        agent_session_id=draw(st.none() | st.text(min_size=1)),
        findings=tuple(draw(st.lists(secret_findings(), max_size=3))),
        status=status,
        decided_at=draw(aware_datetimes()) if decided else None,
        decided_by=draw(user_ids()) if decided and status is not ChangeStatus.SUPERSEDED else None,
        commit=draw(commit_infos()) if approved else None,
        message_ids=tuple(draw(st.lists(st.integers(min_value=1, max_value=2**31 - 1), max_size=3))),
    )


@st.composite
def sessions(
    draw: st.DrawFn,
    *,
    chat: ChatId | None = None,
    with_pending: bool | None = None,
    status: ChangeStatus | None = None,
) -> Session:
    """A session of *chat*; with a pending change in *status* when *with_pending* (either when None)."""
    chat = chat if chat is not None else draw(chat_ids())
    has_pending = with_pending if with_pending is not None else draw(st.booleans())
    counts = st.integers(min_value=0, max_value=2**31)
    open_prompt = draw(st.none() | prompts())
    return Session(
        chat_id=chat,
        agent_session_id=draw(st.none() | st.text(min_size=1)),
        turn_count=draw(counts),
        compaction_threshold=draw(st.integers(min_value=1, max_value=1000)),
        approved_count=draw(counts),
        rejected_count=draw(counts),
        latest_change=draw(pending_changes(chat=chat, status=status)) if has_pending else None,
        started_at=draw(st.none() | aware_datetimes()),
        last_activity=draw(st.none() | aware_datetimes()),
        open_turn=draw(st.none() | turn_ids().flatmap(baselines)),
        tool_rules=tuple(draw(st.lists(st.text(min_size=1), max_size=3, unique=True))),
        open_prompt=open_prompt,
        open_prompt_sent_at=draw(st.none() | aware_datetimes()) if open_prompt is not None else None,
        rerun=draw(st.none() | prompts()),
    )


def audit_records(*, chat: ChatId | None = None) -> st.SearchStrategy[AuditRecord]:
    optional_text = st.none() | st.text()
    return st.builds(
        AuditRecord,
        at=aware_datetimes(),
        chat_id=st.just(chat) if chat is not None else chat_ids(),
        user_id=st.none() | user_ids(),
        action=st.sampled_from(AuditAction),
        change_id=st.none() | change_ids(),
        audio_digest=st.none() | _hex_digests(64),
        transcript=optional_text,
        prompt=optional_text,
        agent_session_id=optional_text,
        diff_fingerprint=st.none() | _hex_digests(64),
        commit_sha=st.none() | _hex_digests(40),
        detail=optional_text,
    )
