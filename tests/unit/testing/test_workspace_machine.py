"""
`voicecoder.testing.workspace_machine` on `FakeWorkspace`: the fake keeps the README's promises too.

The same machine runs on `DulwichWorkspace` with git as the oracle in
``tests/integration/test_workspace_state_machine.py``; here it is fast, so it gets more examples.
"""

from __future__ import annotations

import pytest

from voicecoder.domain.ports import Workspace
from voicecoder.testing.contracts.workspace_tree import WorkspaceTree
from voicecoder.testing.fakes import REGULAR, FakeWorkspace, FakeWorkspaceTree
from voicecoder.testing.profiles import budget
from voicecoder.testing.workspace_machine import Observed, WorkspaceMachine
from voicecoder.testing.workspace_machine_cases import CASES, Case, replay


class FakeMachine(WorkspaceMachine):
    def make(self) -> tuple[Workspace, WorkspaceTree]:
        seed = {"a.txt": (b"seed-0\n", REGULAR)}
        self.fake = FakeWorkspace(files=dict(seed), head=dict(seed), index=dict(seed))
        return self.fake, FakeWorkspaceTree(self.fake)

    def observe(self) -> Observed:
        return Observed(dict(self.fake.files), dict(self.fake.index), dict(self.fake.head))


FakeMachine.TestCase.settings = budget(100, steps=30)
TestFakeWorkspaceMachine = FakeMachine.TestCase


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_sequences_found_by_the_deep_hunt(case: Case) -> None:
    """Sequences that once broke a promise (see `voicecoder.testing.workspace_machine_cases`) hold now."""
    replay(FakeMachine, case)
