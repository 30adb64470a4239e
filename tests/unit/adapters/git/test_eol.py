"""git's end-of-line conversion (`voicecoder.adapters.git.eol`) against git itself, content by content."""

from __future__ import annotations

from pathlib import Path

import pytest
from dulwich.repo import Repo
from hypothesis import example, given
from hypothesis import strategies as st

from tests.gitoracle import git_bytes, init_repo, requires_git
from voicecoder.adapters.git.eol import LineEndings
from voicecoder.testing.profiles import budget

pytestmark = requires_git

ATTRIBUTES = ["* text=auto", "* text=auto eol=crlf", "* text eol=crlf", "* text", "* -text", "* binary"]
CONTENT = st.lists(st.sampled_from([b"a", b"line", b"\r\n", b"\n", b"\r", b"\0", b"\x01", b"\t", b"\x1a", b"\xe9"]))


def git_stores(repo: Path, data: bytes) -> bytes:
    """What `git add` stores for *data* at f.txt (`hash-object --path` runs the same clean conversion)."""
    sha = git_bytes(repo, "hash-object", "-w", "--path=f.txt", "--stdin", stdin=data).strip().decode()
    return git_bytes(repo, "cat-file", "blob", sha)


def git_checks_out(repo: Path, data: bytes) -> bytes:
    """What a checkout writes at f.txt for the blob *data* (`cat-file --filters` runs the smudge conversion)."""
    sha = git_bytes(repo, "hash-object", "-w", "--no-filters", "--stdin", stdin=data).strip().decode()
    return git_bytes(repo, "cat-file", "--filters", "--path=f.txt", sha)


@pytest.fixture(name="repos", scope="module")
def _repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eol")
    return {
        line: init_repo(root / str(n), {".gitattributes": line.encode() + b"\n"}) for n, line in enumerate(ATTRIBUTES)
    }


@pytest.mark.parametrize("attributes", ATTRIBUTES)
@budget(40)
@given(parts=CONTENT)
@example(parts=[b"a", b"\r", b"a", b"\r\n"])  # a lone CR: binary to text=auto
@example(parts=[b"a\r\n", b"\0"])
@example(parts=[b"line" * 40, b"\x01", b"\r\n"])  # 1 control character in 160 printable ones: text
@example(parts=[b"line" * 20, b"\x01", b"\r\n"])  # ... in 80: binary
@example(parts=[b"line\r\n", b"\x1a"])  # a DOS end-of-file mark does not count
@example(parts=[b"a\r\nb\n"])  # mixed line ends
def test_clean_and_smudge_are_gits(repos: dict[str, Path], attributes: str, parts: list[bytes]) -> None:
    repo = repos[attributes]
    data = b"".join(parts)
    store = Repo(str(repo))
    try:
        eol = LineEndings(store)
        assert eol.clean(b"f.txt", data, lambda: None) == git_stores(repo, data)
        blob = data.replace(b"\r\n", b"\n")  # what git holds: LF text (or whatever was committed)
        assert eol.smudge(b"f.txt", blob) == git_checks_out(repo, blob)
    finally:
        store.close()
