"""
A project's workspace for one user: a clone of the project's path or remote, made on first use.

The clone is made in a temporary directory beside its final place and renamed when it is complete, so a failed
clone (an unreachable remote, a path that is not a repository) leaves nothing half-made behind and the next try
starts clean. A local path is cloned without any network; only what is committed in it is cloned (its own
uncommitted edits stay where they are).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path

import anyio.to_thread
from dulwich import porcelain
from dulwich.errors import NotGitRepository
from dulwich.repo import Repo

from voicecoder.domain.errors import WorkspaceError

__all__ = ["ProvisionError", "clone_workspace", "is_work_tree", "seed_repository"]

logger = logging.getLogger(__name__)


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def shown(source: str) -> str:
    """*source* as it may be shown or logged: a URL's ``user:token@`` is left out (it is a credential)."""
    return _USERINFO.sub("", source)


class ProvisionError(WorkspaceError):
    """A project's workspace could not be created; the message names the project's source and the fix."""


def _clone(source: str, target: Path, branch: str | None) -> Path:
    if (target / ".git").exists():
        return target
    local = Path(source).expanduser()
    if "://" not in source and "@" not in source.partition("/")[0] and not (local / ".git").exists():
        raise ProvisionError(
            f"{source} is not a git repository: make it one (git init, then commit) or fix the project's path."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with (staging / ".clone.log").open("wb") as errstream:
            repo = porcelain.clone(
                str(local) if (local / ".git").exists() else source,
                str(staging / "tree"),
                checkout=True,
                branch=branch.encode() if branch else None,
                errstream=errstream,
            )
            repo.close()
        (staging / "tree").rename(target)
    except Exception as exc:
        detail = shown(str(exc).replace(source, shown(source)))
        raise ProvisionError(
            f"cannot clone {shown(source)} ({type(exc).__name__}: {detail}). Check that the server can reach it "
            "(network, SSH key, credentials) and that the branch exists; nothing was created, try again."
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("cloned %s into %s", shown(source), target)
    return target


async def clone_workspace(source: str, target: Path, *, branch: str | None = None) -> Path:
    """
    *target*, cloned from *source* (a local path or a remote URL) unless it is a git work tree already.

    Raises:
        ProvisionError: The clone failed (unreachable remote, not a repository, unknown branch); nothing is left
            at *target*.
    """
    return await anyio.to_thread.run_sync(_clone, source, target, branch)


def is_work_tree(path: Path) -> bool:
    """Whether *path* is a git work tree already (a shared project's own tree). Raises nothing."""
    try:
        Repo(str(path)).close()
    except (NotGitRepository, OSError):
        return False
    return True


def seed_repository(path: Path, files: dict[str, str], message: str) -> Path:
    """
    A git repository at *path* whose first commit holds *files*, unless one is there already.

    The sandbox's demo projects are made so. Raises OSError when *path* cannot be written.
    """
    if is_work_tree(path):
        return path
    path.mkdir(parents=True, exist_ok=True)
    repo = porcelain.init(str(path))
    try:
        for name, text in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_text(text, encoding="utf-8")
        porcelain.add(repo, [str(path / name) for name in files])
        identity = b"voicecoder sandbox <sandbox@localhost>"
        porcelain.commit(repo, message.encode(), author=identity, committer=identity)
    finally:
        repo.close()
    return path
