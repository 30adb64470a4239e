"""
What a simple command's words run, once bash's reserved words and the wrappers in front are looked through.

``{ rm -rf ~; }``, ``if …; then rm -rf ~; fi``, ``! rm``: a reserved word in front is not the program.
``nice -n 10 rm -rf ~``, ``timeout -s KILL 5 rm``, ``env -u X rm``, ``stdbuf -o L rm``: a wrapper's options take
values, and a value is not the program either (before, ``10`` was, so a rule offered for ``nice -n 10 pytest``
was ``Bash(10 *)``, which then covered ``nice -n 10 rm -rf ~``). Some wrappers hand a whole command line to a
shell (``env -S '…'``, ``flock -c '…'``, ``sh -ec '…'``) or run another one for each file (``find -exec … ;``):
those are returned as scripts and commands of their own, which `voicecoder.domain.shell` parses and checks, and
which no rule covers. Text analysis of one simple command's words (quotes removed).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

import attrs

__all__ = ["SHELLS", "Unwrapped", "find_commands", "shell_script", "unwrap"]

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish", "ash", "busybox", "mksh", "yash", "rbash"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\[[^]]*\])?\+?=")
#: Reserved words that may stand in front of a command (or alone): none of them is the program.
_RESERVED = frozenset({"{", "}", "!", "if", "then", "else", "elif", "fi", "while", "until", "do", "done", "esac"})


@attrs.frozen
class _Wrapper:
    valued: frozenset[str] = frozenset()  # options that take the next word as their value
    positional: int = 0  # words after the options that are not the command (timeout's duration)
    script: frozenset[str] = frozenset()  # options whose value is a command line for a shell
    chdir: frozenset[str] = frozenset()  # options whose value is the directory the command runs in

    @property
    def takes_value(self) -> frozenset[str]:
        return self.valued | self.script | self.chdir


_WRAPPERS: dict[str, _Wrapper] = {
    "nohup": _Wrapper(),
    "command": _Wrapper(),
    "builtin": _Wrapper(),
    "coproc": _Wrapper(),
    "setsid": _Wrapper(),
    "unbuffer": _Wrapper(),
    "exec": _Wrapper(frozenset({"-a"})),
    "time": _Wrapper(frozenset({"-f", "--format", "-o", "--output"})),
    "nice": _Wrapper(frozenset({"-n", "--adjustment"})),
    "timeout": _Wrapper(frozenset({"-s", "--signal", "-k", "--kill-after"}), positional=1),
    "stdbuf": _Wrapper(frozenset({"-i", "-o", "-e", "--input", "--output", "--error"})),
    "ionice": _Wrapper(frozenset({"-c", "--class", "-n", "--classdata"})),
    "chrt": _Wrapper(positional=1),
    "watch": _Wrapper(frozenset({"-n", "--interval", "-q", "--equexit"})),
    "script": _Wrapper(
        frozenset({"-E", "--echo", "-O", "--log-out", "-I", "--log-in", "-B", "--log-io", "-T", "--log-timing"}),
        script=frozenset({"-c", "--command"}),
    ),
    "taskset": _Wrapper(positional=1),
    "flock": _Wrapper(
        frozenset({"-w", "--timeout", "-E", "--conflict-exit-code"}),
        positional=1,
        script=frozenset({"-c", "--command"}),
    ),
    "env": _Wrapper(
        frozenset({"-u", "--unset"}),
        script=frozenset({"-S", "--split-string"}),
        chdir=frozenset({"-C", "--chdir"}),
    ),
    "xargs": _Wrapper(
        frozenset({"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s"})
        | frozenset({"--arg-file", "--delimiter", "--max-lines", "--max-args", "--max-procs", "--max-chars"})
        | frozenset({"--process-slot-var"})
    ),
}


@attrs.frozen
class Unwrapped:
    """A simple command with what stood in front of it taken apart."""

    words: tuple[str, ...]
    #: The variables set for it (``X=1 cmd``, ``env X=1 cmd``).
    assigns: tuple[str, ...] = ()
    #: Each wrapper it runs through with its options (``("time", "-o", "t.txt")``), each assignment (``("X=1",)``).
    setup: tuple[tuple[str, ...], ...] = ()
    #: Command lines a wrapper hands to a shell (``env -S '…'``).
    scripts: tuple[str, ...] = ()
    #: Directories a wrapper runs it in (``env -C dir``).
    chdir: tuple[str, ...] = ()
    #: A reserved word (``{``, ``then``, ``!``) stood in front.
    reserved: bool = False

    @property
    def wrapped(self) -> bool:
        """A wrapper or a reserved word stood in front (a filter set up that way is a command of its own)."""
        return self.reserved or any("=" not in step[0] for step in self.setup)

    @property
    def arguments_from_input(self) -> bool:
        """``xargs`` gives it arguments read from its input: names the words do not show."""
        return any(posixpath.basename(step[0]) == "xargs" for step in self.setup)


def unwrap(words: Sequence[str], *, command_position: bool = True) -> Unwrapped:
    """
    *words* without the reserved words, variable assignments and wrappers in front of the program.

    Reserved words count only at the very start of a command (*command_position*: no redirection came first),
    as bash reads them: ``exec {`` and ``>f {`` run a program named ``{``.
    """
    plain = list(words)
    assigns: list[str] = []
    setup: list[tuple[str, ...]] = []
    scripts: list[str] = []
    chdir: list[str] = []
    reserved = False
    while command_position and plain and plain[0] in _RESERVED:
        reserved = True
        plain.pop(0)
    while plain:
        name = posixpath.basename(plain[0])
        if _ASSIGNMENT.match(plain[0]):
            setup.append((plain[0],))
            assigns.append(re.split(r"[+=\[]", plain.pop(0), maxsplit=1)[0])
        elif name in _WRAPPERS:
            wrapper, taken = _WRAPPERS[name], [plain.pop(0)]
            while plain and plain[0].startswith("-") and plain[0] != "-":
                option = taken_option = plain.pop(0)
                taken.append(option)
                if option == "--":
                    break
                value: str | None = None
                if "=" in option and option.startswith("--"):
                    taken_option, _, value = option.partition("=")
                elif option in wrapper.takes_value:
                    value = plain.pop(0) if plain else ""
                    taken.append(value)
                elif not option.startswith("--"):
                    # A bundle of short options (-qc CMD, -n5): the first that takes a value takes the rest of
                    # the word, or the next word when it ends the bundle.
                    at = next((i for i in range(1, len(option)) if "-" + option[i] in wrapper.takes_value), None)
                    if at is not None:
                        taken_option, value = "-" + option[at], option[at + 1 :]
                        if not value:
                            value = plain.pop(0) if plain else ""
                            taken.append(value)
                if value is not None and taken_option in wrapper.script:
                    scripts.append(value)
                if value is not None and taken_option in wrapper.chdir:
                    chdir.append(value)
                if name == "env":
                    taken.extend(_assignments(plain, assigns))
            if name == "env":
                taken.extend(_assignments(plain, assigns))
            taken.extend(plain[: wrapper.positional])
            del plain[: wrapper.positional]
            if not plain:  # nothing to wrap: the wrapper is the command (bash's "exec exec" runs a program "exec")
                plain[:0] = taken
                break
            setup.append(tuple(taken))
        else:
            break
    return Unwrapped(tuple(plain), tuple(assigns), tuple(setup), tuple(scripts), tuple(chdir), reserved)


def _assignments(plain: list[str], assigns: list[str]) -> list[str]:
    """Take the ``NAME=value`` words at the front of *plain* (``env X=1 cmd``), their names into *assigns*."""
    taken: list[str] = []
    while plain and _ASSIGNMENT.match(plain[0]):
        taken.append(plain.pop(0))
        assigns.append(taken[-1].partition("=")[0])
    return taken


def shell_script(words: Sequence[str]) -> str | None:
    """The command line a shell or ``eval`` is given to run (``bash -ec '…'``, ``eval …``), or None."""
    if not words:
        return None
    name = posixpath.basename(words[0])
    if name == "eval":
        return " ".join(words[1:])
    if name not in SHELLS:
        return None
    for index, word in enumerate(words[1:], start=1):
        if word == "--" or not word.startswith("-"):
            return None
        if not word.startswith("--") and "c" in word[1:]:
            rest = [w for w in words[index + 1 :] if not w.startswith("-")]
            return rest[0] if rest else ""
    return None


def find_commands(words: Sequence[str]) -> list[tuple[str, ...]]:
    """The commands ``find`` runs for what it finds (``-exec``, ``-execdir``, ``-ok``, ``-okdir``)."""
    if not words or posixpath.basename(words[0]) != "find":
        return []
    found: list[tuple[str, ...]] = []
    index = 1
    while index < len(words):
        if words[index] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = index + 1
            while end < len(words) and words[end] not in (";", "+"):
                end += 1
            found.append(tuple(words[index + 1 : end]))
            index = end
        index += 1
    return found
