"""
Which commands at the end of a pipe only read it, and which options make such a command write a file.

A rule for ``git log *`` covers ``git log | tail -20``: the filter adds nothing a rule has to approve. That holds
only while the filter really just reads its pipe. Some of these programs take options that write files
(``sort -o``, ``uniq IN OUT``, ``less -o``), run other programs (``sort --compress-program``, ``rg --pre``,
``less``'s lesskey files) or read files named anywhere (``head ~/.ssh/id_rsa``); then the filter is a command
of its own and a rule for the command before the pipe must not cover it.

Pure text analysis of one simple command's words (quotes removed), as in `voicecoder.domain.shell`.
"""

from __future__ import annotations

from collections.abc import Sequence

from voicecoder.domain.option_writes import writes_by_option

__all__ = ["READ_ONLY_FILTERS", "only_reads_its_pipe"]

READ_ONLY_FILTERS = frozenset(
    {"head", "tail", "grep", "egrep", "fgrep", "rg", "wc", "sort", "uniq", "cut", "tr", "cat", "less", "more"}
    | {"column", "nl", "jq", "true", "false", "echo", "printf", "pwd"}
)
"""Programs that, without the options below, only read their input (or files in the workspace) and print."""

# Per program: long options (as GNU spells them) and short option letters that write a file, run another program,
# or read a list of file names; each makes the filter a command a rule has to cover.
_LONG: dict[str, frozenset[str]] = {
    "sort": frozenset({"--output", "--compress-program", "--temporary-directory", "--files0-from", "--random-source"}),
    "wc": frozenset({"--files0-from"}),
    "rg": frozenset({"--pre", "--hostname-bin", "--search-zip"}),
    "less": frozenset({"--log-file", "--LOG-FILE", "--lesskey-file", "--lesskey-src", "--lesskey-content"}),
}
_SHORT: dict[str, frozenset[str]] = {
    "sort": frozenset("oT"),
    "rg": frozenset("z"),
    "less": frozenset("oOk"),
}


def only_reads_its_pipe(words: Sequence[str]) -> bool:
    """
    Whether the simple command *words* is a read-only filter used as one.

    It must be one of `READ_ONLY_FILTERS`, name no path outside the working directory (no ``/``, ``~`` or
    ``$``: a file operand elsewhere is a read a rule has to cover; ``cut -d/`` is then asked about too, which
    errs on the side of asking), and use none of the options that write, run a program or read a list of names.
    GNU programs accept any unambiguous prefix of a long option (``--comp=sh``), so a prefix counts as the option.
    """
    if not words or words[0] not in READ_ONLY_FILTERS:
        return False
    name, args = words[0], words[1:]
    if any("/" in a or "$" in a or a.startswith("~") for a in args):
        return False
    long_options, short_letters = _LONG.get(name, frozenset()), _SHORT.get(name, frozenset())
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("--"):
            given = arg.partition("=")[0]
            if len(given) > 2 and any(option.startswith(given) for option in long_options):
                return False
        elif arg.startswith("-") and len(arg) > 1 and short_letters.intersection(arg[1:]):
            return False
    return not writes_by_option((name, *args))  # uniq's OUTPUT operand: the options above do not show it
