"""
Code words from the workspace that help a recogniser: branch names, file and directory names, symbols.

Speech engines mishear code ("test dot txt" → "test.dxt"); feeding them the names that actually
exist in the workspace fixes many of those. The scan is cheap and bounded: it skips ``.git``,
git-ignored paths (via dulwich's ignore rules), virtualenvs and caches, binary and huge files, and
stops after `max_files`. Branch names are read from ``.git/refs/heads`` and ``packed-refs`` directly.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio.to_thread
import attrs

log = logging.getLogger(__name__)

__all__ = ["WorkspaceVocabulary"]

_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        ".idea",
        ".vscode",
        "dist",
        "build",
        ".eggs",
    }
)
_BINARY_SUFFIXES = frozenset(
    [
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".webp",
        ".ico",
        ".bmp",
        ".pdf",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".7z",
        ".tar",
        ".whl",
        ".egg",
        ".so",
        ".dylib",
        ".dll",
        ".exe",
        ".bin",
        ".o",
        ".a",
        ".pyc",
        ".pyo",
        ".class",
        ".jar",
        ".mp3",
        ".mp4",
        ".ogg",
        ".oga",
        ".opus",
        ".wav",
        ".m4a",
        ".flac",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".db",
        ".sqlite",
        ".sqlite3",
        ".onnx",
        ".pt",
        ".npy",
        ".npz",
    ]
)
_SYMBOL = re.compile(r"^(?:async\s+def|def|class)\s+([A-Za-z]\w*)", re.MULTILINE)
_MIN_TERM = 3
_MAX_TERM = 60


def _is_binary(path: Path) -> bool:
    if path.suffix.lower() in _BINARY_SUFFIXES:
        return True
    try:
        with path.open("rb") as handle:
            return b"\0" in handle.read(1024)
    except OSError:
        return True


def _git_dir(root: Path) -> Path | None:
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text.removeprefix("gitdir:").strip())
            return target if target.is_absolute() else (root / target).resolve()
    return None


def _branches(git_dir: Path) -> list[str]:
    """Branch names, the checked-out one first; read from the ref files, never via the git CLI."""
    names: list[str] = []
    head = git_dir / "HEAD"
    if head.is_file():
        text = head.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("ref: refs/heads/"):
            names.append(text.removeprefix("ref: refs/heads/"))
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    heads = common / "refs" / "heads"
    if heads.is_dir():
        names.extend(sorted(p.relative_to(heads).as_posix() for p in heads.rglob("*") if p.is_file()))
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].startswith("refs/heads/"):
                names.append(parts[1].removeprefix("refs/heads/"))
    return names


def _ignore_checker(root: Path) -> Callable[[str], bool]:
    """A predicate on repository-relative paths ('dir/' for directories) following .gitignore rules."""
    try:
        from dulwich.errors import NotGitRepository  # noqa: PLC0415 - only needed for a git workspace
        from dulwich.ignore import IgnoreFilterManager  # noqa: PLC0415
        from dulwich.repo import Repo  # noqa: PLC0415
    except ImportError:  # pragma: no cover - dulwich is a core dependency
        return lambda _path: False
    try:
        repo = Repo(str(root))
    except (NotGitRepository, OSError):
        return lambda _path: False
    try:
        manager = IgnoreFilterManager.from_repo(repo)
    finally:
        repo.close()
    return lambda path: manager.is_ignored(path) is True


@attrs.define
class WorkspaceVocabulary:
    """
    `VocabularySource` over a directory (usually a git working tree).

    Terms come in order of usefulness: branch names, then names nearest the root (breadth first, with
    their stems: ``main.py`` gives ``main.py`` and ``main``), then top-level Python ``def``/``class``
    names; deduplicated and capped at *limit*.
    """

    path: Path = attrs.field(converter=Path)
    limit: int = 100
    max_files: int = 5_000
    max_file_bytes: int = 1_000_000
    max_symbol_file_bytes: int = 200_000

    async def vocabulary(self) -> tuple[str, ...]:
        try:
            return await anyio.to_thread.run_sync(self.scan)
        except Exception:
            log.warning("workspace vocabulary scan of %s failed", self.path, exc_info=True)
            return ()

    def scan(self) -> tuple[str, ...]:
        """The terms, computed synchronously (`vocabulary` runs this in a worker thread)."""
        root = self.path
        if not root.is_dir():
            return ()
        terms: dict[str, None] = {}

        def add(term: str) -> bool:
            term = term.strip()
            if _MIN_TERM <= len(term) <= _MAX_TERM and term not in terms:
                terms[term] = None
            return len(terms) >= self.limit

        git_dir = _git_dir(root)
        if git_dir is not None:
            for branch in _branches(git_dir):
                if add(branch) or ("/" in branch and add(branch.rsplit("/", 1)[-1])):
                    return tuple(terms)
        python_files: list[Path] = []
        for path, is_dir in self._walk(root):
            name = path.name
            if add(name):
                return tuple(terms)
            if not is_dir and "." in name.lstrip(".") and add(path.stem):
                return tuple(terms)
            if not is_dir and path.suffix == ".py":
                python_files.append(path)
        for path in python_files:
            for symbol in self._symbols(path):
                if add(symbol):
                    return tuple(terms)
        return tuple(terms)

    def _walk(self, root: Path) -> Iterator[tuple[Path, bool]]:
        """Breadth-first: every entry of a level before the next level; skipped and ignored paths left out."""
        ignored = _ignore_checker(root)
        level = [root]
        seen_files = 0
        while level:
            next_level: list[Path] = []
            for directory in level:
                try:
                    entries = sorted(os.scandir(directory), key=lambda e: e.name)
                except OSError:
                    continue
                for entry in entries:
                    path = Path(entry.path)
                    relative = path.relative_to(root).as_posix()
                    if entry.is_symlink():
                        continue
                    if entry.is_dir():
                        if entry.name in _SKIP_DIRS or entry.name.endswith(".egg-info") or ignored(relative + "/"):
                            continue
                        next_level.append(path)
                        yield path, True
                        continue
                    seen_files += 1
                    if seen_files > self.max_files:
                        return
                    if ignored(relative):
                        continue
                    try:
                        size = entry.stat().st_size
                    except OSError:
                        continue
                    if size > self.max_file_bytes or _is_binary(path):
                        continue
                    yield path, False
            level = next_level

    def _symbols(self, path: Path) -> list[str]:
        try:
            if path.stat().st_size > self.max_symbol_file_bytes:
                return []
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return [name for name in _SYMBOL.findall(text) if not name.startswith("_")]
