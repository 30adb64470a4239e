"""A git command line's words: git's own options first (``-C dir``, ``-c k=v``), then the subcommand and its words."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["split_git"]

_OPTIONS_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"})


def split_git(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """*args* (after ``git``) as git's own options (names only; their values skipped) and the rest, subcommand first."""
    options: list[str] = []
    index = 0
    while index < len(args) and args[index].startswith("-"):
        options.append(args[index])
        index += 2 if args[index] in _OPTIONS_WITH_VALUE else 1
    return options, list(args[index:])
