"""
Random turns on a real repository, checked against the git CLI after every step.

The machine edits files (create, edit, delete, chmod, file <-> directory, ignored files), sometimes
outside a turn (the developer's own uncommitted work), then approves or rejects the turn. A model of
the working tree and of HEAD says what must be on disk and in git; `git ls-tree`, `git status` and
`git fsck --strict` must agree with it after every step.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.gitoracle import GIT, fsck, git, init_repo, porcelain, tree_of
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.domain.errors import WorkspaceError
from voicecoder.domain.model import Baseline, CommitMessage, TurnId

_T = TypeVar("_T")

File = tuple[bytes, bool]
PATHS = ["a.txt", "b.py", "d/c.txt", "d/e/f.txt", "x", "x/y.txt", "ünï code.txt"]
IGNORED = ["debug.log", "d/trace.log"]
CONTENTS = [b"", b"one\n", b"one\ntwo\n", b"crlf\r\nline\r\n", b"no newline", b"\x00\x01binary", b"caf\xe9\n"]


def blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def run(fn: Callable[..., Awaitable[_T]], *args: object) -> _T:
    return anyio.run(functools.partial(fn, *args))


class WorkspaceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="vc-ws-machine-"))
        self.root = init_repo(self.tmp / "repo", {".gitignore": b"*.log\n", "a.txt": b"one\n"})
        self.files: dict[str, File] = {".gitignore": (b"*.log\n", False), "a.txt": (b"one\n", False)}
        self.head: dict[str, File] = dict(self.files)
        self.index: dict[str, File] = dict(self.files)
        self.snapshot_index: dict[str, File] = {}
        self.ws = DulwichWorkspace(self.root, init_if_missing=False)
        self.baseline: Baseline | None = None
        self.snapshot: dict[str, File] = {}
        self.turns = 0

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- editing the tree ------------------------------------------------------------

    def _tracked_view(self, files: dict[str, File]) -> dict[str, File]:
        return {p: f for p, f in files.items() if not p.endswith(".log")}

    def _disk_write(self, path: str, data: bytes, executable: bool) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):  # a file where a directory must go is removed first
            ancestor = "/".join(parts[:i])
            if ancestor in self.files:
                (self.root / ancestor).unlink()
                del self.files[ancestor]
        target = self.root / path
        if target.is_dir():  # a directory where the file must go: remove the model's files below it
            for inner in [p for p in self.files if p.startswith(path + "/")]:
                (self.root / inner).unlink()
                del self.files[inner]
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(0o755 if executable else 0o644)
        self.files[path] = (data, executable)

    @rule(path=st.sampled_from(PATHS), data=st.sampled_from(CONTENTS), executable=st.booleans())
    def write(self, path: str, data: bytes, executable: bool) -> None:
        self._disk_write(path, data, executable)

    @rule(path=st.sampled_from(IGNORED), data=st.sampled_from(CONTENTS))
    def write_ignored(self, path: str, data: bytes) -> None:
        self._disk_write(path, data, executable=False)

    @rule(path=st.sampled_from(PATHS))
    def delete(self, path: str) -> None:
        if path in self.files:
            (self.root / path).unlink()
            del self.files[path]

    @rule(path=st.sampled_from(PATHS))
    def chmod(self, path: str) -> None:
        if path in self.files:
            data, executable = self.files[path]
            (self.root / path).chmod(0o644 if executable else 0o755)
            self.files[path] = (data, not executable)

    @rule()
    def stage_everything(self) -> None:
        """`git add -A`, by the developer before a turn or by the agent during one."""
        git(self.root, "add", "-A")
        self.index = self._tracked_view(self.files)

    # --- turns ---------------------------------------------------------------------------

    @precondition(lambda self: self.baseline is None)
    @rule()
    def begin(self) -> None:
        self.turns += 1
        self.baseline = run(self.ws.begin_turn, TurnId(f"t{self.turns}"))
        self.snapshot = self._tracked_view(self.files)
        self.snapshot_index = dict(self.index)

    @staticmethod
    def _set(mapping: dict[str, File], path: str, entry: File | None) -> None:
        if entry is None:
            mapping.pop(path, None)
        else:
            mapping[path] = entry

    def _expected_changes(self) -> set[str]:
        now = self._tracked_view(self.files)
        return {p for p in set(now) | set(self.snapshot) if now.get(p) != self.snapshot.get(p)}

    @precondition(lambda self: self.baseline is not None)
    @rule()
    def approve(self) -> None:
        assert self.baseline is not None
        expected = self._expected_changes()
        diff = run(self.ws.changes_since, self.baseline)
        assert set(diff.paths) == expected
        new_head = dict(self.head)
        for path in expected:
            if path in self.files:
                new_head[path] = self.files[path]
            else:
                new_head.pop(path, None)
        if new_head == self.head:  # nothing git could commit: never an empty commit
            with pytest.raises(WorkspaceError):
                run(
                    functools.partial(
                        self.ws.commit_turn, fingerprint=diff.fingerprint, message=CommitMessage("empty")
                    ),
                    self.baseline,
                )
        else:
            run(
                functools.partial(self.ws.commit_turn, fingerprint=diff.fingerprint, message=CommitMessage("turn")),
                self.baseline,
            )
            self.head = new_head
            for path in expected:
                self._set(self.index, path, self.files.get(path))
            fsck(self.root)
        self.baseline = None

    @precondition(lambda self: self.baseline is not None)
    @rule()
    def reject(self) -> None:
        assert self.baseline is not None
        for path in self._expected_changes():
            self._set(self.files, path, self.snapshot.get(path))
            self._set(self.index, path, self.snapshot_index.get(path))
        run(self.ws.restore_turn, self.baseline)
        self.baseline = None

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def disk_matches_the_model(self) -> None:
        on_disk: dict[str, File] = {}
        for path in self.root.rglob("*"):
            rel = path.relative_to(self.root).as_posix()
            if rel == ".git" or rel.startswith(".git/") or path.is_dir():
                continue
            on_disk[rel] = (path.read_bytes(), path.stat().st_mode & 0o100 != 0)
        assert on_disk == self.files

    @invariant()
    def head_matches_the_model(self) -> None:
        expected = {p: ("100755" if x else "100644", blob_sha(data)) for p, (data, x) in self.head.items()}
        assert tree_of(self.root) == expected

    @invariant()
    def git_status_matches_the_model(self) -> None:
        now = self._tracked_view(self.files)
        unstaged = {p for p in set(now) | set(self.index) if now.get(p) != self.index.get(p)}
        staged = {p for p in set(self.index) | set(self.head) if self.index.get(p) != self.head.get(p)}
        oracle = porcelain(self.root)
        assert {path for code, path in oracle if code[0] not in " ?"} == staged
        assert {path for code, path in oracle if code[1] != " "} == unstaged


pytestmark = pytest.mark.skipif(GIT is None, reason="the git CLI is the oracle and is not installed")

WorkspaceMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestWorkspaceMachine = WorkspaceMachine.TestCase
