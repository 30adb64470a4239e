"""
Three-way hunk logic: apply one side's edits to another version of a file, or say that they overlap.

Lines are what git calls lines (split after each LF; a lone CR is part of the line, the last line may lack its
LF). Each side's edits are hunks against the common base, found with `difflib.SequenceMatcher`. Two hunks
*overlap* when they change a common base line, when both insert at the same place, or when one inserts
strictly inside the lines the other replaces; such a merge is refused (`None`). Hunks that only touch (one
ends where the other begins) are combined, as `git add -p` would let a developer do by hand; identical hunks
on both sides count once. git's own `merge-file` is stricter: it also refuses touching hunks.

`merge_versions` lifts this to whole versions of a path — (mode, content id) pairs or absence — so the same
rules serve the git adapter (content ids are blob shas) and the in-memory fake (content ids are the bytes).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Final

import attrs

__all__ = [
    "BINARY_SNIFF",
    "OVERLAP",
    "Overlap",
    "Version",
    "is_binary",
    "merge3",
    "merge_lines",
    "merge_versions",
    "split_lines",
]

BINARY_SNIFF: Final = 8000
"""Like git: a NUL byte in the first 8000 bytes makes a file binary."""
_EXACT_LINES: Final = 20_000
"""Above this many lines, difflib's popular-line heuristic keeps matching from going quadratic."""
_REGULAR: Final = 0o100644
_EXECUTABLE: Final = 0o100755

Version = tuple[int, bytes]
"""(git mode, content id) of one path."""
Hunk = tuple[int, int, tuple[bytes, ...]]
"""Base lines [start, end) replaced by the given lines."""


@attrs.frozen
class Overlap:
    """The two sides' edits overlap: no merge is made."""


OVERLAP: Final = Overlap()


def split_lines(data: bytes) -> list[bytes]:
    """Lines as git sees them: split after each LF only; the last line may have no LF."""
    parts = data.split(b"\n")
    lines = [part + b"\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF]


def _hunks(base: list[bytes], other: list[bytes]) -> list[Hunk]:
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=len(base) + len(other) > _EXACT_LINES)
    return [(i1, i2, tuple(other[j1:j2])) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _overlaps(x: Hunk, y: Hunk) -> bool:
    (s1, e1, _), (s2, e2, _) = x, y
    if s1 == e1 and s2 == e2:
        return s1 == s2
    if s1 == e1:
        return s2 < s1 < e2
    if s2 == e2:
        return s1 < s2 < e1
    return max(s1, s2) < min(e1, e2)


def merge_lines(base: list[bytes], ours: list[bytes], theirs: list[bytes]) -> list[bytes] | None:
    """*base* with the edits of both *ours* and *theirs*; None where they overlap."""
    mine = _hunks(base, ours)
    other = _hunks(base, theirs)
    # A hunk both sides made counts once. Within one side hunks never touch (difflib separates them by equal
    # lines), so a hunk shared by both sides overlaps nothing, and only hunks of different sides can overlap.
    shared = set(mine).intersection(other)
    tagged = sorted(
        [(h, 0) for h in mine if h not in shared] + [(h, 1) for h in other if h not in shared],
        key=lambda item: (item[0][0], item[0][1]),
    )
    for i, (hunk, side) in enumerate(tagged):
        for later, later_side in tagged[i + 1 :]:
            if later[0] > hunk[1]:  # starts after this one ends: neither it nor any later hunk can overlap
                break
            if later_side != side and _overlaps(hunk, later):
                return None
    both = sorted([*shared, *(hunk for hunk, _ in tagged)], key=lambda h: (h[0], h[1]))
    merged: list[bytes] = []
    at = 0
    for start, end, lines in both:
        merged += base[at:start]
        merged += lines
        at = end
    merged += base[at:]
    return merged


def merge3(base: bytes, ours: bytes, theirs: bytes) -> bytes | None:
    """The content with both sides' edits to *base*; None if they overlap or a changed side is binary."""
    if theirs in (ours, base):
        return ours
    if ours == base:
        return theirs
    if is_binary(base) or is_binary(ours) or is_binary(theirs):
        return None
    merged = merge_lines(split_lines(base), split_lines(ours), split_lines(theirs))
    return None if merged is None else b"".join(merged)


def _merge_mode(base: int, ours: int, theirs: int) -> int | None:
    if theirs in (ours, base):
        return ours
    if ours == base:
        return theirs
    return None


def merge_versions(
    base: Version | None,
    ours: Version | None,
    theirs: Version | None,
    *,
    read: Callable[[bytes], bytes],
    store: Callable[[bytes], bytes],
) -> Version | Overlap | None:
    """
    *ours* with the change *base* → *theirs* applied; None means absent.

    Whole-path changes (a file added or deleted, a symlink or submodule changed) merge only when one side
    left the path alone. Regular files merge their executable bit and their lines separately. *read* gives the
    content of an id; *store* keeps merged content and returns its id.
    """
    if theirs in (ours, base):
        return ours
    if ours == base:
        return theirs
    if base is None or ours is None or theirs is None:
        return OVERLAP
    kinds = {base[0], ours[0], theirs[0]}
    if not kinds <= {_REGULAR, _EXECUTABLE}:
        return OVERLAP
    mode = _merge_mode(base[0], ours[0], theirs[0])
    if mode is None:
        return OVERLAP
    if ours[1] == theirs[1] or theirs[1] == base[1]:
        return (mode, ours[1])
    if ours[1] == base[1]:
        return (mode, theirs[1])
    content = merge3(read(base[1]), read(ours[1]), read(theirs[1]))
    if content is None:
        return OVERLAP
    return (mode, store(content))
