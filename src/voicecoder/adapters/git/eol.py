"""
git's end-of-line conversion: what `git add` stores for a file, and what a checkout writes for a blob.

With ``core.autocrlf``, ``core.eol`` or the ``text``/``eol``/``crlf`` attributes, git stores text files with LF
and may check them out with CRLF. Hashing the raw bytes instead would commit CRLF blobs git itself would never
store (and `git status` would show them modified); writing blobs raw would put LF where a checkout puts CRLF.
The rules are git's ``convert.c`` (the action per path comes from dulwich's `resolve_crlf_action`):

* clean (worktree → blob) turns CRLF into LF, only where the file has a CRLF; for ``text=auto`` (and
  ``core.autocrlf``) only in text (no NUL, no lone CR, few control characters) whose staged version has no CR;
* smudge (blob → worktree) turns lone LF into CRLF where the working tree wants CRLF; for ``auto`` only in
  text without any CR.

External filter drivers (``filter=…``, such as LFS) run programs and are not applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from dulwich.attrs import GitAttributes
from dulwich.line_ending import CRLFAction, resolve_crlf_action
from dulwich.repo import Repo

__all__ = ["LineEndings"]

_AUTO: Final = frozenset({CRLFAction.AUTO, CRLFAction.AUTO_INPUT, CRLFAction.AUTO_CRLF})
_TO_CRLF: Final = frozenset({CRLFAction.TEXT_CRLF, CRLFAction.AUTO_CRLF})
# Control characters git counts as printable (backspace, tab, escape, form feed); LF and CR are counted apart.
_NON_PRINTABLE: Final = bytes(c for c in range(32) if c not in (8, 9, 10, 12, 13, 27)) + b"\x7f"
_TRUE: Final = frozenset({b"true", b"yes", b"on", b"1"})


def _is_binary(data: bytes) -> bool:
    """Like git's `convert_is_binary`: a lone CR, a NUL, or more than 1 control character per 128 printable ones."""
    if b"\0" in data or data.count(b"\r") != data.count(b"\r\n"):
        return True
    nonprintable = len(data) - len(data.translate(None, _NON_PRINTABLE))
    printable = len(data) - data.count(b"\n") - data.count(b"\r\n") - nonprintable  # a CRLF is one line end
    if data.endswith(b"\x1a"):  # a DOS end-of-file mark is not held against the file
        nonprintable -= 1
    return (printable >> 7) < nonprintable


class LineEndings:
    """The conversion of one repository, read when first needed (config and attributes as they are now)."""

    def __init__(self, repo: Repo) -> None:
        self._repo = repo
        self._config: tuple[str, bytes] | None = None
        self._attributes: GitAttributes | None = None

    def action(self, path: bytes) -> CRLFAction:
        if self._config is None:
            config = self._repo.get_config_stack()
            try:
                autocrlf = config.get(b"core", b"autocrlf").lower()
            except KeyError:
                autocrlf = b"false"
            try:
                eol = config.get(b"core", b"eol").decode("ascii", "replace").lower()
            except KeyError:
                eol = "native"
            self._config = (eol, b"true" if autocrlf in _TRUE else autocrlf)
        if self._attributes is None:
            self._attributes = self._repo.get_gitattributes()
        attributes = self._attributes.match_path(path)
        if attributes.get(b"binary") is True:  # the macro: -diff -merge -text
            return CRLFAction.BINARY
        return resolve_crlf_action(attributes, *self._config)

    def clean(self, path: bytes, data: bytes, staged: Callable[[], bytes | None]) -> bytes:
        """What `git add` stores for *data* at *path*; *staged* gives the content staged there (or None)."""
        if b"\r\n" not in data:
            return data
        action = self.action(path)
        if action is CRLFAction.BINARY:
            return data
        if action in _AUTO:
            if _is_binary(data):
                return data
            before = staged()
            if before is not None and b"\r" in before:  # git leaves files committed with CRs as they are
                return data
        return data.replace(b"\r\n", b"\n")

    def smudge(self, path: bytes, data: bytes) -> bytes:
        """What a checkout writes for the blob *data* at *path*."""
        if b"\n" not in data or data.count(b"\n") == data.count(b"\r\n"):
            return data
        action = self.action(path)
        if action not in _TO_CRLF:
            return data
        if action in _AUTO and (b"\r" in data or _is_binary(data)):
            return data
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
