"""
What a shell command line the agent wants to run would do, as far as a policy needs to know.

Pure text analysis (no shell is run): a command line is split into simple commands at the control
operators (``;``, ``&&``, ``||``, ``|``, ``&``, newlines), wrapper commands (``env``, ``nohup``,
``timeout 10``, ``xargs``, ``bash -c '…'``…) are looked through, and each simple command is checked for
what the turn's ❌ Reject cannot undo (`destructive_reason`) or reaches what voicecoder keeps from the
agent (`private_reason`: its env file, data dir, the CLI's login, a process's environment under /proc).
`rule_specifier` proposes the
``Bash(<specifier>)`` rule an "allow for this session" answer would add, and `covered_by` says whether
such rules cover a whole command line, segment by segment, so ``pytest *`` never covers
``pytest; curl … | sh``.

Anything the analysis cannot follow (unbalanced quotes, command substitution) is treated as not
covered by any rule: the user is asked, never silently allowed.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence

import attrs

from voicecoder.domain.code_variables import runs_other_code
from voicecoder.domain.embedded_scripts import runs_given_code, script_arguments
from voicecoder.domain.git_words import split_git
from voicecoder.domain.option_writes import deletes_by_option, writes_by_option
from voicecoder.domain.pipe_filters import only_reads_its_pipe
from voicecoder.domain.rule_scope import (
    git_runs_code,
    leaves_directory,
    names_from_elsewhere,
    outside_word,
    search_patterns,
)
from voicecoder.domain.shell_lexer import Expanding, Op, lex
from voicecoder.domain.shell_paths import harmless_target, in_git_dir, inside, reaches_private, resolve
from voicecoder.domain.shell_words import SHELLS, find_commands, shell_script, unwrap

__all__ = ["Segment", "covered_by", "destructive_reason", "parse_command", "private_reason", "rule_specifier"]

_INTERPRETERS = SHELLS | frozenset({"python", "python3", "perl", "ruby", "node", "php", "sudo", "source", "."})
_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "iwr"})
#: Programs whose first argument (or two) names what they do, so a rule keeps it: ``git log *``, ``npm run test *``.
_SUBCOMMANDS: dict[str, int] = {
    "git": 1,
    "npm": 1,
    "pnpm": 1,
    "yarn": 1,
    "uv": 1,
    "poetry": 1,
    "cargo": 1,
    "go": 1,
    "make": 1,
    "docker": 1,
    "kubectl": 1,
    "gh": 2,
    "pip": 1,
    "pip3": 1,
    "npx": 1,
    "bun": 1,
    "deno": 1,
    "dotnet": 1,
    "mvn": 1,
    "gradle": 1,
    "./gradlew": 1,
}
_RUN_SUBCOMMANDS = frozenset({"run", "exec", "x"})
_DELETERS = frozenset({"rm", "rmdir", "unlink", "shred", "srm"})
_WRITERS = frozenset({"cp", "mv", "tee", "touch", "mkdir", "ln", "install", "truncate", "chmod", "chown", "dd"})
_PUBLISHERS: dict[str, tuple[str, ...]] = {
    "npm": ("publish", "unpublish", "deprecate"),
    "pnpm": ("publish",),
    "yarn": ("publish", "npm"),
    "cargo": ("publish", "yank"),
    "twine": ("upload",),
    "gem": ("push", "yank"),
    "docker": ("push",),
    "poetry": ("publish",),
    "uv": ("publish",),
    "flit": ("publish",),
    "hatch": ("publish",),
}
_SYSTEM = {
    "shutdown": "shuts the machine down",
    "reboot": "reboots the machine",
    "poweroff": "powers the machine off",
    "halt": "halts the machine",
    "mkfs": "formats a disk",
    "fdisk": "edits a disk's partitions",
    "parted": "edits a disk's partitions",
    "crontab": "changes the scheduled jobs of the account",
    "systemctl": "changes system services",
    "useradd": "changes the machine's accounts",
    "userdel": "changes the machine's accounts",
    "passwd": "changes a password",
    "killall": "kills processes outside the workspace",
    "pkill": "kills processes outside the workspace",
}


@attrs.frozen
class Segment:
    """One simple command: its words (quotes removed, wrappers looked through) and where it redirects output."""

    words: tuple[str, ...]
    writes_to: tuple[str, ...] = ()
    #: The words came from inside ``bash -c '…'`` / ``eval`` / ``$(…)``; a rule may not cover them.
    nested: bool = False
    #: The variables the command line sets for it (``LD_PRELOAD=x git log``, ``env GIT_PAGER=x git log``).
    assigns: tuple[str, ...] = ()
    #: It runs through a wrapper that was looked through (``nice``, ``timeout 10``, ``xargs``, ``env``).
    wrapped: bool = False
    #: The files its input is redirected from (``< file``).
    reads_from: tuple[str, ...] = ()
    #: What sets it up: each wrapper with its options (``("time", "-o", "t.txt")``), each assignment (``("X=1",)``).
    setup: tuple[tuple[str, ...], ...] = ()
    #: ``xargs`` adds arguments read from its input (file names no rule has seen).
    arguments_from_input: bool = False

    @property
    def program(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def name(self) -> str:
        """The program without its directory (``/usr/bin/rm`` → ``rm``)."""
        return posixpath.basename(self.program)

    @property
    def text(self) -> str:
        return shlex.join(self.words)


@attrs.frozen
class Parsed:
    """A command line split into segments; ``opaque`` when part of it could not be followed."""

    segments: tuple[Segment, ...]
    opaque: bool = False
    #: Segment i is fed by a pipe from segment i-1.
    piped: tuple[bool, ...] = ()


def _is_operator(token: str) -> bool:
    return isinstance(token, Op) and not _is_redirect(token)


def _is_redirect(token: str) -> bool:
    return isinstance(token, Op) and ("<" in token or ">" in token)


def _words_and_redirects(tokens: list[str]) -> tuple[list[str], list[str], list[str]]:
    """
    Plain words, the files output is redirected to, and the files input is read from.

    ``2>&1`` duplicates a descriptor (no file); a here-document's delimiter and a here-string are not files.
    """
    words: list[str] = []
    writes: list[str] = []
    reads: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_redirect(token):
            words.append(token)
            i += 1
            continue
        target = tokens[i + 1] if i + 1 < len(tokens) and not isinstance(tokens[i + 1], Op) else ""
        i += 2 if target else 1
        if token in ("<<", "<<-", "<<<") or (token.endswith("&") and (target.isdigit() or target == "-")):
            continue
        if ">" in token and target:
            writes.append(target)
        if "<" in token and target:
            reads.append(target)
    return words, writes, reads


def parse_command(command: str, *, _depth: int = 0) -> Parsed:
    """Split *command* into simple commands (see the module docstring)."""
    lexed = lex(command)
    if lexed is None or _depth > 3:
        return Parsed((), opaque=True)
    segments: list[Segment] = []
    piped: list[bool] = []
    opaque = False
    for text in lexed.inner:
        nested = parse_command(text, _depth=_depth + 1)
        opaque = opaque or nested.opaque
        segments.extend(attrs.evolve(s, nested=True) for s in nested.segments)
        piped.extend(nested.piped)
    current: list[str] = []
    pipe_next = False

    def close(*, next_piped: bool) -> None:
        nonlocal opaque, pipe_next
        if current:
            found, more_opaque = _segments(current, _depth)
            opaque = opaque or more_opaque
            for index, segment in enumerate(found):
                segments.append(segment)
                piped.append(pipe_next if index == 0 else False)
        current.clear()
        pipe_next = next_piped

    for token in lexed.tokens:
        if _is_operator(token):
            close(next_piped=token in ("|", "|&"))
        else:
            current.append(token)
    close(next_piped=False)
    return Parsed(tuple(segments), opaque=opaque, piped=tuple(piped))


def _segments(words: list[str], depth: int) -> tuple[list[Segment], bool]:
    """
    One simple command, reserved words and wrappers looked through.

    The scripts it hands to a shell (``bash -c``, ``eval``, ``env -S``) and the commands ``find -exec`` runs are
    parsed too, as nested commands.
    """
    plain, writes, reads = _words_and_redirects(words)
    unwrapped = unwrap(plain, command_position=bool(words) and not _is_redirect(words[0]))
    extra: list[Segment] = []
    opaque = False
    scripts = list(unwrapped.scripts)
    script = shell_script(unwrapped.words)
    if script is not None:
        scripts.append(script)
    for text in scripts:
        nested = parse_command(text, _depth=depth + 1)
        opaque = opaque or nested.opaque
        extra.extend(attrs.evolve(s, nested=True) for s in nested.segments)
    for command in find_commands(unwrapped.words):
        found, more_opaque = _segments(list(command), depth + 1)
        opaque = opaque or more_opaque
        extra.extend(attrs.evolve(s, nested=True) for s in found)
    moves = [Segment(("cd", directory), nested=True) for directory in unwrapped.chdir]
    if not unwrapped.words:
        bare = [Segment((), tuple(writes), reads_from=tuple(reads))] if writes or reads else []
        return [*moves, *bare, *extra], opaque
    head = Segment(
        unwrapped.words,
        tuple(writes),
        assigns=unwrapped.assigns,
        wrapped=unwrapped.wrapped,
        reads_from=tuple(reads),
        setup=unwrapped.setup,
        arguments_from_input=unwrapped.arguments_from_input,
    )
    return [*moves, head, *extra], opaque


# --- the destructive-command gate -------------------------------------------------------------


def destructive_reason(command: str, workspace: str, *, home: str | None = None) -> str | None:
    """
    Why *command* does something the turn's ❌ Reject cannot undo, or None.

    Flagged: deleting outside the workspace, a recursive ``rm`` (``rm -rf dir``), ``git push`` (any),
    ``git reset --hard`` and other resets that move history, ``git clean``, ``git checkout -- …`` /
    ``git restore``, history rewrites (rebase, ``commit --amend``, filter-branch, deleting branches, tags or
    stashes), ``sudo``/``su``/``doas``, a download piped into a shell (or ``sh -c "$(curl …)"``), writes to
    ``.git/`` or outside the workspace (temporary directories and ``/dev/null`` excepted), publishing a package,
    and commands that change the machine itself (shutdown, mkfs, crontab, …). A command line that cannot be
    followed (unbalanced quotes) is flagged too.
    """
    parsed = parse_command(command)
    if parsed.opaque and not parsed.segments:
        return "the command line could not be analysed (unbalanced quotes or substitutions)"
    cwd = workspace
    for index, segment in enumerate(parsed.segments):
        feeds_from_download = (
            index > 0
            and parsed.piped[index]
            and any(s.name in _DOWNLOADERS for s in parsed.segments[:index])
            and segment.name in _INTERPRETERS
        )
        if feeds_from_download:
            return "it pipes a download into a shell: code from the network would run unseen"
        if segment.nested and segment.name in _DOWNLOADERS:
            return "it runs a download as a script: code from the network would run unseen"
        reason = _segment_reason(segment, workspace, cwd, home)
        if reason is not None:
            return reason
        if segment.name == "cd":
            target = segment.words[1] if len(segment.words) > 1 else (home or "/")
            resolved = resolve(target, cwd, home) if target != "-" else None
            cwd = resolved if resolved is not None else "/"
    return None


_PROC_PRIVATE = re.compile(r"/proc/[^/\s'\"]*/(?:task/[^/\s'\"]*/)?(?:environ|mem)\b")
#: /proc/<pid>/root, cwd, fd and map_files lead into other places than their path says (root is "/").
_PROC_DETOUR = re.compile(r"/proc/[^/\s'\"]*/(?:task/[^/\s'\"]*/)?(?:root|cwd|fd|map_files)(?:/|\b)")


def private_reason(command: str, private: Sequence[str], workspace: str, *, home: str | None = None) -> str | None:
    """
    Why *command* reaches what voicecoder keeps from the agent, or None.

    Flagged: a process's environment or memory under ``/proc`` (``/proc/$PPID/environ``), and any word that is,
    or resolves to a path inside, one of the *private* absolute paths (voicecoder's env file and data dir, the
    CLI's own login). Text analysis, like `destructive_reason`: it makes such a command ask, and say why, even
    when a rule would allow it; it is not a sandbox.
    """
    if _PROC_PRIVATE.search(command):
        return "it reads a process's environment or memory under /proc, where secrets such as voicecoder's live"
    if private and _PROC_DETOUR.search(command):
        return "it goes through /proc/<pid>/root, cwd or fd, which lead anywhere, voicecoder's own files included"
    for root in private:
        if re.search(re.escape(root.rstrip("/")) + r"(?![^/\s'\";&|)<>])", command):
            return f"it reaches {root}, where voicecoder keeps its own settings and secrets"
    cwd = workspace
    for segment in parse_command(command).segments:
        setup = [w for step in segment.setup for w in step[1:]]
        for word in (*segment.words[1:], *segment.writes_to, *segment.reads_from, *setup):
            for candidate in (word, word.partition("=")[2]):
                if candidate and not candidate.startswith("-") and reaches_private(candidate, private, cwd, home):
                    return f"it reaches {candidate}, where voicecoder keeps its own settings and secrets"
        if segment.name == "cd" and len(segment.words) > 1:
            cwd = resolve(segment.words[1], cwd, home) or "/"
    return None


def _write_reason(path: str, workspace: str, cwd: str, home: str | None) -> str | None:
    """Why writing *path* is something Reject cannot undo (outside the workspace, into .git/), or None."""
    resolved = resolve(path, cwd, home)
    if resolved is None:
        return f"it writes to {path}, a path that depends on the environment"
    if in_git_dir(resolved, workspace):
        return "it writes into .git/, the repository's own data"
    if not inside(resolved, workspace) and not harmless_target(resolved):
        return f"it writes to {path}, outside the workspace"
    return None


def _segment_reason(segment: Segment, workspace: str, cwd: str, home: str | None) -> str | None:
    for target in segment.writes_to:
        if (reason := _write_reason(target, workspace, cwd, home)) is not None:
            return reason
    if not segment.words:
        return None
    name, args = segment.name, list(segment.words[1:])
    for words in (*segment.setup, (name, *args)):
        for path in writes_by_option(words):
            if (reason := _write_reason(path, workspace, cwd, home)) is not None:
                return reason
    if isinstance(segment.program, Expanding) or any(ch in segment.program for ch in "*?["):
        return f"the program it runs ({segment.program}) depends on a variable or a pattern: it cannot be read first"
    if (reason := _deletes_or_links(segment, workspace, cwd, home)) is not None:
        return reason
    if name in ("sudo", "su", "doas", "pkexec", "runuser"):
        return f"it runs with other privileges ({name})"
    if name == "git":
        return _git_reason(args)
    if name == "gh" and args[:1] and args[0] in ("release", "repo", "pr", "api", "secret", "workflow"):
        return f"it changes the GitHub repository (gh {args[0]})"
    for tool, subcommands in _PUBLISHERS.items():
        if name == tool and args[:1] and args[0] in subcommands:
            return f"it publishes a package ({name} {args[0]}), which cannot be taken back"
    if name in _SYSTEM or name.startswith("mkfs"):
        return f"it {_SYSTEM.get(name, 'formats a disk')}"
    if name == "dd" and any(a.startswith("of=/dev/") and a != "of=/dev/null" for a in args):
        return "it writes to a device"
    paths = [a for a in args if not a.startswith("-")]
    if name in _DELETERS or (name == "find" and "-delete" in args):
        recursive = name == "rm" and any(
            a in ("-r", "-R", "--recursive") or (a.startswith("-") and not a.startswith("--") and "r" in a.lower())
            for a in args
        )
        where = paths if name != "find" else paths[:1] or ["."]
        for path in where:
            resolved = resolve(path, cwd, home)
            whole = resolved == workspace and name != "find"
            if resolved is None or not inside(resolved, workspace) or whole:
                return f"it deletes {path}, outside the workspace (or the workspace itself)"
            if in_git_dir(resolved, workspace):
                return "it deletes from .git/, the repository's own data"
        if recursive:
            return "it deletes a directory tree (rm -r): files that were never committed cannot be brought back"
        if name == "find":
            return "it deletes every file find matches"
        return None
    if name in _WRITERS:
        targets = paths[-1:] if name in ("cp", "mv", "ln", "install") else paths
        if name == "dd":
            targets = [a[3:] for a in args if a.startswith("of=")]
        for path in targets:
            if (reason := _write_reason(path, workspace, cwd, home)) is not None:
                return reason
        if name == "mv":
            for path in paths[:-1]:
                resolved = resolve(path, cwd, home)
                if resolved is None or not inside(resolved, workspace):
                    return f"it moves {path} from outside the workspace"
        return None
    if name == "sed" and any(a == "-i" or a.startswith(("-i", "--in-place")) for a in args):
        for path in paths[1:]:
            resolved = resolve(path, cwd, home)
            if resolved is None or not inside(resolved, workspace) or in_git_dir(resolved, workspace):
                return f"it edits {path} in place, outside the workspace"
    return None


def _deletes_or_links(segment: Segment, workspace: str, cwd: str, home: str | None) -> str | None:
    """A directory emptied by an option (``pytest --basetemp``, like ``rm -r``); a symbolic link to outside."""
    for path in deletes_by_option((segment.name, *segment.words[1:])):
        resolved = resolve(path, cwd, home)
        if resolved is None or not harmless_target(resolved):
            return f"pytest --basetemp deletes {path} before the run, like rm -r"
    if segment.name == "ln" and any(a in ("-s", "--symbolic") or re.match(r"^-[a-zA-Z]*s", a) for a in segment.words):
        operands = [a for a in segment.words[1:] if not a.startswith("-")]
        for source in operands[:-1] if len(operands) > 1 else operands:
            resolved = resolve(source, cwd, home)
            if resolved is None or not inside(resolved, workspace):
                return f"it links to {source}, outside the workspace: later commands could reach it through the link"
    return None


def _git_reason(args: list[str]) -> str | None:
    options, args = split_git(args)
    if any(o in ("--git-dir", "--work-tree") or o.startswith(("--git-dir=", "--work-tree=")) for o in options):
        return "it points git at another repository or work tree"
    if not args:
        return None
    sub, rest = args[0], args[1:]
    flags = {a for a in rest if a.startswith("-")}
    reason: str | None = None
    match sub:
        case "push":
            reason = "git push publishes commits to a remote, which cannot be taken back"
        case "reset":
            if "--hard" in flags or "--keep" in flags or "--merge" in flags:
                reason = "git reset --hard throws away uncommitted work"
            elif "--soft" in flags or "--mixed" in flags or any(not a.startswith("-") for a in rest[:1]):
                reason = "git reset moves the branch, rewriting history"
        case "clean":
            reason = "git clean deletes untracked files, which cannot be brought back"
        case "checkout" if "--" in rest or "." in rest or "-f" in flags or "--force" in flags:
            reason = "git checkout -- … throws away uncommitted changes"
        case "restore" if not (flags & {"--staged", "-S"}) or flags & {"--worktree", "-W"}:
            reason = "git restore throws away uncommitted changes"
        case "switch" if flags & {"-f", "--force", "--discard-changes", "-C"}:
            reason = "git switch --force throws away uncommitted changes"
        case "rebase" | "filter-branch" | "filter-repo" | "replace":
            reason = f"git {sub} rewrites history"
        case "commit" if "--amend" in flags:
            reason = "git commit --amend rewrites the last commit"
        case "branch" if flags & {"-d", "-D", "--delete", "-f", "--force", "-m", "-M"}:
            reason = "it deletes or rewrites a branch"
        case "tag" if flags & {"-d", "--delete", "-f", "--force"}:
            reason = "it deletes or moves a tag"
        case "stash" if rest[:1] and rest[0] in ("drop", "clear"):
            reason = "it deletes stashed work"
        case "reflog" if rest[:1] and rest[0] in ("expire", "delete"):
            reason = "it deletes the reflog, the last way back to lost commits"
        case "update-ref" | "gc" | "prune" | "worktree" | "remote" | "config" | "submodule":
            reason = f"git {sub} changes the repository's own data"
    return reason


# --- session rules -----------------------------------------------------------------------------


def rule_specifier(command: str) -> str | None:
    """
    The ``Bash(…)`` specifier an "allow for this session" answer adds for *command*, or None.

    The program (and its subcommand for tools like git, npm, make, ``python -m``) followed by `` *``:
    ``pytest -q tests/`` → ``pytest *``; ``python3 -m pytest -x`` → ``python3 -m pytest *``;
    ``npm run test`` → ``npm run test *``. Read-only filters a pipeline ends in (``| tail -20``) are left out:
    they are covered anyway. None when the line runs more than one command of substance, or cannot be followed.
    """
    parsed = parse_command(command)
    if parsed.opaque:
        return None
    main = [s for i, s in enumerate(parsed.segments) if s.words and not _covered_filter(s, parsed, i)]
    if len(main) != 1 or main[0].nested or runs_other_code(main[0].assigns):
        return None
    words = list(main[0].words)
    name = posixpath.basename(words[0])
    keep = 1
    if name in _INTERPRETERS and len(words) > 1:
        if words[1] in ("-c", "-e", "-E", "--eval"):
            return shlex.join(words)  # inline code: only this very command
        keep = 3 if words[1] == "-m" and len(words) > 2 else 2
    elif name in _SUBCOMMANDS:
        keep = 1 + _SUBCOMMANDS[name]
        if len(words) > 2 and words[1] in _RUN_SUBCOMMANDS and name in ("npm", "pnpm", "yarn", "uv", "poetry", "bun"):
            keep = 3
        if any(w.startswith("-") for w in words[1:keep]):
            return None  # global options before the subcommand: no rule would read clearly
    head = words[:keep]
    if any(ch in w for w in head for ch in "*?[]"):
        return None
    return " ".join(head) + " *"


def _covered_filter(segment: Segment, parsed: Parsed, index: int) -> bool:
    """A read-only filter that only reads a pipe (``… | tail -20``), set up by nothing else, writing no file."""
    return (
        parsed.piped[index]
        and not segment.writes_to
        and not segment.assigns
        and not segment.wrapped
        and only_reads_its_pipe((segment.name, *segment.words[1:]))
    )


def _matches(segment: Segment, specifier: str) -> bool:
    text = " ".join(segment.words)
    pattern = specifier.strip()
    if pattern.endswith(":*"):  # the CLI's older prefix form, "npm run test:*"
        pattern = pattern[:-2].rstrip() + " *"
    if pattern.endswith(" *") and text == pattern[:-2]:
        return True
    return fnmatch.fnmatchcase(text, pattern)


def covered_by(command: str, specifiers: Iterable[str], workspace: str, *, home: str | None = None) -> str | None:
    """
    The first of *specifiers* (``Bash(…)`` rule bodies) that covers *command*, or None.

    Every simple command of the line must match one of the specifiers (read-only filters at the end of a
    pipe need none), none may be nested in a substitution or ``-c`` script, output may only be
    redirected inside the workspace or to ``/dev/null``, and every path a command names must stay inside the
    workspace (`voicecoder.domain.rule_scope`).
    """
    specs: Sequence[str] = tuple(specifiers)
    if not specs:
        return None
    parsed = parse_command(command)
    if parsed.opaque or not parsed.segments:
        return None
    first: str | None = None
    for index, segment in enumerate(parsed.segments):
        if segment.nested:
            return None
        redirected = (*segment.writes_to, *segment.reads_from)
        if outside_word(redirected, workspace, home) is not None:
            return None
        if not segment.words or _covered_filter(segment, parsed, index):
            continue
        match = next((s for s in specs if _matches(segment, s)), None)
        if match is None or runs_other_code(segment.assigns) or not _stays_inside(segment, workspace, home):
            return None
        first = first or match
    return first


def _stays_inside(segment: Segment, workspace: str, home: str | None) -> bool:
    """A command a rule may cover: its paths stay in the workspace and it runs only what its words say."""
    setup = [w for step in segment.setup for w in (step if "=" in step[0] else step[1:])]
    args = segment.words[1:]
    # Each script or pattern is taken out once, as the first word with its text (the one it was read from, or a
    # glued ``-e…`` that is then still checked): ``awk /etc/x /etc/x`` still names the file /etc/x.
    not_paths = Counter((*script_arguments((segment.name, *args)), *search_patterns(segment.name, args)))
    paths = []
    for arg in args:
        if not_paths[arg] > 0:
            not_paths[arg] -= 1
        else:
            paths.append(arg)
    return not (
        outside_word((*paths, *setup), workspace, home) is not None
        or leaves_directory(segment.name, args)
        or segment.arguments_from_input
        or names_from_elsewhere(segment.name, args)
        or (segment.name == "git" and git_runs_code(args))
        or runs_given_code((segment.name, *args))
    )
