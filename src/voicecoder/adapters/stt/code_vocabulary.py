"""
Code-aware recognition: the words of coding requests, as hints in and spelled names out.

Three pieces, each small and testable on its own:

* `CODING_VOCABULARY`: the developer words every request may use (git, commit, diff, pytest, README, …).
  General-purpose models hear them as everyday words ("git log" → "good log") unless told.
* `recognizer_terms`: the hint list a recogniser is given: that vocabulary, then the workspace's names in
  the form they are *spoken* (``main.py`` → ``main``, ``parse_config`` → ``parse config``). A list of file
  names with extensions makes Whisper loop on ``.py.py.py``; the spoken forms do not.
* `CODING_CONTEXT` and `whisper_prompt`: for engines that take a text prompt, the vocabulary said in sentences,
  then the workspace's spoken names.
* `apply_spoken_forms`: a conservative post-pass that writes a spoken name the way the workspace spells it,
  and only when the workspace has it: "main dot py" → ``main.py`` if there is a ``main.py``,
  "parse config" → ``parse_config`` if such a symbol exists. Nothing else is touched.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence

from voicecoder.domain.model import TranscriptionHints

__all__ = [
    "CODING_CONTEXT",
    "CODING_VOCABULARY",
    "MAX_PROMPT_CHARS",
    "apply_spoken_forms",
    "hint_prompt",
    "recognizer_terms",
    "whisper_prompt",
]

#: Developer words for the hints, most useful first (they are cut last when the prompt is full).
CODING_VOCABULARY: tuple[str, ...] = (
    "git",
    "commit",
    "diff",
    "pytest",
    "README",
    "repo",
    "branch",
    "merge",
    "rebase",
    "stash",
    "npm",
    "pip",
    "lint",
    "ruff",
    "docstring",
    "refactor",
    "async",
    "Dockerfile",
    "JSON",
    "YAML",
    "API",
    "CLI",
)
#: Whisper's prompt window is 224 tokens; keep the vocabulary prompt well inside it.
MAX_PROMPT_CHARS = 600
#: How coding requests read, with the vocabulary in place: a Whisper-style engine follows a prompt that looks like
#: earlier speech far better than a comma-separated list, which it starts to imitate ("merge, npm, branch,").
#: Chosen on the tuning clips only (bench/stt_corpus/tuning; ADR 0018).
CODING_CONTEXT = (
    "Run pytest and fix the failing tests. Show the git log, the git status and the git diff. "
    "Commit the changes, merge or rebase the branch, stash them. Pip install or npm install a package. "
    "Update the README in the repo, lint with ruff, add a docstring, refactor a function, make it async, "
    "edit the Dockerfile, the JSON or YAML config, the API and the CLI."
)

_README_FILE = re.compile(r"^(?P<stem>readme)(?:\.[A-Za-z0-9]{1,6})?$", re.IGNORECASE)
_SPOKEN_README = re.compile(r"\b(?P<det>the|a|this|that|our|your|my)\s+read[\s-]+me\b", re.IGNORECASE)
_EXTENSION = re.compile(r"^(?P<stem>[^.].*?)\.(?P<ext>[A-Za-z0-9]{1,6})$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
#: Extensions files are named with: a heard extension among these is what was said, never taken for a mishearing.
_KNOWN_EXTENSIONS = frozenset(
    "py pyi pyw pyx js jsx ts tsx mjs cjs json md rst txt toml yaml yml cfg ini conf env sh bash zsh ps1 bat sql "  # noqa: SIM905
    "html htm css scss sass less xml csv tsv lock go rs rb java kt c h cc cpp hpp cs php swift lua pl r "
    "log po mo ipynb svg png jpg jpeg gif pdf zip gz tar bin dat db".split()
)
#: A file name as heard: one word, then "." or " dot ", then a short extension that does not go on (``api.poi``).
_HEARD_FILE = re.compile(
    r"(?<![.\w])(?P<stem>[A-Za-z0-9][\w-]*)(?:\s+dot\s+|\.)(?P<ext>[A-Za-z]{1,5})\b(?!\.?\w)", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[_\-/]+")


def hint_prompt(terms: Sequence[str], *, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """A short vocabulary sentence for a Whisper-style prompt: the terms in order, capped at *max_chars*."""
    chosen: list[str] = []
    used = 0
    for term in terms:
        cleaned = term.strip()
        if not cleaned or used + len(cleaned) + 2 > max_chars:
            continue
        chosen.append(cleaned)
        used += len(cleaned) + 2
    return ", ".join(chosen) + "." if chosen else None


def whisper_prompt(hints: TranscriptionHints | None, *, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """
    The initial prompt for a Whisper-style engine: the hints' context, then the keyterms it does not already say.

    Without a context this is `hint_prompt` of the keyterms (what a keyterm-only API's hints amount to).
    """
    if hints is None:
        return None
    if not hints.context:
        return hint_prompt(hints.keyterms, max_chars=max_chars) if hints.keyterms else None
    said = hints.context.lower()
    names = hint_prompt([t for t in hints.keyterms if t.strip().lower() not in said], max_chars=max_chars)
    return f"{hints.context} In this project: {names}" if names else hints.context


def _spoken(name: str) -> str:
    """How a workspace name is said: no extension, separators as spaces (``parse_config`` → ``parse config``)."""
    match = _EXTENSION.match(name)
    if match and not match["stem"].endswith("."):
        name = match["stem"]
    return _SEPARATORS.sub(" ", name).strip()


def recognizer_terms(workspace: Iterable[str], *, vocabulary: Sequence[str] = CODING_VOCABULARY) -> tuple[str, ...]:
    """The hint list for a recogniser: *vocabulary*, then each workspace name as it is spoken, deduplicated."""
    terms: dict[str, str] = {}
    for term in (*vocabulary, *(_spoken(name) for name in workspace)):
        key = term.lower()
        if len(key) >= 2 and key not in terms:
            terms[key] = term
    return tuple(terms.values())


def _words(name: str) -> list[str]:
    """The spoken words of an identifier: ``parse_config`` and ``ParseConfig`` both give ``parse config``."""
    return [w for w in _SEPARATORS.split(_CAMEL.sub(" ", name).replace(" ", "_")) if w]


def _pattern(name: str) -> str | None:
    """A regex for the spoken forms of *name*, or None when it has nothing to rewrite."""
    sep = r"[\s_\-]+"
    if name.startswith("."):
        words = _words(name[1:])
        return r"(?:\bdot\s+|\.)" + sep.join(map(re.escape, words)) if words else None
    match = _EXTENSION.match(name)
    if match:
        words = _words(match["stem"])
        if not words:
            return None
        ext = re.escape(match["ext"])
        # Whisper primed with file names sometimes repeats the extension ("api.py.py"): one is meant.
        return r"\b" + sep.join(map(re.escape, words)) + r"(?:\s+dot\s+|\s*\.\s*)" + ext + rf"(?:\.{ext})*"
    if "." in name or "/" in name:
        return None
    words = _words(name)
    return r"\b" + sep.join(map(re.escape, words)) if len(words) > 1 else None


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two short strings."""
    row = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, char_b in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (char_a != char_b))
    return row[-1]


def _near_extension(heard: str, ext: str) -> bool:
    """Whether *heard* is a mishearing of the extension *ext* (``poi``/``pi`` for ``py``, ``dxt`` for ``txt``)."""
    heard, ext = heard.lower(), ext.lower()
    if heard == ext or heard in _KNOWN_EXTENSIONS:
        return False
    distance = _edit_distance(heard, ext)
    return distance == 1 or (distance == 2 and heard[0] == ext[0])


def _misheard_extensions(text: str, names: Iterable[str]) -> str:
    """
    A workspace file's stem heard with a near-miss of its extension (``API.poi``) becomes that file (``api.py``).

    Only when exactly one workspace file has that stem, and the heard extension is no extension files are named
    with (``config.js`` beside a ``config.json`` is a different file someone may mean).
    """
    files: dict[str, list[str]] = {}
    for name in names:
        match = _EXTENSION.match(name)
        if match and "/" not in name:
            files.setdefault(match["stem"].lower(), []).append(name)

    def rewrite(heard: re.Match[str]) -> str:
        found = files.get(heard["stem"].lower(), [])
        if len(found) != 1:
            return heard[0]
        ext = _EXTENSION.match(found[0])["ext"]  # type: ignore[index]
        return found[0] if _near_extension(heard["ext"], ext) else heard[0]

    return _HEARD_FILE.sub(rewrite, text) if files else text


def _parked(park: Callable[[str], str], name: str, _match: re.Match[str]) -> str:
    return park(name)


def apply_spoken_forms(text: str, names: Iterable[str]) -> str:
    """
    Write spoken workspace names the way the workspace spells them; leave everything else alone.

    * a file name said with "dot" (``main dot py``, ``test api dot py``) or written with another case or
      separator becomes the file's name, if the workspace has exactly that file;
    * ``dot gitignore`` becomes ``.gitignore`` for dotfiles the workspace has;
    * the words of a multi-word identifier (``parse config``) become the identifier (``parse_config``), if the
      workspace defines it;
    * a file name heard with its extension repeated (``api.py.py``) loses the repeats;
    * a file's stem heard with a near-miss of its extension (``API.poi``, ``requirements.dxt``) is that file, if
      the workspace has exactly one file with that stem and the heard extension is not a real one (`_KNOWN_EXTENSIONS`);
    * "the read me" (after a determiner only) becomes "the README" when the workspace has a README file.

    Longer names are tried first, and a rewritten name is never rewritten again.
    """
    candidates = sorted({n.strip() for n in names if n.strip()}, key=lambda n: (-len(_words(n)), -len(n)))
    if not candidates or not text:
        return text
    # Rewritten spans are parked as placeholders so a shorter name cannot rewrite part of a longer one.
    parked: list[str] = []

    def park(name: str) -> str:
        parked.append(name)
        return f"\x00{len(parked) - 1}\x00"

    text = _misheard_extensions(text, candidates)
    readme = next((n for n in candidates if _README_FILE.match(n)), None)
    if readme is not None:
        # "the read me" is only ever the file; "read me the log" (no determiner before it) is left alone.
        stem = _README_FILE.match(readme)["stem"]  # type: ignore[index]
        text = _SPOKEN_README.sub(lambda m: f"{m['det']} {stem}", text)
    for name in candidates:
        pattern = _pattern(name)
        if pattern is not None:
            text = re.sub(pattern + r"(?![\w])", functools.partial(_parked, park, name), text, flags=re.IGNORECASE)
    return re.sub("\x00(\\d+)\x00", lambda m: parked[int(m[1])], text)
