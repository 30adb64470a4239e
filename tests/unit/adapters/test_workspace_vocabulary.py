from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary
from voicecoder.domain.ports import VocabularySource

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the git CLI is needed to build test repositories")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def write(root: Path, relative: str, content: str | bytes = "") -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.fixture(name="repo")
def _repo(tmp_path: Path) -> Path:
    """A git repository with code, ignored files, binaries and three branches (one packed)."""
    root = tmp_path / "workspace"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(
        root,
        "main.py",
        "import os\n\n\ndef greet(name):\n    def inner():\n        pass\n\n\nclass Greeter:\n    pass\n",
    )
    write(root, "README.md", "# demo\n")
    write(
        root,
        "src/app/models.py",
        "class UserProfile:\n    def save(self):\n        pass\n\n\ndef _private():\n    pass\n",
    )
    write(root, "src/app/utils.py", "async def fetch_all():\n    pass\n")
    write(root, "tests/utils.py", "def helper():\n    pass\n")
    write(root, ".gitignore", "secrets/\n*.log\n")
    write(root, "secrets/token.txt", "x")
    write(root, "debug.log", "x")
    write(root, "node_modules/leftpad/index.js", "x")
    write(root, "logo.png", b"\x89PNG\r\n\x1a\n" + bytes(100))
    write(root, "blob.dat", b"abc\x00def")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    git(root, "branch", "feature/login")
    git(root, "branch", "fix-typo")
    git(root, "pack-refs", "--all")
    git(root, "branch", "spike")
    return root


class TestWorkspaceVocabulary:
    def test_is_a_vocabulary_source(self, repo: Path) -> None:
        """It satisfies the VocabularySource port."""
        assert isinstance(WorkspaceVocabulary(repo), VocabularySource)

    def test_file_and_directory_names_with_stems(self, repo: Path) -> None:
        """Names at every level are terms, and files also give their stem."""
        terms = WorkspaceVocabulary(repo).scan()

        for expected in ("main.py", "main", "README.md", "README", "src", "app", "models.py", "models", "utils.py"):
            assert expected in terms

    def test_top_level_python_symbols(self, repo: Path) -> None:
        """Top-level public def/class names are terms; nested and private ones are not."""
        terms = WorkspaceVocabulary(repo).scan()

        assert {"greet", "Greeter", "UserProfile", "fetch_all", "helper"} <= set(terms)
        assert "inner" not in terms
        assert "save" not in terms
        assert "_private" not in terms

    def test_branches_loose_and_packed(self, repo: Path) -> None:
        """The checked-out branch comes first; loose and packed branches are read from .git directly."""
        terms = WorkspaceVocabulary(repo).scan()

        assert not (repo / ".git" / "refs" / "heads" / "fix-typo").exists()
        assert terms[0] == "main"
        assert {"feature/login", "login", "fix-typo", "spike"} <= set(terms)

    def test_skips_git_ignored_binary_and_vendor(self, repo: Path) -> None:
        """.git internals, ignored paths, node_modules and binary files give no terms."""
        terms = set(WorkspaceVocabulary(repo).scan())

        assert not {"HEAD", "objects", "refs", "secrets", "token.txt", "debug.log", "node_modules"} & terms
        assert not {"logo.png", "blob.dat", "leftpad", "index.js"} & terms

    def test_skips_huge_files(self, repo: Path) -> None:
        """Files over max_file_bytes give no terms."""
        write(repo, "big_dump.sql", "x" * 5000)

        terms = WorkspaceVocabulary(repo, max_file_bytes=1000).scan()

        assert "big_dump.sql" not in terms
        assert "main.py" in terms

    def test_capped_and_deduplicated(self, repo: Path) -> None:
        """At most `limit` distinct terms; a name found twice appears once."""
        full = WorkspaceVocabulary(repo).scan()
        capped = WorkspaceVocabulary(repo, limit=5).scan()

        assert len(full) == len(set(full))
        assert full.count("utils.py") == 1
        assert capped == full[:5]

    def test_plain_directory(self, tmp_path: Path) -> None:
        """A directory that is not a repository still gives its names, and no branches."""
        write(tmp_path, "notes.txt", "hello")

        assert WorkspaceVocabulary(tmp_path).scan() == ("notes.txt", "notes")

    async def test_missing_directory(self, tmp_path: Path) -> None:
        """A missing workspace gives an empty vocabulary instead of an error."""
        assert await WorkspaceVocabulary(tmp_path / "nope").vocabulary() == ()

    async def test_async_matches_scan(self, repo: Path) -> None:
        """vocabulary() returns what scan() computes, off the event loop."""
        source = WorkspaceVocabulary(repo)

        assert await source.vocabulary() == source.scan()
