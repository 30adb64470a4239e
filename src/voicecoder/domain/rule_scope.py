r"""
What a ``Bash(…)`` rule may cover: a command that stays in the workspace and runs what it says.

A rule is granted for work in the workspace (``Bash(cat *)`` after ``cat README.md``). Read literally, it would
also cover ``cat ~/.ssh/id_rsa``, ``cat $'\\x2fetc/shadow'``, ``pytest --junitxml=/etc/x``, ``make -C / x``,
``npm test --prefix /`` or ``cd && cat .ssh/id_rsa`` — reads, writes and code the user never saw when granting it,
and that the file tools would refuse. So a rule covers a command only while every path it names stays inside the
workspace: a word (or the value of an option in it: ``--opt=/x``, ``-C/x``, ``xml:/x``, ``a,/x``, or a variable
set for it) that is absolute outside the workspace, starts with ``~``, climbs out with ``..`` (or a glob that
can be ``..``), or depends on the environment (``$HOME``, ``$(…)``, backticks) leaves the command to the user.
Brace expansions are expanded first. URLs are not paths (``file://`` ones are). ``/dev/null`` and the like are
fine. A git command configured on its command line (``git -c core.pager=…``, ``--config-env``, ``--exec-path``)
or told to run a program (``git grep -O…``, ``--upload-pack``, ``--template``, ``bisect run``) is not covered
either. Text analysis, not a sandbox (ADR 0019); it errs on the side of asking (``grep -r /api/ .`` asks too).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence

from voicecoder.domain.git_words import split_git
from voicecoder.domain.shell_lexer import Expanding
from voicecoder.domain.shell_paths import HARMLESS_TARGETS, expand_braces, inside

__all__ = ["git_runs_code", "leaves_directory", "names_from_elsewhere", "outside_word"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CHANGES_DIRECTORY = frozenset({"cd", "pushd", "popd"})
#: Per git subcommand: options that make it run a program or install code (hooks from a template).
_GIT_RUNS: dict[str, tuple[str, ...]] = {
    "grep": ("-O", "--open-files-in-pager"),
    "difftool": ("-x", "--extcmd"),
    "fetch": ("--upload-pack",),
    "pull": ("--upload-pack",),
    "ls-remote": ("--upload-pack",),
    "clone": ("-u", "--upload-pack", "--template", "-c", "--config"),
    "init": ("--template",),
    "archive": ("--exec",),
    "submodule": (),
}


def outside_word(words: Sequence[str], workspace: str, home: str | None) -> str | None:
    """
    The first of *words* that names a path outside *workspace* or one that depends on the environment, or None.

    *words*: a command's arguments, its wrappers' options, the variables set for it, its redirections.
    """
    for word in words:
        if isinstance(word, Expanding) or "`" in word:
            return word
        for piece in _pieces(word):
            paths = expand_braces(piece)
            if paths is None or any(_leaves(path, workspace, home) for path in paths):
                return word
    return None


#: Options whose value is a file of names to read or write (the names are not in the words).
_NAMES_FROM = ("--files0-from", "--files-from", "--arg-file")


def names_from_elsewhere(program: str, args: Sequence[str]) -> bool:
    """Whether the command takes file names from a file or its input (``wc --files0-from=F``, ``tar -T F``)."""
    if any(a.partition("=")[0] in _NAMES_FROM for a in args):
        return True
    if program == "tar":
        return any(a == "-T" or (a.startswith("-") and not a.startswith("--") and "T" in a) for a in args)
    return program == "zip" and "-@" in args


def leaves_directory(program: str, args: Sequence[str]) -> bool:
    """``cd`` with no directory (home) or ``-`` (the previous one): where it lands is not in the words."""
    return program in _CHANGES_DIRECTORY and (not args or args[0] in ("-", "--") or program == "popd")


def _pieces(word: str) -> list[str]:
    """*word* and the values glued into it: ``--opt=V``, ``-CV``, ``kind:V``, ``a,V``."""
    pieces = [word]
    if word.startswith("-") and not word.startswith("--") and len(word) > 2:
        pieces.append(word[2:])
    pieces.extend(re.split(r"[=,]", word)[1:])
    found: list[str] = []
    for piece in pieces:
        if _URL.match(piece):
            scheme, _, rest = piece.partition("://")
            if scheme.lower() == "file":  # file:///etc/x names a local file
                found.append(rest[rest.find("/") :] if "/" in rest else "/")
            continue
        found.append(piece)
        found.extend(piece.split(":")[1:])
    return found


def _leaves(path: str, workspace: str, home: str | None) -> bool:
    if path.startswith("~"):
        head, _, rest = path.partition("/")
        if head != "~" or home is None:
            return True  # ~user, ~+, ~-: someone else's home or a directory the words do not show
        path = posixpath.join(home, rest)
    if path.startswith("/"):
        normal = posixpath.normpath(path)
        return not (inside(normal, workspace) or normal in HARMLESS_TARGETS)
    depth = 0
    for part in path.split("/"):
        if part in ("", "."):
            continue
        climbs = part == ".." or (part.startswith(".") and fnmatch.fnmatchcase("..", part))
        depth += -1 if climbs else 1
        if depth < 0:
            return True
    return False


def git_runs_code(args: Iterable[str]) -> bool:
    """Whether a git command line (after ``git``) configures git or makes it run a program it names."""
    options, rest = split_git(list(args))
    if any(o.startswith(("-c", "--config-env", "--exec-path=")) for o in options):
        return True
    if not rest:
        return False
    sub, words = rest[0], rest[1:]
    if sub == "bisect" and words[:1] == ["run"]:
        return True
    runs = _GIT_RUNS.get(sub)
    if runs is None:
        return False
    if sub == "submodule":
        return True
    for word in words:
        name = word.partition("=")[0]
        if name in runs or any(len(o) == 2 and word.startswith(o) and len(word) > 2 for o in runs):
            return True
    return False
