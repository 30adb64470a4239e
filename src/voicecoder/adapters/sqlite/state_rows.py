"""
Row codecs of the state store: datetimes as text, and changes, sessions and audit records as rows.

Datetimes are stored as ISO 8601 text with their UTC offset; a `zoneinfo.ZoneInfo` zone is kept as an RFC 9557
suffix (``2026-03-29T02:30:00+01:00[Europe/Berlin]``), so aware datetimes come back equal, with the same zone,
wall time and offset, even inside a DST gap or fold.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final
from zoneinfo import ZoneInfo

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
    TurnId,
    UserId,
)

# --- datetimes ----------------------------------------------------------------------


def encode_datetime(value: datetime) -> str:
    """ISO 8601 with offset; a named `ZoneInfo` zone is appended in brackets (RFC 9557)."""
    text = value.isoformat()
    if isinstance(value.tzinfo, ZoneInfo) and value.tzinfo.key is not None:
        text += f"[{value.tzinfo.key}]"
    return text


def decode_datetime(text: str) -> datetime:
    """The inverse of `encode_datetime`: same instant, wall time, offset and zone."""
    zone_key: str | None = None
    if text.endswith("]"):
        text, _, zone_key = text[:-1].partition("[")
    value = _parse_iso(text)
    if zone_key is None:
        return value
    offset = value.utcoffset()
    zoned = value.replace(tzinfo=ZoneInfo(zone_key), fold=0)
    if zoned.utcoffset() != offset:
        # The wall time is ambiguous (a fold) or missing (a gap); the stored offset says which side it was.
        zoned = zoned.replace(fold=1)
    return zoned


_OFFSET = re.compile(r"([+-])(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{6}))?)?$")


def _parse_iso(text: str) -> datetime:
    """`datetime.fromisoformat`, but keeping the sub-second part of an offset (3.11 drops it)."""
    match = _OFFSET.search(text) if len(text) > 19 else None
    if match is None:
        return datetime.fromisoformat(text)
    sign, hours, minutes, seconds, micros = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0), microseconds=int(micros or 0))
    naive = datetime.fromisoformat(text[: match.start()])
    return naive.replace(tzinfo=timezone(-offset if sign == "-" else offset))


def _utc_sort_key(value: datetime) -> str:
    """Fixed-width UTC text that sorts like the instants it encodes."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds")


def _opt_dt(value: datetime | None) -> str | None:
    return encode_datetime(value) if value is not None else None


def _opt_decode(text: str | None) -> datetime | None:
    return decode_datetime(text) if text is not None else None


# --- row mapping ------------------------------------------------------------------------

_CHANGE_COLUMNS: Final = (
    "chat_id",
    "id",
    "turn_id",
    "status",
    "prompt_text",
    "prompt_source",
    "prompt_confidence",
    "prompt_audio_digest",
    "baseline_turn_id",
    "baseline_snapshot",
    "diff_unified",
    "diff_files",
    "diff_fingerprint",
    "findings",
    "created_at",
    "decided_at",
    "decided_utc",
    "decided_by",
    "commit_sha",
    "commit_message",
    "commit_author",
    "commit_time",
    "agent_session_id",
    "message_ids",
    "baseline_turn_end",
    "diff_yours",
    "diff_late_unified",
    "diff_late_files",
    "reverted_by",
    "reverted_at",
)


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """INSERT … ON CONFLICT (key) DO UPDATE every other column; *table* and *columns* are our constants."""
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"  # noqa: S608


_UPSERT_CHANGE: Final = _upsert_sql("changes", _CHANGE_COLUMNS, ("chat_id", "id"))
_SELECT_CHANGE: Final = f"SELECT {', '.join(_CHANGE_COLUMNS)} FROM changes"  # noqa: S608 - constant column names
_UPSERT_SESSION: Final = """
    INSERT INTO sessions (chat_id, agent_session_id, turn_count, compaction_threshold, approved_count,
                          rejected_count, pending_change_id, started_at, last_activity,
                          open_turn_id, open_turn_snapshot, tool_rules, open_turn_end, open_prompt, rerun_prompt)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (chat_id) DO UPDATE SET
        agent_session_id = excluded.agent_session_id,
        turn_count = excluded.turn_count,
        compaction_threshold = excluded.compaction_threshold,
        approved_count = excluded.approved_count,
        rejected_count = excluded.rejected_count,
        pending_change_id = excluded.pending_change_id,
        started_at = excluded.started_at,
        last_activity = excluded.last_activity,
        open_turn_id = excluded.open_turn_id,
        open_turn_snapshot = excluded.open_turn_snapshot,
        tool_rules = excluded.tool_rules,
        open_turn_end = excluded.open_turn_end,
        open_prompt = excluded.open_prompt,
        rerun_prompt = excluded.rerun_prompt
"""
_AUDIT_COLUMNS: Final = (
    "at",
    "chat_id",
    "user_id",
    "action",
    "change_id",
    "audio_digest",
    "transcript",
    "prompt",
    "agent_session_id",
    "diff_fingerprint",
    "commit_sha",
    "detail",
)

_INSERT_AUDIT: Final = (
    f"INSERT INTO audit ({', '.join(_AUDIT_COLUMNS)}) VALUES ({', '.join('?' * len(_AUDIT_COLUMNS))})"  # noqa: S608
)


def _prompt_json(prompt: Prompt | None, sent_at: datetime | None = None) -> str | None:
    if prompt is None:
        return None
    return json.dumps(
        {
            "text": prompt.text,
            "source": prompt.source.value,
            "confidence": prompt.confidence,
            "audio_digest": prompt.audio_digest,
            "sent_at": _opt_dt(sent_at),
        }
    )


def _prompt_from_json(text: str | None) -> tuple[Prompt | None, datetime | None]:
    if text is None:
        return None, None
    fields = json.loads(text)
    prompt = Prompt(
        text=fields["text"],
        source=PromptSource(fields["source"]),
        confidence=fields["confidence"],
        audio_digest=fields["audio_digest"],
    )
    return prompt, _opt_decode(fields["sent_at"])


def _files_json(files: tuple[FileChange, ...]) -> str:
    return json.dumps(
        [
            {
                "path": f.path,
                "kind": f.kind.value,
                "additions": f.additions,
                "deletions": f.deletions,
                "binary": f.binary,
                "old_mode": f.old_mode,
                "new_mode": f.new_mode,
                "owner": f.owner.value,
            }
            for f in files
        ]
    )


def _files_from_json(text: str) -> tuple[FileChange, ...]:
    return tuple(
        FileChange(
            path=f["path"],
            kind=ChangeKind(f["kind"]),
            additions=f["additions"],
            deletions=f["deletions"],
            binary=f["binary"],
            old_mode=f["old_mode"],
            new_mode=f["new_mode"],
            owner=Ownership(f.get("owner", Ownership.AGENT.value)),
        )
        for f in json.loads(text)
    )


def _change_row(change: PendingChange) -> tuple[Any, ...]:
    commit = change.commit
    findings = [{"path": f.path, "line": f.line, "kind": f.kind} for f in change.findings]
    return (
        change.chat_id.value,
        change.id.value,
        change.turn_id.value,
        change.status.value,
        change.prompt.text,
        change.prompt.source.value,
        change.prompt.confidence,
        change.prompt.audio_digest,
        change.baseline.turn_id.value,
        change.baseline.snapshot,
        change.diff.unified,
        _files_json(change.diff.files),
        change.diff.fingerprint,
        json.dumps(findings),
        encode_datetime(change.created_at),
        _opt_dt(change.decided_at),
        _utc_sort_key(change.decided_at) if change.decided_at is not None else None,
        change.decided_by.value if change.decided_by is not None else None,
        commit.sha if commit else None,
        commit.message if commit else None,
        commit.author if commit else None,
        encode_datetime(commit.committed_at) if commit else None,
        change.agent_session_id,
        json.dumps(list(change.message_ids)),
        change.baseline.turn_end,
        change.diff.yours,
        change.diff.late_unified,
        _files_json(change.diff.late),
        change.reverted_by,
        _opt_dt(change.reverted_at),
    )


def _change_from_row(row: sqlite3.Row) -> PendingChange:
    commit = None
    if row["commit_sha"] is not None:
        commit = CommitInfo(
            sha=row["commit_sha"],
            message=row["commit_message"],
            author=row["commit_author"],
            committed_at=decode_datetime(row["commit_time"]),
        )
    findings = tuple(SecretFinding(path=f["path"], line=f["line"], kind=f["kind"]) for f in json.loads(row["findings"]))
    return PendingChange(
        id=ChangeId(row["id"]),
        turn_id=TurnId(row["turn_id"]),
        chat_id=ChatId(row["chat_id"]),
        prompt=Prompt(
            text=row["prompt_text"],
            source=PromptSource(row["prompt_source"]),
            confidence=row["prompt_confidence"],
            audio_digest=row["prompt_audio_digest"],
        ),
        baseline=Baseline(
            turn_id=TurnId(row["baseline_turn_id"]),
            snapshot=row["baseline_snapshot"],
            turn_end=row["baseline_turn_end"],
        ),
        diff=Diff(
            unified=row["diff_unified"],
            files=_files_from_json(row["diff_files"]),
            fingerprint=row["diff_fingerprint"],
            yours=row["diff_yours"],
            late=_files_from_json(row["diff_late_files"]),
            late_unified=row["diff_late_unified"],
        ),
        created_at=decode_datetime(row["created_at"]),
        agent_session_id=row["agent_session_id"],
        findings=findings,
        status=ChangeStatus(row["status"]),
        decided_at=_opt_decode(row["decided_at"]),
        decided_by=UserId(row["decided_by"]) if row["decided_by"] is not None else None,
        commit=commit,
        message_ids=tuple(int(i) for i in json.loads(row["message_ids"])),
        reverted_by=row["reverted_by"],
        reverted_at=_opt_decode(row["reverted_at"]),
    )


def _audit_row(record: AuditRecord) -> tuple[Any, ...]:
    return (
        encode_datetime(record.at),
        record.chat_id.value,
        record.user_id.value if record.user_id is not None else None,
        record.action.value,
        record.change_id.value if record.change_id is not None else None,
        record.audio_digest,
        record.transcript,
        record.prompt,
        record.agent_session_id,
        record.diff_fingerprint,
        record.commit_sha,
        record.detail,
    )


def _audit_from_row(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(
        at=decode_datetime(row["at"]),
        chat_id=ChatId(row["chat_id"]),
        user_id=UserId(row["user_id"]) if row["user_id"] is not None else None,
        action=AuditAction(row["action"]),
        change_id=ChangeId(row["change_id"]) if row["change_id"] is not None else None,
        audio_digest=row["audio_digest"],
        transcript=row["transcript"],
        prompt=row["prompt"],
        agent_session_id=row["agent_session_id"],
        diff_fingerprint=row["diff_fingerprint"],
        commit_sha=row["commit_sha"],
        detail=row["detail"],
    )
