"""
The files a command writes through its options or operands rather than a redirection.

``curl -o F``, ``wget -O F``, ``git log --output=F``, ``tar -cf F``, ``find -fprint F``, ``sort -o F``, ``uniq IN
OUT``, ``unzip -d DIR``, ``rsync SRC DEST``: each is a write like ``> F``, and `voicecoder.domain.shell` checks it
the same way (outside the workspace or into ``.git/``: always asked). Text analysis of one simple command's
words, for the common tools; it makes the usual forms ask, it is not a sandbox.
"""

from __future__ import annotations

from collections.abc import Sequence

from voicecoder.domain.git_words import split_git

__all__ = ["deletes_by_option", "pytest_arguments", "writes_by_option"]

# Per program: options whose value is a file or directory it writes, as written alone (``-o F``), glued
# (``-oF``) or with ``=`` (``--output=F``).
_VALUED: dict[str, tuple[str, ...]] = {
    "curl": ("-o", "--output", "-c", "--cookie-jar", "-D", "--dump-header", "--trace", "--trace-ascii", "--stderr"),
    "wget": ("-O", "--output-document", "-P", "--directory-prefix", "-o", "--output-file", "-a", "--append-output"),
    "sort": ("-o", "--output"),
    "unzip": ("-d",),
    "find": ("-fprint", "-fprint0", "-fprintf", "-fls"),
    "time": ("-o", "--output"),  # GNU time's report
}
_GIT_VALUED: dict[str, tuple[str, ...]] = {
    "format-patch": ("-o", "--output-directory", "--output"),
    "archive": ("-o", "--output"),
}
_TAR_LONG_MODES = {
    "--create": "c",
    "--append": "r",
    "--update": "u",
    "--concatenate": "A",
    "--extract": "x",
    "--get": "x",
}
_PYTEST_VALUED = (
    "--junitxml",
    "--junit-xml",
    "--log-file",
    "--report-log",
    "--resultlog",
    "--result-log",
    "--html",
    "--json-report-file",
)
_GIT_OUTPUT = ("--output",)  # log, diff, show and the other diff-producing commands
_COPY_VALUED = {
    "rsync": ("-e", "--rsh", "-f", "--filter", "-T", "--temp-dir"),
    "scp": ("-i", "-P", "-F", "-o", "-S", "-c", "-l", "-J"),
}


def writes_by_option(words: Sequence[str]) -> list[str]:
    """The paths the simple command *words* (program name first, quotes removed) writes by option or operand."""
    if not words:
        return []
    name, args = words[0], list(words[1:])
    if name == "git":
        return _git(args)
    if name == "tar":
        return _tar(args)
    if name == "uniq":
        return _operands(args, valued=("-f", "-s", "-w"))[1:2]
    if name in ("rsync", "scp"):
        operands = _operands(args, valued=_COPY_VALUED[name])
        destination = operands[-1:] if len(operands) > 1 else []
        return [d for d in destination if not _remote(d)]
    if name == "zip":
        return _operands(args, valued=("-b", "-n", "-t", "-tt", "-x", "-i"))[:1]
    if name == "find":
        return _values(args, _VALUED["find"], glued=False)
    pytest = pytest_arguments(words)
    if pytest is not None:
        return _pytest(pytest)
    return _values(args, _VALUED.get(name, ()), glued=True)


def deletes_by_option(words: Sequence[str]) -> list[str]:
    """The directories a command empties before it writes there: pytest's ``--basetemp``."""
    pytest = pytest_arguments(words)
    return [] if pytest is None else _values(pytest, ("--basetemp",), glued=False)


def pytest_arguments(words: Sequence[str]) -> list[str] | None:
    """The arguments of a pytest run (``pytest …``, ``py.test …``, ``python3 -m pytest …``), None for another."""
    if not words:
        return None
    if words[0] in ("pytest", "py.test"):
        return list(words[1:])
    if words[0].startswith("python") and list(words[1:3]) == ["-m", "pytest"]:
        return list(words[3:])
    return None


def _pytest(args: list[str]) -> list[str]:
    """Reports and logs pytest writes (``--junitxml=F``, ``--cov-report=xml:F``, ``--debug=F``, a cache dir)."""
    found = _values(args, _PYTEST_VALUED, glued=False)
    for index, arg in enumerate(args):
        value = arg.partition("=")[2] if "=" in arg else (args[index + 1] if index + 1 < len(args) else "")
        given = arg.partition("=")[0]
        if given == "--cov-report" and ":" in value:
            found.append(value.partition(":")[2])
        elif given == "--debug" and "=" in arg:
            found.append(value)
        elif given in ("-o", "--override-ini") and value.startswith("cache_dir="):
            found.append(value.partition("=")[2])
    return found


def _values(args: Sequence[str], options: Sequence[str], *, glued: bool) -> list[str]:
    """The values of *options* in *args*: ``-o F``, ``--output=F`` and (short options, when *glued*) ``-oF``."""
    found: list[str] = []
    for index, arg in enumerate(args):
        if arg in options and index + 1 < len(args):
            found.append(args[index + 1])
        elif arg.startswith("--") and "=" in arg:
            given, _, value = arg.partition("=")
            if len(given) > 3 and any(o.startswith(given) for o in options):
                found.append(value)  # GNU getopt takes an unambiguous prefix: --out=F is --output=F
        elif glued and len(arg) > 1 and arg[0] == "-" and arg[1] != "-":
            # A bundle of short options (curl -sSLo F, -sSo/x): the first one that takes a value takes the rest
            # of the word, or the next word when it ends the bundle.
            for at in range(1, len(arg)):
                if "-" + arg[at] in options:
                    rest = arg[at + 1 :]
                    if rest:
                        found.append(rest)
                    elif index + 1 < len(args):
                        found.append(args[index + 1])
                    break
    return found


def _operands(args: Sequence[str], *, valued: Sequence[str]) -> list[str]:
    operands: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif arg == "-" or not arg.startswith("-"):
            operands.append(arg)
    return operands


def _remote(path: str) -> bool:
    """``host:path`` or ``user@host:path`` (rsync/scp), not a local path that happens to hold a colon."""
    head = path.partition("/")[0]
    return ":" in head


def _git(args: list[str]) -> list[str]:
    _, args = split_git(args)
    if not args:
        return []
    sub, rest = args[0], args[1:]
    return _values(rest, (*_GIT_VALUED.get(sub, ()), *_GIT_OUTPUT), glued=sub in ("format-patch", "archive"))


def _tar(args: list[str]) -> list[str]:
    """The archive ``tar`` creates or appends to, or the directory it extracts into."""
    if not args:
        return []
    # The old form bundles the letters without a dash ("tar cf out.tar dir"): f's value is then the next word.
    old_style = args[0].isalpha()
    modes = set(args[0]) if old_style else set()
    for arg in args:
        if arg in _TAR_LONG_MODES:
            modes.add(_TAR_LONG_MODES[arg])
        elif arg.startswith("-") and not arg.startswith("--"):
            modes |= set(arg[1:]) & set("cruAx")
    writes: list[str] = []
    if modes & set("cruA"):
        given = _values(args, ("-f", "--file"), glued=True)
        writes += given or (args[1:2] if old_style and "f" in args[0] else [])
    if "x" in modes:
        writes += _values(args, ("-C", "--directory"), glued=True) or ["."]
    return writes
