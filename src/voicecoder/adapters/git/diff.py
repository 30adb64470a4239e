r"""
The diff renderer: git-style unified diffs of (mode, content id) entries, with per-file stats.

Output follows `git diff` closely enough for `git apply` to take it: ``diff --git`` headers, mode lines,
``index`` lines, 3 lines of context, ``\ No newline at end of file`` and ``Binary files … differ``. Lines are
git's (split after LF); bytes are decoded for display only, by the caller.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Final

from voicecoder.adapters.git.merge import is_binary, split_lines
from voicecoder.adapters.git.trees import Entry, display
from voicecoder.domain.model import ChangeKind, FileChange, Ownership

__all__ = ["file_diff"]

_NULL_SHA: Final = b"0" * 40
_EXACT_DIFF_LINES: Final = 20_000


_ESCAPES: Final = {
    7: b"\\a",
    8: b"\\b",
    9: b"\\t",
    10: b"\\n",
    11: b"\\v",
    12: b"\\f",
    13: b"\\r",
    34: b'\\"',
    92: b"\\\\",
}


def _name(prefix: bytes, path: bytes) -> bytes:
    """*prefix* + *path* as git writes it in a diff: C-quoted if it holds a quote, backslash or control byte."""
    name = prefix + path
    if not any(b < 32 or b in (34, 92, 127) for b in name):
        return name
    # As with core.quotePath=false: bytes above 127 stay as they are (names in any script stay readable).
    return b'"' + b"".join(_ESCAPES.get(b, b"\\%03o" % b if b < 32 or b == 127 else bytes([b])) for b in name) + b'"'


def _hunk_range(start: int, length: int) -> bytes:
    first = start + 1 if length else start
    return b"%d" % first if length == 1 else b"%d,%d" % (first, length)


def _body(old: bytes, new: bytes) -> tuple[list[bytes], int, int]:
    """Hunks in git's format, plus the numbers of added and removed lines."""
    a = split_lines(old)
    b = split_lines(new)
    out: list[bytes] = []
    added = removed = 0

    def emit(prefix: bytes, line: bytes) -> None:
        out.append(prefix + line if line.endswith(b"\n") else prefix + line + b"\n\\ No newline at end of file\n")

    # Exact matching is quadratic in the worst case; big files get difflib's popular-line heuristic.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=len(a) + len(b) > _EXACT_DIFF_LINES)
    for group in matcher.get_grouped_opcodes(3):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(b"@@ -" + _hunk_range(i1, i2 - i1) + b" +" + _hunk_range(j1, j2 - j1) + b" @@\n")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                for line in a[x1:x2]:
                    emit(b" ", line)
                continue
            for line in a[x1:x2]:
                emit(b"-", line)
            for line in b[y1:y2]:
                emit(b"+", line)
            removed += x2 - x1
            added += y2 - y1
    return out, added, removed


def _short(sha: bytes) -> bytes:
    """Seven characters of a hex sha; content ids that are not shas (the fake's) are hashed like git would."""
    if len(sha) == 40:
        return sha[:7]
    import hashlib  # noqa: PLC0415 - only the in-memory fake has raw content ids

    return hashlib.sha1(b"blob %d\0" % len(sha) + sha).hexdigest()[:7].encode()  # noqa: S324 - git's blob id


def file_diff(
    path: bytes,
    before: Entry | None,
    after: Entry | None,
    read: Callable[[bytes], bytes],
    *,
    owner: Ownership = Ownership.AGENT,
) -> tuple[bytes, FileChange]:
    """The diff of one path from *before* to *after* (None: absent), and its `FileChange`."""
    old_mode, old_sha = before if before is not None else (0, _NULL_SHA)
    new_mode, new_sha = after if after is not None else (0, _NULL_SHA)
    lines = [b"diff --git " + _name(b"a/", path) + b" " + _name(b"b/", path) + b"\n"]
    if before is None:
        lines.append(b"new file mode %o\n" % new_mode)
        kind = ChangeKind.ADDED
    elif after is None:
        lines.append(b"deleted file mode %o\n" % old_mode)
        kind = ChangeKind.DELETED
    elif old_sha == new_sha:
        kind = ChangeKind.MODE_CHANGED
    else:
        kind = ChangeKind.MODIFIED
    if before is not None and after is not None and old_mode != new_mode:
        lines += [b"old mode %o\n" % old_mode, b"new mode %o\n" % new_mode]
    added = removed = 0
    binary = False
    if old_sha != new_sha:
        old_id = _short(old_sha) if before is not None else _NULL_SHA[:7]
        new_id = _short(new_sha) if after is not None else _NULL_SHA[:7]
        index_line = b"index " + old_id + b".." + new_id
        if before is not None and after is not None and old_mode == new_mode:
            index_line += b" %o" % old_mode
        lines.append(index_line + b"\n")
        old = read(old_sha) if before is not None else b""
        new = read(new_sha) if after is not None else b""
        a_name = _name(b"a/", path) if before is not None else b"/dev/null"
        b_name = _name(b"b/", path) if after is not None else b"/dev/null"
        if is_binary(old) or is_binary(new):
            binary = True
            lines.append(b"Binary files " + a_name + b" and " + b_name + b" differ\n")
        elif old or new:
            hunks, added, removed = _body(old, new)
            lines += [b"--- " + a_name + b"\n", b"+++ " + b_name + b"\n", *hunks]
    change = FileChange(
        path=display(path),
        kind=kind,
        additions=added,
        deletions=removed,
        binary=binary,
        old_mode=before[0] if before is not None else None,
        new_mode=after[0] if after is not None else None,
        owner=owner,
    )
    return b"".join(lines), change
