"""Small HTML pieces the reply renderers share: durations, times, the file lines of a diff, overlap notes, paths."""

from __future__ import annotations

from datetime import datetime

from voicecoder.adapters.telegram.html_text import esc
from voicecoder.domain.model import ChangeKind, Diff, FileChange, Ownership
from voicecoder.domain.wording import plural

MAX_LISTED_FILES = 40


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "<1s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _when(dt: datetime | None) -> str:
    if dt is None:
        return "—"
    zone = dt.tzname() if dt.tzinfo is not None else None
    return f"{dt:%Y-%m-%d %H:%M}" + (f" {zone}" if zone else "")


_plural = plural


_KIND_ICON = {
    ChangeKind.ADDED: "🆕",
    ChangeKind.MODIFIED: "✏️",
    ChangeKind.DELETED: "🗑",
    ChangeKind.MODE_CHANGED: "🔧",
}


_OWNER_NOTE = {
    Ownership.AGENT: "",
    Ownership.BOTH: " <i>(your own edits in it stay uncommitted)</i>",
    Ownership.OVERLAP: " ⚠️ <b>also has your uncommitted edits</b>",
}


def _file_line(change: FileChange) -> str:
    stat = "binary" if change.binary else f"+{change.additions} −{change.deletions}"
    return f"{_KIND_ICON[change.kind]} <code>{esc(change.path)}</code> {stat}{_OWNER_NOTE[change.owner]}"


def _file_lines(diff: Diff, files: tuple[FileChange, ...] | None = None) -> list[str]:
    listed = diff.files if files is None else files
    lines = [_file_line(f) for f in listed[:MAX_LISTED_FILES]]
    if len(listed) > MAX_LISTED_FILES:
        lines.append(f"… and {len(listed) - MAX_LISTED_FILES} more")
    return lines


def _overlap_note(diff: Diff) -> str:
    n = len(diff.overlapping)
    these = "this file" if n == 1 else "these files"
    return (
        f"\n⚠️ Claude's edits overlap your uncommitted edits in {_plural(n, 'file')}: {_paths(diff.overlapping)}. "
        f"Choose <b>Commit with my edits</b> (commits {these} as they are, your edits included) or "
        f"<b>Leave {these} out</b> (nothing of {these} is committed; {'it stays' if n == 1 else 'they stay'} "
        "as it is on disk)."
    )


def _paths(paths: tuple[str, ...], limit: int = 20) -> str:
    shown = ", ".join(f"<code>{esc(p)}</code>" for p in paths[:limit])
    return shown + (f" … and {len(paths) - limit} more" if len(paths) > limit else "")
