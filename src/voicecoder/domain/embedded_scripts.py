"""
Programs whose arguments are code: a rule for the program does not cover code that runs or writes files.

``Bash(sed *)`` is granted for ``sed -n 1,20p file``, yet ``sed -n '1e curl … | sh' f`` runs a shell command,
``sed 's/a/b/w /etc/x' f`` writes a file and ``sed R /etc/shadow f`` reads one; ``awk 'BEGIN{system("…")}'``, ``awk
'{print > "f"}'``, ``make --eval='$(shell …)'`` and ``npm test --script-shell=…`` are the same. Such a command is
covered by no rule (it asks). A sed script is read command by command; for awk, whose programs cannot be read
that simply, any output redirection, pipe, ``system``, ``getline`` or extension loading counts, and so does a
program read from a file (``-f``). Text analysis of one simple command's words, erring on the side of asking:
``awk '$3 > 100'`` asks too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["runs_given_code", "script_arguments"]

_AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_AWK_CODE = re.compile(r"system|getline|[|>]|@load|@include|ENVIRON|PROCINFO")
_AWK_OPTIONS_WITH_FILES = ("-f", "--file", "-i", "--include", "-l", "--load", "-E", "--exec", "-o", "--pretty-print")
_AWK_VALUED = ("-v", "--assign", "-F", "--field-separator")
_SED_VALUED = ("-e", "--expression", "-l", "--line-length")
#: Options of other programs whose value is code they run, or a program that runs their scripts.
_CODE_OPTIONS: dict[str, tuple[str, ...]] = {
    "make": ("--eval", "-E"),
    "npm": ("--script-shell", "--node-options"),
    "pnpm": ("--script-shell", "--node-options"),
    "yarn": ("--script-shell",),
    "cargo": ("--config",),  # build.rustc-wrapper, target.<triple>.runner: programs it runs
    "go": ("-exec", "-toolexec", "--exec", "--toolexec"),
}
# A make variable set on the command line: SHELL runs every recipe; a value with $(…) is make code
# (``X:=$(shell …)`` runs at once).
_MAKE_SHELL = re.compile(r"^(?:SHELL|\.SHELLFLAGS|MAKESHELL)\s*[+:?!]*=|^[^=\s]+\s*[+:?!]*=.*\$")


def runs_given_code(words: Sequence[str]) -> bool:
    """Whether the simple command *words* (program first) runs code or writes files through code in its words."""
    if not words:
        return False
    name, args = words[0], list(words[1:])
    if name == "sed":
        return _sed(args)
    if name in _AWKS:
        return _awk(args)
    options = _CODE_OPTIONS.get(name, ())
    for arg in args:
        given = arg.partition("=")[0]
        if given in options or any(len(o) == 2 and arg.startswith(o) and len(arg) > 2 for o in options):
            return True
        if name == "make" and _MAKE_SHELL.match(arg):
            return True
    return False


def script_arguments(words: Sequence[str]) -> list[str]:
    """The words of a sed or awk command that are its script (``/re/p`` is a pattern, not a path)."""
    if not words:
        return []
    if words[0] == "sed":
        return _sed_scripts(list(words[1:]))
    if words[0] in _AWKS:
        program = _awk_program(list(words[1:]))
        return [] if program is None else [program]
    return []


def _awk(args: list[str]) -> bool:
    for arg in args:
        given = arg.partition("=")[0]
        if given in _AWK_OPTIONS_WITH_FILES or any(arg.startswith(o) and len(o) == 2 for o in ("-f", "-i", "-l")):
            return True
    program = _awk_program(args)
    return program is None or bool(_AWK_CODE.search(program))


def _awk_program(args: list[str]) -> str | None:
    program: str | None = None
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in _AWK_VALUED:
            skip = True
        elif not arg.startswith("-"):
            program = arg
            break
    return program


def _sed(args: list[str]) -> bool:
    if any(arg in ("-f", "--file") or arg.startswith(("-f", "--file=")) for arg in args):
        return True  # a script from a file: not in the words
    return any(_sed_script_acts(script) for script in _sed_scripts(args))


def _sed_scripts(args: list[str]) -> list[str]:
    scripts: list[str] = []
    skip = False
    operands: list[str] = []
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg in _SED_VALUED:
            skip = True
            if arg in ("-e", "--expression") and index + 1 < len(args):
                scripts.append(args[index + 1])
        elif arg.startswith("--expression="):
            scripts.append(arg.partition("=")[2])
        elif arg.startswith("-e") and len(arg) > 2:
            scripts.append(arg[2:])
        elif not arg.startswith("-") or arg == "-":
            operands.append(arg)
    return scripts or operands[:1]


_ADDRESS = re.compile(r"\s*(?:\d+(?:~\d+)?|\$|/(?:[^/\\]|\\.)*/[IM]*|\\(.)(?:(?!\1).|\\.)*\1[IM]*)?")
_STEP = re.compile(r"\s*[+~]\d+")
_SIMPLE = frozenset("=dDgGhHlnNpPxzFqQLv")


def _sed_script_acts(script: str) -> bool:
    """Whether a sed script runs a command (``e``, ``s///e``), writes (``w``, ``W``, ``s///w``) or reads (``r``)."""
    i = 0
    while i < len(script):
        while i < len(script) and script[i] in " \t\n;{}":
            i += 1
        if i >= len(script):
            return False
        if script[i] == "#":
            end = script.find("\n", i)
            i = len(script) if end < 0 else end
            continue
        i = _ADDRESS.match(script, i).end()  # type: ignore[union-attr]  # every part is optional: it matches
        if script.startswith(",", i):  # a second address: /re/, 5, $, +3, ~4
            i = (_STEP.match(script, i + 1) or _ADDRESS.match(script, i + 1)).end()  # type: ignore[union-attr]
        while i < len(script) and script[i] in " \t!":
            i += 1
        if i >= len(script):
            return False
        command = script[i]
        i += 1
        if command in "ewWrR":
            return True
        if command in "aic:btT":  # text or a label to the end of the line (or the next ';' for labels)
            stop = "\n" if command in "aic" else ";\n"
            while i < len(script) and script[i] not in stop:
                i += 1
        elif command in "sy":
            parts, i = _delimited(script, i, 2)
            if parts is None:
                return True
            flags = re.match(r"[^;\n}]*", script[i:])
            tail = flags.group() if flags else ""
            i += len(tail)
            if command == "s" and re.search(r"[ewW]", tail):
                return True
        elif command in _SIMPLE:
            while i < len(script) and script[i] not in ";\n}":
                i += 1
        elif command not in "{}":
            return True  # not a command this reading knows: ask
    return False


def _delimited(script: str, start: int, parts: int) -> tuple[list[str] | None, int]:
    """The *parts* fields after the delimiter at *start* (``s/a/b/``); None when they are not closed."""
    if start >= len(script) or script[start] in "\\\n":
        return None, start
    delimiter, found, i = script[start], [], start + 1
    current: list[str] = []
    while i < len(script):
        if script[i] == "\\" and i + 1 < len(script):
            current.append(script[i : i + 2])
            i += 2
            continue
        if script[i] == delimiter:
            found.append("".join(current))
            current = []
            if len(found) == parts:
                return found, i + 1
        else:
            current.append(script[i])
        i += 1
    return None, i
