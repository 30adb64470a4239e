"""Where HEAD is and was during a turn: the branch it names, the commits made on it, and putting it back."""

from __future__ import annotations

from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo

from voicecoder.adapters.git.repository import HEAD, Checkpoint, GitRepository
from voicecoder.adapters.git.trees import display
from voicecoder.domain.errors import WorkspaceError
from voicecoder.domain.model import TurnId

__all__ = ["branch_name", "head_branch", "made_during", "move_back", "where"]


def move_back(
    git: GitRepository, repo: Repo, base: Checkpoint, head: ObjectID | None, moved: tuple[Ref | None], turn: TurnId
) -> None:
    """
    Put HEAD back where the turn began, with compare-and-swaps: no ref is moved that changed meanwhile.

    The agent's reset is undone on the branch it reset; after a switch, HEAD names the developer's branch again
    if that is still where the turn began, and the branch the agent switched to stays as it is.

    Raises:
        WorkspaceError: A ref moved meanwhile, or HEAD would have to be detached again (nothing changed then).
    """
    began = base.head
    assert began is not None  # `_moved` is never true without it
    if moved[0] == base.branch:  # a reset of the developer's branch, or a detached HEAD moved
        if head is None or not git.move_branch(repo, head, began, turn):
            raise WorkspaceError("HEAD moved while rejecting; nothing was changed. Try again.")
        return
    began_at = where(base.branch, began)
    if base.branch is None:
        raise WorkspaceError(
            f"Claude left the detached HEAD the turn began on ({began_at}); nothing was changed. Check it out "
            f"again yourself (git switch --detach {began.decode()[:12]}), then tap ❌ Reject."
        )
    if repo.refs.as_dict().get(base.branch) != began:
        raise WorkspaceError(
            f"Claude switched away from {branch_name(base.branch)}, and that branch is no longer at "
            f"{began.decode()[:7]}; nothing was changed. Put HEAD back on {began_at} yourself (git switch "
            f"{branch_name(base.branch)}, then git reset --soft {began.decode()[:12]}), then tap ❌ Reject."
        )
    repo.refs.set_symbolic_ref(HEAD, base.branch, message=b"voicecoder: reject turn " + turn.value.encode())


def branch_name(ref: bytes) -> str:
    return display(ref.removeprefix(b"refs/heads/"))


def made_during(repo: Repo, head: ObjectID | None, onto: ObjectID | None) -> tuple[str, ...]:
    """Short ids of the commits made during the turn (HEAD is past *onto*, the HEAD it began on), newest first."""
    if head is None or onto == head:
        return ()
    made = repo.get_walker(include=[head], exclude=[onto] if onto else None, max_entries=1000)
    return tuple(e.commit.id.decode()[:7] for e in made)


def head_branch(repo: Repo) -> Ref | None:
    """The branch HEAD names (None: detached)."""
    names, _ = repo.refs.follow(HEAD)
    return names[-1] if len(names) > 1 else None


def where(branch: Ref | None, head: bytes | None) -> str:
    """Where HEAD is, as the developer reads it: `main at 1a2b3c4`."""
    at = f"at {head.decode()[:7]}" if head is not None else "with no commits"
    return f"{branch_name(branch)} {at}" if branch is not None else f"a detached HEAD {at}"
