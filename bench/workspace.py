"""
Workspace benchmark: `DulwichWorkspace` turn transactions against the equivalent git CLI commands.

Builds a 10,000-file repository (200 directories x 50 files, 9 lines each, plus a .gitignore) in a temp
directory, packed like a clone, and copies it: one copy for the adapter, one for git. Every repetition
applies the same random mutation to each copy and times a whole turn as a chat runs it: the baseline, the
agent's edits (not timed), the turn-end snapshot, then Approve or Reject.

Three rows, each timed against the **equivalent** git CLI sequence (the target ratio, <= 2x): the same
transaction done with git, including its two checkpoints (temporary index seeded from the real one,
``add -A``, ``write-tree``, ``commit-tree``, ``update-ref``) and the turn's paths found with ``diff-tree``.

* **approve**, 30 clean files (append a line to 20, add 5, delete 5, one ignored ``__pycache__`` file):
  ours ``begin_turn`` + ``end_turn`` (which also gives the diff) + ``commit_turn``; git the checkpoints, ``diff``,
  ``add`` and ``commit`` of the paths.
* **reject**, same mutation: ours ``begin_turn`` + ``end_turn`` + ``restore_turn``; git the checkpoints,
  ``restore --source=<baseline> --worktree`` and removing added files.
* **approve / reject in 30 dirty files**: before the turn the developer adds a line at the top of 30 files
  (left unstaged); the agent appends one at the end of the same files. Approve must commit only the agent's
  lines: git builds the agent's patch between the checkpoints, ``apply --cached`` it to HEAD in a temporary
  index, ``write-tree`` + ``commit-tree`` + ``update-ref``, and ``apply --cached`` it to the real index.
  Reject must remove only the agent's lines: ``git apply -R`` of the same patch.

The first two rows are also shown against the *light* git commands a peer project would run (``git stash
create`` + ``add -A``/``diff --cached``/``commit``, or ``checkout``/``clean`` told the paths), which do less
(no untracked files in the snapshot, no turn end, and they would commit or delete the developer's own work).

git runs through ``subprocess.run`` (fork/exec included, as an adapter would pay it). After every turn the
copies must agree: the same HEAD tree, and the same ``git status`` and ``git diff`` (so the developer's lines
are exactly where they were).

Run: ``.venv/bin/python bench/workspace.py [--reps 7] [--files-per-dir 50] [--dirs 200]``.
"""

from __future__ import annotations

import argparse
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
MESSAGE = CommitMessage("Apply changes from Claude")
KINDS = ("approve", "reject", "approve, 30 dirty files", "reject, 30 dirty files")


def git(repo: Path, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", *GIT_ENV_ARGS, "-C", str(repo), *args], capture_output=True, check=True, env=env, input=stdin
    )
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
    """One turn's edits (and, for a dirty turn, the developer's edits before it), chosen once for every copy."""

    def __init__(self, rng: random.Random, tracked: list[str], rep: int, *, dirty: bool) -> None:
        self.rep = rep
        self.dirty = dirty
        if dirty:
            self.modified = rng.sample(tracked, 30)
            self.deleted: list[str] = []
            self.added: list[str] = []
        else:
            picked = rng.sample(tracked, 25)
            self.modified, self.deleted = picked[:20], picked[20:]
            self.added = [f"{rng.choice(tracked).rpartition('/')[0]}/new_{rep}_{i}.py" for i in range(5)]

    def developer(self, root: Path) -> None:
        """The developer's own unstaged line at the top of each file the agent will edit (dirty turns only)."""
        for path in self.modified if self.dirty else ():
            target = root / path
            target.write_text(f"# developer note {self.rep}\n" + target.read_text())

    def agent(self, root: Path) -> None:
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
    """The git CLI doing the same transaction as `DulwichWorkspace`: two checkpoints, paths discovered."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.index = repo / ".git" / "vc-bench-index"

    def _tree(self) -> str:
        # Seeded from the real index so git reuses its stat cache, as the adapter does.
        shutil.copyfile(self.repo / ".git" / "index", self.index)
        env = {"GIT_INDEX_FILE": str(self.index)}
        git(self.repo, "add", "-A", env=env)
        return git(self.repo, "write-tree", env=env).strip()

    def checkpoint(self, ref: str) -> str:
        commit = git(self.repo, "commit-tree", self._tree(), "-p", "HEAD", "-m", "checkpoint").strip()
        git(self.repo, "update-ref", ref, commit)
        return commit

    def changes(self, start: str, end: str) -> list[tuple[str, str]]:
        out = git(self.repo, "diff-tree", "-r", "--no-renames", "--name-status", start, end)
        return [(line[0], line.split("\t", 1)[1]) for line in out.splitlines() if line]

    def approve(self, start: str, end: str) -> None:
        paths = [path for _, path in self.changes(start, end)]
        git(self.repo, "diff", start, end)  # the diff the user is shown
        git(self.repo, "add", "-A", "--", *paths)
        git(self.repo, "commit", "-q", "-m", MESSAGE.subject, "--", *paths)

    def reject(self, start: str, end: str) -> None:
        changes = self.changes(start, end)
        restore = [path for status, path in changes if status != "A"]
        if restore:
            git(self.repo, "restore", f"--source={start}", "--worktree", "--", *restore)
        for status, path in changes:
            if status == "A":
                (self.repo / path).unlink()

    def agent_patch(self, start: str, end: str) -> bytes:
        paths = [path for _, path in self.changes(start, end)]
        return git(self.repo, "diff", "--binary", start, end, "--", *paths).encode()

    def approve_dirty(self, start: str, end: str) -> None:
        """Commit HEAD + the agent's hunks (not the developer's lines), and put them on the index too."""
        patch = self.agent_patch(start, end)
        env = {"GIT_INDEX_FILE": str(self.index)}
        git(self.repo, "read-tree", "HEAD", env=env)
        git(self.repo, "apply", "--cached", "-", env=env, stdin=patch)
        tree = git(self.repo, "write-tree", env=env).strip()
        commit = git(self.repo, "commit-tree", tree, "-p", "HEAD", "-m", MESSAGE.subject).strip()
        git(self.repo, "update-ref", "HEAD", commit)
        git(self.repo, "apply", "--cached", "-", stdin=patch)

    def reject_dirty(self, start: str, end: str) -> None:
        """Take only the agent's hunks out of the working tree."""
        git(self.repo, "apply", "-R", "-", stdin=self.agent_patch(start, end))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def state(root: Path) -> tuple[str, str, str]:
    """What the developer sees: HEAD's tree, `git status`, `git diff` (read without refreshing the index)."""
    quiet = "--no-optional-locks"
    return (
        git(root, "rev-parse", "HEAD^{tree}"),
        git(root, quiet, "status", "--porcelain"),
        git(root, quiet, "diff"),
    )


async def run(reps: int, dirs: int, files_per_dir: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="vc-bench-ws-"))
    try:
        seed = tmp / "seed"
        print(f"building {dirs * files_per_dir:,} files in {dirs} dirs ...", flush=True)
        build_repo(seed, dirs, files_per_dir)
        ours_root, light_root, eq_root = tmp / "dulwich", tmp / "git-light", tmp / "git-equivalent"
        for root in (ours_root, light_root, eq_root):
            shutil.copytree(seed, root, symlinks=True)
            # A copy has fresh mtimes/inodes: refresh git's stat cache, as a clone would have it.
            git(root, "update-index", "-q", "--really-refresh")
        equivalent = EquivalentGit(eq_root)
        git(eq_root, "status", "--porcelain")
        tracked = [p for p in git(seed, "ls-files").split() if p != ".gitignore"]
        # The developer's dirty files come from their own directories, so the clean turns stay clean.
        reserved = tuple(f"pkg{d:03d}/" for d in range(dirs - max(dirs // 10, 1), dirs))
        dirty_pool = [p for p in tracked if p.startswith(reserved)]
        tracked = [p for p in tracked if p not in dirty_pool]
        rng = random.Random(20261124)  # a reproducible workload
        workspace = DulwichWorkspace(ours_root, author=AUTHOR, init_if_missing=False)
        await workspace.status()  # warm-up, like `git status` below
        git(light_root, "status", "--porcelain")

        ours: dict[str, list[float]] = {kind: [] for kind in KINDS}
        light: dict[str, list[float]] = {kind: [] for kind in KINDS[:2]}
        equiv: dict[str, list[float]] = {kind: [] for kind in KINDS}
        phases: dict[str, list[float]] = {p: [] for p in ("begin_turn", "end_turn", "commit_turn", "restore_turn")}
        for rep in range(reps):
            for kind in KINDS:
                dirty = "dirty" in kind
                approve = kind.startswith("approve")
                mutation = Mutation(rng, dirty_pool if dirty else tracked, rep, dirty=dirty)
                name = f"{rep}-{KINDS.index(kind)}"

                mutation.developer(ours_root)
                started = time.perf_counter()
                baseline = await workspace.begin_turn(TurnId(f"t{name}"))
                begin_s = time.perf_counter() - started
                mutation.agent(ours_root)
                started = time.perf_counter()
                ended = await workspace.end_turn(baseline)
                baseline = ended.baseline
                end_s = time.perf_counter() - started
                phases["begin_turn"].append(begin_s)
                phases["end_turn"].append(end_s)
                started = time.perf_counter()
                if approve:
                    # The bot shows the diff end_turn returns, then commits on the button press.
                    await workspace.commit_turn(baseline, fingerprint=ended.diff.fingerprint, message=MESSAGE)
                    phases["commit_turn"].append(time.perf_counter() - started)
                else:
                    await workspace.restore_turn(baseline)
                    phases["restore_turn"].append(time.perf_counter() - started)
                ours[kind].append(begin_s + end_s + time.perf_counter() - started)
                await workspace.release_turn(baseline)

                mutation.developer(eq_root)
                started = time.perf_counter()
                start = equivalent.checkpoint(f"refs/voicecoder/checkpoints/t{name}")
                begin_s = time.perf_counter() - started
                mutation.agent(eq_root)
                started = time.perf_counter()
                end = equivalent.checkpoint(f"refs/voicecoder/turn-ends/t{name}")
                if dirty:
                    (equivalent.approve_dirty if approve else equivalent.reject_dirty)(start, end)
                else:
                    (equivalent.approve if approve else equivalent.reject)(start, end)
                equiv[kind].append(begin_s + time.perf_counter() - started)

                if not dirty:
                    git_snapshot_s = timed(lambda: git(light_root, "stash", "create"))
                    mutation.agent(light_root)
                    if approve:

                        def light_approve() -> None:
                            git(light_root, "add", "-A")
                            git(light_root, "diff", "--cached")
                            git(light_root, "commit", "-q", "-m", MESSAGE.subject)

                        light[kind].append(git_snapshot_s + timed(light_approve))
                    else:

                        def light_reject(mutation: Mutation = mutation) -> None:
                            git(light_root, "checkout", "-q", "--", *mutation.modified, *mutation.deleted)
                            git(light_root, "clean", "-q", "-fd")

                        light[kind].append(git_snapshot_s + timed(light_reject))

                if state(ours_root) != state(eq_root):
                    print(f"MISMATCH after {kind} {rep}: the adapter and the equivalent git disagree")
                    return 1
                if approve and not dirty:
                    tracked = [p for p in tracked if p not in mutation.deleted] + mutation.added
        git(ours_root, "fsck", "--strict", "--no-progress")
        git(ours_root, "write-tree")

        print(f"\n{len(tracked) + len(dirty_pool):,} tracked files, {reps} repetitions, medians in seconds\n")
        header = (
            f"{'turn (30 files)':<30} {'dulwich':>9} {'git equiv.':>10} {'ratio':>7} {'git light':>10} {'ratio':>7}"
        )
        print(header)
        ok = True
        for kind in KINDS:
            mine, same = statistics.median(ours[kind]), statistics.median(equiv[kind])
            ok = ok and mine / same <= 2.0
            row = f"{kind:<30} {mine:>9.3f} {same:>10.3f} {mine / same:>6.2f}x"
            if kind in light:
                lite = statistics.median(light[kind])
                row += f" {lite:>10.3f} {mine / lite:>6.2f}x"
            print(row)
        print(
            "\ngit equiv. = the same transaction with the git CLI (checkpoints at the start and end of the turn with"
            "\n             untracked files, paths discovered; dirty rows: the agent's patch applied to HEAD / -R);"
            "\ngit light  = git stash create + add/commit, or checkout/clean told the paths (less than ours)."
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
    raise SystemExit(main(sys.argv[1:]))
