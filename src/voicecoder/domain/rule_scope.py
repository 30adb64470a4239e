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
either. A search program's pattern (``grep -rn /api/ src``, ``rg -e /x``) is not a path. Text analysis, not a
sandbox (ADR 0019); where it cannot tell, it errs on the side of asking.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence

from voicecoder.domain.git_words import split_git
from voicecoder.domain.shell_lexer import Expanding
from voicecoder.domain.shell_paths import HARMLESS_TARGETS, expand_braces, inside

__all__ = ["git_runs_code", "leaves_directory", "names_from_elsewhere", "outside_word", "search_patterns"]

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


#: Per search program: its options that take the next word as their value (a bundle's last letter may be one).
#: Only these are skipped, so an option missing here makes its value count as the pattern and the real pattern
#: as a path: more asking, never less. ``-e``/``-f`` are the pattern options (``-f`` names a file: a path).
_SEARCH_VALUED: dict[str, str] = {
    "grep": "ABCDdefm",
    "egrep": "ABCDdefm",
    "fgrep": "ABCDdefm",
    "rg": "ABCEefgjMmrTt",
}
_SEARCH_LONG_VALUED = frozenset(
    {"--regexp", "--file", "--after-context", "--before-context", "--context", "--max-count", "--devices",
     "--directories", "--glob", "--iglob", "--type", "--type-not", "--replace", "--encoding", "--max-columns",
     "--threads", "--label", "--binary-files", "--color", "--colour", "--include", "--exclude", "--exclude-dir",
     "--exclude-from", "--max-depth", "--sort", "--sortr", "--max-filesize", "--type-add"}
)  # fmt: skip


def search_patterns(program: str, args: Sequence[str]) -> list[str]:
    """
    The words of a grep or rg command that hold its patterns.

    Those are ``P`` of ``-e P``, ``-eP`` and ``--regexp=P``, else the first operand. A pattern is matched against
    text, never opened, so ``/api/`` in it is no path.
    """
    valued = _SEARCH_VALUED.get(program)
    if valued is None:
        return []
    patterns: list[str] = []
    operands: list[str] = []
    from_option = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            operands.extend(args[i + 1 :])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in {"--regexp", "--file"}:
                from_option = True
            if name == "--regexp":
                patterns.append(arg if eq else args[i + 1] if i + 1 < len(args) else "")
            i += 2 if not eq and name in _SEARCH_LONG_VALUED else 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            for at, letter in enumerate(arg[1:], start=2):
                if letter in valued:
                    value = arg[at:] or (args[i + 1] if i + 1 < len(args) else "")
                    from_option = from_option or letter in "ef"
                    if letter == "e":
                        patterns.append(arg if arg[at:] else value)
                    i += 1 if arg[at:] else 2
                    break
            else:
                i += 1
            continue
        operands.append(arg)
        i += 1
    if not from_option and operands:
        patterns.append(operands[0])
    return patterns


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
