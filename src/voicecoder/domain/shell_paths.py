"""
Paths a shell command names, as a policy reads them.

Each is made absolute against the command's working directory and compared with the workspace, ``.git/`` and
the places voicecoder keeps to itself. Text only: no file is looked at, so a path that depends on the
environment (``$VAR``, ``~user``) is "unknown", never "safe".
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

__all__ = ["HARMLESS_TARGETS", "harmless_target", "in_git_dir", "inside", "reaches", "resolve"]

_BRACES = re.compile(r"\{[^{}]*\}")  # a brace expansion, read as a glob that matches any of its words
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
