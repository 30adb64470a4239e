"""
Workspace benchmark: `DulwichWorkspace` turn transactions against the equivalent git CLI commands.

Builds a 10,000-file repository (200 directories x 50 files, 9 lines each, plus a .gitignore) in a temp
directory, packed like a clone, and copies it: one copy for the adapter, one for git. Every repetition
applies the same random mutation to both copies (append a line to 20 files, add 5, delete 5, plus one
ignored ``__pycache__`` file) and times:

* **approve**: ``begin_turn`` + ``changes_since`` + ``commit_turn`` vs ``git stash create`` +
  ``git add -A`` + ``git diff --cached`` + ``git commit``;
* **reject**: ``begin_turn`` + ``restore_turn`` vs ``git stash create`` + ``git checkout -- <paths>`` +
  ``git clean -fd``.

Those git commands are lighter than what the adapter does: ``git stash create`` leaves untracked files out of
the snapshot, and the reject side is *told* the paths (and ``git clean -fd`` would also delete the developer's
own untracked files). So a third copy runs the **equivalent** git sequence, used for the target ratio: a
checkpoint of tracked and untracked files (temporary index seeded from the real one, ``add -A``,
``write-tree``, ``commit-tree``, ``update-ref``), the turn's paths found by ``diff --name-status`` against it,
then ``diff`` + ``add -- <paths>`` + ``commit`` (approve) or ``restore --source=<checkpoint> --worktree`` + removing
added files (reject).

The mutation happens between the snapshot and the rest (the agent's work is not timed). git runs through
``subprocess.run`` (fork/exec included, as an adapter would pay it). After every approve both copies must
hold the same tree, and ``git status --porcelain`` must be empty after every approve and reject.

Run: ``.venv/bin/python bench/workspace.py [--reps 7] [--files-per-dir 50] [--dirs 200]``.
"""

from __future__ import annotations

import argparse
import functools
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent / "src"))

from voicecoder.adapters.git import DulwichWorkspace  # noqa: E402
from voicecoder.domain.model import CommitMessage, TurnId  # noqa: E402

AUTHOR = "bench <bench@localhost>"
GIT_ENV_ARGS = ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "-c", "gc.auto=0"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *GIT_ENV_ARGS, "-C", str(repo), *args], capture_output=True, check=True)
    return done.stdout.decode("utf-8", "replace")


def build_repo(root: Path, dirs: int, files_per_dir: int) -> None:
    root.mkdir(parents=True)
    for d in range(dirs):
        pkg = root / f"pkg{d:03d}"
        pkg.mkdir()
        for f in range(files_per_dir):
            lines = [f"value_{i} = {d * 1000 + f * 10 + i}\n" for i in range(9)]
            (pkg / f"mod{f:02d}.py").write_text("".join(lines))
    (root / ".gitignore").write_text("__pycache__/\n*.pyc\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "gc.auto", "0")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    git(root, "gc", "-q")


class Mutation:
    """One turn's edits, chosen once and applied to both copies."""

    def __init__(self, rng: random.Random, tracked: list[str], rep: int) -> None:
        picked = rng.sample(tracked, 25)
        self.modified = picked[:20]
        self.deleted = picked[20:]
        self.added = [f"pkg{rng.randrange(200):03d}/new_{rep}_{i}.py" for i in range(5)]
        self.rep = rep

    def apply(self, root: Path) -> None:
        for path in self.modified:
            with (root / path).open("a") as f:
                f.write(f"extra_{self.rep} = {self.rep}\n")
        for path in self.deleted:
            (root / path).unlink()
        for path in self.added:
            (root / path).write_text(f"def added_{self.rep}():\n    return {self.rep}\n")
        cache = root / "pkg000" / "__pycache__"
        cache.mkdir(exist_ok=True)
        (cache / f"x{self.rep}.pyc").write_bytes(b"\x00ignored")


class EquivalentGit:
    """The git CLI doing what `DulwichWorkspace` does: checkpoint with untracked files, discover the turn's paths."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.index = repo / ".git" / "vc-bench-index"

    def _scan(self) -> dict[str, str]:
        # Seeded from the real index so git reuses its stat cache, as the adapter does.
        shutil.copyfile(self.repo / ".git" / "index", self.index)
        env = {"GIT_INDEX_FILE": str(self.index)}
        subprocess.run(
            ["git", *GIT_ENV_ARGS, "-C", str(self.repo), "add", "-A"], check=True, capture_output=True, env=env
        )
        tree = subprocess.run(
            ["git", *GIT_ENV_ARGS, "-C", str(self.repo), "write-tree"], check=True, capture_output=True, env=env
        )
        return {"tree": tree.stdout.decode().strip()}

    def begin(self, name: str) -> str:
        tree = self._scan()["tree"]
        commit = git(self.repo, "commit-tree", tree, "-p", "HEAD", "-m", "checkpoint").strip()
        git(self.repo, "update-ref", f"refs/voicecoder/checkpoints/{name}", commit)
        return commit

    def turn_paths(self, checkpoint: str) -> tuple[str, list[tuple[str, str]]]:
        tree = self._scan()["tree"]
        out = git(self.repo, "diff-tree", "-r", "--no-renames", "--name-status", checkpoint, tree)
        changes = [(line[0], line.split("\t", 1)[1]) for line in out.splitlines() if line]
        return tree, changes

    def approve(self, checkpoint: str) -> None:
        tree, changes = self.turn_paths(checkpoint)
        git(self.repo, "diff", checkpoint, tree)  # the diff the user is shown
        paths = [path for _, path in changes]
        git(self.repo, "add", "-A", "--", *paths)
        git(self.repo, "commit", "-q", "-m", "Apply changes from Claude", "--", *paths)

    def reject(self, checkpoint: str) -> None:
        _, changes = self.turn_paths(checkpoint)
        restore = [path for status, path in changes if status != "A"]
        if restore:
            git(self.repo, "restore", f"--source={checkpoint}", "--worktree", "--", *restore)
        for status, path in changes:
            if status == "A":
                (self.repo / path).unlink()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def run(reps: int, dirs: int, files_per_dir: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="vc-bench-ws-"))
    try:
        seed = tmp / "seed"
        print(f"building {dirs * files_per_dir:,} files in {dirs} dirs ...", flush=True)
        build_repo(seed, dirs, files_per_dir)
        ours_root, git_root, eq_root = tmp / "dulwich", tmp / "git", tmp / "git-equivalent"
        for root in (ours_root, git_root, eq_root):
            shutil.copytree(seed, root, symlinks=True)
            # A copy has fresh mtimes/inodes: refresh git's stat cache, as a clone would have it.
            git(root, "update-index", "-q", "--really-refresh")
        equivalent = EquivalentGit(eq_root)
        git(eq_root, "status", "--porcelain")
        tracked = git(seed, "ls-files").split()
        tracked = [p for p in tracked if p != ".gitignore"]
        rng = random.Random(20261124)  # a reproducible workload
        workspace = DulwichWorkspace(ours_root, author=AUTHOR, init_if_missing=False)
        await workspace.status()  # warm-up, like `git status` below
        git(git_root, "status", "--porcelain")

        rows: dict[str, tuple[list[float], list[float]]] = {"approve": ([], []), "reject": ([], [])}
        equivalent_rows: dict[str, list[float]] = {"approve": [], "reject": []}
        phases: dict[str, list[float]] = {"begin_turn": [], "changes_since": [], "commit_turn": [], "restore_turn": []}
        for rep in range(reps):
            for kind in ("approve", "reject"):
                mutation = Mutation(rng, tracked, rep)
                ours, theirs = rows[kind]

                started = time.perf_counter()
                baseline = await workspace.begin_turn(TurnId(f"{kind}{rep}"))
                snapshot_s = time.perf_counter() - started
                phases["begin_turn"].append(snapshot_s)
                mutation.apply(ours_root)
                started = time.perf_counter()
                if kind == "approve":
                    diff = await workspace.changes_since(baseline)
                    phases["changes_since"].append(time.perf_counter() - started)
                    commit_started = time.perf_counter()
                    await workspace.commit_turn(
                        baseline, fingerprint=diff.fingerprint, message=CommitMessage("Apply changes from Claude")
                    )
                    phases["commit_turn"].append(time.perf_counter() - commit_started)
                else:
                    await workspace.restore_turn(baseline)
                    phases["restore_turn"].append(time.perf_counter() - started)
                ours.append(snapshot_s + time.perf_counter() - started)

                git_snapshot_s = timed(lambda: git(git_root, "stash", "create"))
                mutation.apply(git_root)
                if kind == "approve":

                    def approve() -> None:
                        git(git_root, "add", "-A")
                        git(git_root, "diff", "--cached")
                        git(git_root, "commit", "-q", "-m", "Apply changes from Claude")

                    theirs.append(git_snapshot_s + timed(approve))
                    ours_tree = git(ours_root, "rev-parse", "HEAD^{tree}")
                    git_tree = git(git_root, "rev-parse", "HEAD^{tree}")
                    if ours_tree != git_tree:
                        print(f"MISMATCH: trees differ after approve {rep}: {ours_tree} != {git_tree}")
                        return 1
                    tracked = [p for p in tracked if p not in mutation.deleted] + mutation.added
                else:

                    def reject(mutation: Mutation = mutation) -> None:
                        git(git_root, "checkout", "-q", "--", *mutation.modified, *mutation.deleted)
                        git(git_root, "clean", "-q", "-fd")

                    theirs.append(git_snapshot_s + timed(reject))

                started = time.perf_counter()
                checkpoint = equivalent.begin(f"{kind}{rep}")
                snapshot_s = time.perf_counter() - started
                mutation.apply(eq_root)
                action = equivalent.approve if kind == "approve" else equivalent.reject
                equivalent_rows[kind].append(snapshot_s + timed(functools.partial(action, checkpoint)))
                if kind == "approve" and git(eq_root, "rev-parse", "HEAD^{tree}") != git(
                    ours_root, "rev-parse", "HEAD^{tree}"
                ):
                    print(f"MISMATCH: equivalent git tree differs after approve {rep}")
                    return 1
                for root in (ours_root, git_root, eq_root):
                    if porcelain := git(root, "status", "--porcelain"):
                        print(f"MISMATCH: {root.name} not clean after {kind} {rep}:\n{porcelain}")
                        return 1
        git(ours_root, "fsck", "--strict", "--no-progress")

        print(f"\n{len(tracked):,} tracked files, {reps} repetitions, medians in seconds\n")
        header = f"{'operation':<44} {'dulwich':>9} {'git equiv.':>10} {'ratio':>7} {'git light':>10} {'ratio':>7}"
        print(header)
        ok = True
        for kind, (ours, theirs) in rows.items():
            label = (
                "approve: begin + changes_since + commit_turn" if kind == "approve" else "reject:  begin + restore_turn"
            )
            mine, light, equiv = (statistics.median(v) for v in (ours, theirs, equivalent_rows[kind]))
            ok = ok and mine / equiv <= 2.0
            print(f"{label:<44} {mine:>9.3f} {equiv:>10.3f} {mine / equiv:>6.2f}x {light:>10.3f} {mine / light:>6.2f}x")
        print(
            "\ngit equiv. = the same work with the git CLI (untracked files in the checkpoint, paths discovered);"
            "\ngit light  = git stash create + add/commit, or checkout/clean told the paths (less work than ours)."
        )
        print(f"target: each <= 2x the equivalent git CLI: {'met' if ok else 'NOT met'}")
        print("\ndulwich phases (medians): " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in phases.items()))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--dirs", type=int, default=200)
    parser.add_argument("--files-per-dir", type=int, default=50)
    args = parser.parse_args(argv)
    return anyio.run(run, args.reps, args.dirs, args.files_per_dir)


if __name__ == "__main__":
    raise SystemExit(main())
