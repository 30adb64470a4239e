"""
The three-way turn model on plain flats: ownership, the Approve and Reject plans, extensions.

Its I/O-free decisions are checked here case by case; `test_workspace.py`, `test_turn_isolation.py` and the
state machine check the same decisions through a real repository with git as the oracle.
"""

from __future__ import annotations

import attrs
import pytest

from voicecoder.adapters.git.trees import Entry, Flat
from voicecoder.adapters.git.turns import TurnTrees, TurnView, blocked_by, rebase
from voicecoder.domain.errors import ApprovalChoiceRequiredError
from voicecoder.domain.model import ApprovalChoice, Ownership
from voicecoder.testing.fake_workspace import MemoryBlobs

REGULAR = 0o100644


Blobs = MemoryBlobs


@pytest.fixture(name="blobs")
def _blobs() -> Blobs:
    return Blobs()


def flat(blobs: Blobs, files: dict[str, bytes]) -> Flat:
    return {path.encode(): (REGULAR, blobs.store(data)) for path, data in files.items()}


def view(
    blobs: Blobs,
    *,
    head: dict[str, bytes],
    base: dict[str, bytes],
    end: dict[str, bytes],
    now: dict[str, bytes] | None = None,
    staged: dict[str, bytes] | None = None,
) -> TurnView:
    index = flat(blobs, staged if staged is not None else head)
    return TurnView(
        TurnTrees(
            base=flat(blobs, base),
            base_index=index,
            end=flat(blobs, end),
            end_index=index,
            current=flat(blobs, now if now is not None else end),
            index=index,
            head=flat(blobs, head),
        ),
        blobs,
    )


def content(blobs: Blobs, entry: Entry | None) -> bytes | None:
    return None if entry is None else blobs.read(entry[1])


class TestOwnership:
    def test_owners_follow_who_changed_what(self, blobs: Blobs) -> None:
        """Only the agent: AGENT; the developer's lines apart: BOTH; touching the same line: OVERLAP."""
        turn = view(
            blobs,
            head={"a": b"1\n2\n3\n", "b": b"1\n2\n3\n", "c": b"x\n"},
            base={"a": b"1\n2\n3\n", "b": b"mine\n1\n2\n3\n", "c": b"mine\n"},
            end={"a": b"1\n2\n3\nagent\n", "b": b"mine\n1\n2\n3\nagent\n", "c": b"agent\n"},
        )

        assert {p: i.owner for p, i in turn.paths.items()} == {
            b"a": Ownership.AGENT,
            b"b": Ownership.BOTH,
            b"c": Ownership.OVERLAP,
        }
        assert turn.overlapping == (b"c",)

    def test_a_file_the_agent_created_is_its_own(self, blobs: Blobs) -> None:
        """Where the tree had no file, every line is the agent's, even if HEAD had one (the developer removed it)."""
        turn = view(blobs, head={"f": b"old\n"}, base={}, end={"f": b"agent\n"})

        assert turn.paths[b"f"].owner is Ownership.AGENT
        assert content(blobs, turn.approve(None).commit[b"f"]) == b"agent\n"

    def test_deleting_a_staged_file_overlaps(self, blobs: Blobs) -> None:
        """The agent deleting a file whose content the developer staged would drop their staging: overlap."""
        turn = view(blobs, head={}, base={"f": b"mine\n"}, end={}, staged={"f": b"mine\n"})

        assert turn.overlapping == (b"f",)


class TestApprovePlan:
    def test_commits_head_plus_the_agents_hunks_and_keeps_the_staged_lines_staged(self, blobs: Blobs) -> None:
        """The commit gets the agent's line only; the index gets it on top of what the developer staged."""
        turn = view(
            blobs,
            head={"f": b"1\n2\n3\n4\n"},
            base={"f": b"staged\n1\n2\n3\n4\nunstaged\n"},
            staged={"f": b"staged\n1\n2\n3\n4\n"},
            end={"f": b"staged\n1\n2\nagent\n3\n4\nunstaged\n"},
        )

        plan = turn.approve(None)

        assert content(blobs, plan.commit[b"f"]) == b"1\n2\nagent\n3\n4\n"
        assert content(blobs, plan.index[b"f"]) == b"staged\n1\n2\nagent\n3\n4\n"

    def test_overlaps_need_a_choice_and_follow_it(self, blobs: Blobs) -> None:
        """No choice: refused. Leave out: the file is not committed. With my edits: committed as the agent left it."""
        turn = view(
            blobs, head={"c": b"x\n", "n": b""}, base={"c": b"mine\n", "n": b""}, end={"c": b"agent\n", "n": b"n\n"}
        )

        with pytest.raises(ApprovalChoiceRequiredError):
            turn.approve(None)
        left = turn.approve(ApprovalChoice.LEAVE_OUT)
        mine = turn.approve(ApprovalChoice.WITH_MY_EDITS)

        assert (set(left.commit), left.left_out) == ({b"n"}, (b"c",))
        assert content(blobs, mine.commit[b"c"]) == b"agent\n"

    def test_the_diff_shows_what_is_committed(self, blobs: Blobs) -> None:
        """Claude's part of the diff is HEAD → commit; the developer's own edits come apart in `yours`."""
        turn = view(
            blobs,
            head={"f": b"1\n2\n3\n4\n"},
            base={"f": b"mine\n1\n2\n3\n4\n"},
            end={"f": b"mine\n1\n2\n3\n4\nagent\n"},
        )

        diff = turn.diff()

        assert "+agent" in diff.unified
        assert "mine" not in diff.unified
        assert "+mine" in diff.yours
        assert [(f.path, f.owner, f.additions) for f in diff.files] == [("f", Ownership.BOTH, 1)]

    def test_late_edits_change_the_fingerprint_not_the_commit(self, blobs: Blobs) -> None:
        """An edit after the turn end is listed as late, moves the fingerprint, and is not committed."""
        quiet = view(blobs, head={"f": b"1\n"}, base={"f": b"1\n"}, end={"f": b"1\n2\n"})
        late = view(
            blobs, head={"f": b"1\n"}, base={"f": b"1\n"}, end={"f": b"1\n2\n"}, now={"f": b"1\n2\n", "g": b"late\n"}
        )

        assert late.fingerprint != quiet.fingerprint
        assert late.approve(None).commit == quiet.approve(None).commit
        assert [f.path for f in late.diff().late] == ["g"]


class TestRejectPlan:
    def test_takes_out_only_the_agents_hunks(self, blobs: Blobs) -> None:
        """Untouched since the turn end: back to the baseline. Edited since: only the agent's lines go."""
        turn = view(
            blobs,
            head={},
            base={"a": b"1\n2\n3\n", "b": b"1\n2\n3\n"},
            end={"a": b"1\n2\n3\nagent\n", "b": b"1\n2\n3\nagent\n", "new": b"agent\n"},
            now={"a": b"1\n2\n3\nagent\n", "b": b"mine\n1\n2\n3\nagent\n", "new": b"agent\n", "later": b"mine\n"},
        )

        plan = turn.reject()

        assert content(blobs, plan.worktree[b"a"]) == b"1\n2\n3\n"
        assert content(blobs, plan.worktree[b"b"]) == b"mine\n1\n2\n3\n"
        assert plan.worktree[b"new"] is None
        assert b"later" not in plan.worktree
        assert (plan.restored, plan.merged, plan.kept) == ((b"a", b"b", b"new"), (b"b",), ())

    def test_keeps_overlapping_paths_and_what_they_block(self, blobs: Blobs) -> None:
        """A path edited over the agent's lines is kept; so is a file that cannot come back below it."""
        turn = view(
            blobs,
            head={},
            base={"x": b"file\n"},
            end={"x/y": b"agent\n"},
            now={"x/y": b"agent, then mine\n"},
        )

        plan = turn.reject()

        assert plan.worktree == {}
        assert plan.kept == (b"x", b"x/y")

    def test_blocked_by_names_file_and_directory_clashes(self, blobs: Blobs) -> None:
        """A file where a kept directory stands, or below a kept file, is blocked."""
        current = flat(blobs, {"d/kept": b"k\n", "f": b"kept\n"})
        entry = current[b"f"]

        assert blocked_by({b"d": entry, b"f/x": entry, b"ok": entry}, current) == {b"d", b"f/x"}


class TestEntangled:
    def test_an_entangled_file_the_agent_deletes_comes_back_on_reject(self, blobs: Blobs) -> None:
        """Reject puts an entangled file back as it was at the later prompt, and reports it as kept."""
        trees = view(blobs, head={}, base={"b": b"agent, mine\n"}, end={}).trees
        turn = TurnView(attrs.evolve(trees, entangled=frozenset({b"b"})), blobs)

        plan = turn.reject()

        assert turn.overlapping == (b"b",)
        assert content(blobs, plan.worktree[b"b"]) == b"agent, mine\n"
        assert (plan.restored, plan.kept) == ((), (b"b",))


class TestRebase:
    def test_developer_edits_between_prompts_join_the_baseline(self, blobs: Blobs) -> None:
        """
        Edits to the agent's file apart from its lines are merged in; overlapping ones entangle the path.

        An entangled path keeps the file as it is (nothing of the developer's is lost) and stays overlapping.
        """
        previous = view(
            blobs,
            head={},
            base={"a": b"1\n2\n3\n", "b": b"x\n", "c": b"c\n"},
            end={"a": b"1\n2\n3\nagent\n", "b": b"agent\n", "c": b"c\n"},
        ).trees

        base, _, entangled = rebase(
            previous,
            blobs,
            start=flat(blobs, {"a": b"mine\n1\n2\n3\nagent\n", "b": b"agent, mine\n", "c": b"c, mine\n"}),
            start_index=previous.end_index,
        )

        assert content(blobs, base[b"a"]) == b"mine\n1\n2\n3\n"
        assert content(blobs, base[b"b"]) == b"agent, mine\n"  # inseparable: kept as it is, and entangled
        assert content(blobs, base[b"c"]) == b"c, mine\n"
        assert entangled == frozenset({b"b"})

    def test_the_developers_file_wins_a_clash_with_an_older_directory(self, blobs: Blobs) -> None:
        """A late file `x` where the baseline still had `x/y` (the agent deleted it) replaces that entry."""
        previous = view(blobs, head={}, base={"x/y": b"y\n"}, end={}).trees

        base, _, _ = rebase(previous, blobs, start=flat(blobs, {"x": b"mine\n"}), start_index={})

        assert set(base) == {b"x"}
