"""
Paths a shell command names, as a policy reads them.

Each is made absolute against the command's working directory and compared with the workspace, ``.git/`` and
the places voicecoder keeps to itself. Text only: no file is looked at, so a path that depends on the
environment (``$VAR``, ``~user``) is "unknown", never "safe".
"""

from __future__ import annotations

import fnmatch
import itertools
import posixpath
import re
from collections.abc import Sequence

__all__ = [
    "HARMLESS_TARGETS",
    "expand_braces",
    "harmless_target",
    "in_git_dir",
    "inside",
    "reaches",
    "reaches_private",
    "resolve",
]

_BRACES = re.compile(r"\{[^{}]*\}")  # a brace expansion, read as a glob that matches any of its words
_SEQUENCE = re.compile(r"^(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.(-?\d+))?$")
_MAX_EXPANSION = 256
HARMLESS_TARGETS = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty")
_TEMP_DIRS = ("/tmp", "/var/tmp")  # noqa: S108 - named to recognise them, not to write there


def resolve(path: str, cwd: str, home: str | None) -> str | None:
    """*path* made absolute against *cwd*; None when it depends on the environment (``$VAR``)."""
    if path.startswith("~"):
        head, _, rest = path.partition("/")
        if home is None or head != "~":  # ~user is someone else's home
            return None
        path = posixpath.join(home, rest)
    if "$" in path:
        return None
    return posixpath.normpath(posixpath.join(cwd, path))


def expand_braces(word: str) -> list[str] | None:
    """
    The words bash's brace expansion makes of *word* (``{/etc/x,y}`` → ``/etc/x``, ``y``; ``{1..3}``).

    None when there would be more than a few hundred. A brace that is not an expansion stays as written.
    """
    found: list[str] = []
    pending = [word]
    while pending:
        current = pending.pop()
        try:
            alternatives = _first_expansion(current)
        except OverflowError:
            return None
        if alternatives is None:
            found.append(current)
        else:
            pending.extend(alternatives)
        if len(found) + len(pending) > _MAX_EXPANSION:
            return None
    return found[::-1]


def _first_expansion(word: str) -> list[str] | None:
    """*word* with its first brace expansion made, one word per alternative; None when it has none."""
    for start, char in enumerate(word):
        if char != "{" or (start and word[start - 1] == "$"):
            continue
        depth, commas = 0, []
        for end in range(start, len(word)):
            if word[end] == "{":
                depth += 1
            elif word[end] == "}":
                depth -= 1
                if depth == 0:
                    break
            elif word[end] == "," and depth == 1:
                commas.append(end)
        else:
            continue
        head, tail, body = word[:start], word[end + 1 :], word[start + 1 : end]
        if commas:
            bounds = [start, *commas, end]
            return [head + word[a + 1 : b] + tail for a, b in itertools.pairwise(bounds)]
        sequence = _SEQUENCE.match(body)
        items = _sequence(*sequence.groups()) if sequence is not None else None
        if items is not None:
            return [head + item + tail for item in items]
    return None


def _sequence(first: str, last: str, step: str | None) -> list[str] | None:
    """``{1..3}``, ``{a..e..2}`` (None: ``{1..a}`` is none); OverflowError when it has too many items to check."""
    numbers = first.lstrip("-").isdigit()
    if numbers != last.lstrip("-").isdigit():
        return None
    a, b = (int(first), int(last)) if numbers else (ord(first), ord(last))
    by = abs(int(step)) if step and int(step) else 1
    values = range(a, b + 1, by) if a <= b else range(a, b - 1, -by)
    if len(values) > _MAX_EXPANSION:
        raise OverflowError
    return [str(v) if numbers else chr(v) for v in values]


def inside(path: str, root: str) -> bool:
    """*path* is *root* or below it (a sibling that shares its prefix is not)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def reaches(path: str, root: str) -> bool:
    """*path* is *root* or inside it; for a glob or brace pattern (``/etc/voice*/*.env``), some path it names is."""
    if inside(path, root):
        return True
    if not any(ch in path for ch in "*?[{"):
        return False
    parts, root_parts = _BRACES.sub("*", path).split("/"), root.rstrip("/").split("/")
    return len(parts) >= len(root_parts) and all(map(fnmatch.fnmatchcase, root_parts, parts))


def in_git_dir(path: str, root: str) -> bool:
    """*path* is in the repository's own data under *root*."""
    return inside(path, posixpath.join(root, ".git"))


def harmless_target(path: str) -> bool:
    """A write there loses nothing: ``/dev/null`` and the like, a descriptor, a temporary directory."""
    return path in HARMLESS_TARGETS or path.startswith("/dev/fd/") or any(inside(path, t) for t in _TEMP_DIRS)


def reaches_private(word: str, private: Sequence[str], cwd: str, home: str | None) -> bool:
    """Whether *word*, a path as written (braces, ``$HOME``, ``..``), can lead into one of the *private* roots."""
    if home is not None:
        word = _HOME_VARIABLE.sub(lambda _: home, word)
    for path in expand_braces(word) or [word]:
        if any(reaches(p, r) for p in _possible_paths(path, cwd, home) for r in private):
            return True
        if any(_after_a_variable(path, r) for r in private):
            return True
    return False


_HOME_VARIABLE = re.compile(r"\$(?:HOME\b|\{HOME\})")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\([^)]*\)|[A-Za-z_][A-Za-z0-9_]*|.)")


def _after_a_variable(path: str, root: str) -> bool:
    """``$X/.claude/x``, ``$D/voicecoder.env``: what follows a variable names a private root's last part."""
    if "$" not in path:
        return False
    tail = _VARIABLE.split(path)[-1]
    return posixpath.basename(root.rstrip("/")) in tail.split("/")


def _possible_paths(path: str, cwd: str, home: str | None) -> list[str]:
    """
    Where *path* can lead from *cwd*, or from a directory below it.

    The agent's shell keeps the directory it last moved to, so ``../../data`` may climb from deeper than *cwd*.
    """
    resolved = resolve(path, cwd, home)
    if resolved is None:
        return []
    normal = posixpath.normpath(path)
    if path.startswith(("/", "~")) or not normal.startswith(".."):
        return [resolved]
    climbs = len(re.match(r"^(?:\.\./?)*", normal + "/").group()) // 3  # type: ignore[union-attr]
    rest = normal[climbs * 3 :]
    bases = [cwd]
    while len(bases) <= climbs and bases[-1] != "/":
        bases.append(posixpath.dirname(bases[-1]))
    return [posixpath.normpath(posixpath.join(base, rest)) for base in bases]
