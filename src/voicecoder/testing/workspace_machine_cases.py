"""
Sequences the deep hunt of `WorkspaceMachine` found, kept as fixed cases so every run replays them.

Each is a function that plays its steps on a fresh machine; `replay` runs one and tears the machine down.
A third party's machine subclass can replay them too.
"""

from __future__ import annotations

from collections.abc import Callable

from voicecoder.domain.model import ApprovalChoice
from voicecoder.testing.workspace_machine import WorkspaceMachine

__all__ = ["CASES", "Case", "replay"]

Case = Callable[[WorkspaceMachine], None]


def staged_file_replaced_by_the_agents_directory(m: WorkspaceMachine) -> None:
    """The developer stages x, then deletes it; the agent stages everything and writes x/y.txt."""
    m.developer_edits([("x", "write", "text"), ("x", "stage", "text")])
    m.agent_turn([("a.txt", "write", "text")])
    m.developer_edits([("x", "delete", "text")])
    m.reject()
    m.agent_turn([("a.txt", "write", "text"), ("a.txt", "stage", "text"), ("x/y.txt", "write", "text")])
    m.approve(None)


def a_tangle_replaced_by_a_directory(m: WorkspaceMachine) -> None:
    """An extended change whose tangled file x becomes a directory and then a file again."""
    m.agent_turn([("ünï code.txt", "append", "latin-1"), ("b.py", "stage", "symlink"), ("x", "write", "symlink")])
    m.left_running_writes("x", "append", "text")
    m.agent_continues([])
    m.left_running_writes("x/y.txt", "write", "binary")
    m.agent_continues([("x", "stage", "text"), ("x/y.txt", "stage", "no-newline")])
    m.agent_continues([("x", "delete", "empty"), ("x/y.txt", "stage", "executable")])
    m.reject()


def committed_directory_becomes_a_late_file_then_the_agents(m: WorkspaceMachine) -> None:
    """x/y.txt committed; a late file x; the agent stages and rewrites x; approved with my edits."""
    m.agent_turn([("x/y.txt", "write", "text")])
    m.approve(None)
    m.agent_turn([])
    m.left_running_writes("x", "write", "text")
    m.agent_continues([("a.txt", "stage", "text")])
    m.agent_continues([("x", "write", "text")])
    m.approve(ApprovalChoice.WITH_MY_EDITS)
    m.agent_turn([])


def the_agent_deletes_a_tangled_file(m: WorkspaceMachine) -> None:
    """A late line in the agent's new file; the next prompt deletes the file: Reject brings the lines back."""
    m.agent_turn([("b.py", "write", "empty")])
    m.left_running_writes("b.py", "append", "executable")
    m.agent_continues([("b.py", "delete", "executable"), ("x/y.txt", "write", "latin-1")])
    m.left_running_writes("x", "write", "text")
    m.developer_edits([("x/y.txt", "chmod", "empty"), ("d/c.txt", "append", "binary")])
    m.left_running_writes("b.py", "write", "text")
    m.reject()


def the_developer_undoes_the_agents_file(m: WorkspaceMachine) -> None:
    """The developer deletes the file the agent created, then extends the change: nothing is left to commit."""
    m.agent_turn([("d/e/f.txt", "write", "text")])
    m.developer_edits([("d/e/f.txt", "delete", "text"), ("a.txt", "write", "text")])
    m.agent_continues([])
    m.left_running_writes("a.txt", "write", "text")
    m.approve(None)


def a_staged_directory_under_the_agents_file(m: WorkspaceMachine) -> None:
    """x/y.txt staged by the developer, replaced by their file x, which the agent stages and rewrites."""
    m.developer_edits([("x/y.txt", "write", "text"), ("x", "stage", "text")])
    m.developer_edits([("x", "write", "text")])
    m.agent_turn([("a.txt", "stage", "text"), ("x", "write", "text")])
    m.left_running_writes("a.txt", "write", "text")
    m.left_running_writes("x", "write", "text")
    m.reject()
    m.agent_turn([("a.txt", "stage", "text"), ("x", "write", "text")])
    m.approve(ApprovalChoice.WITH_MY_EDITS)


CASES: dict[str, Case] = {
    case.__name__: case
    for case in (
        staged_file_replaced_by_the_agents_directory,
        a_tangle_replaced_by_a_directory,
        committed_directory_becomes_a_late_file_then_the_agents,
        the_agent_deletes_a_tangled_file,
        the_developer_undoes_the_agents_file,
        a_staged_directory_under_the_agents_file,
    )
}


def replay(machine: type[WorkspaceMachine], case: Case) -> None:
    """Play *case* on a fresh *machine*; its checks raise on the first broken promise."""
    state = machine()
    try:
        case(state)
    finally:
        state.teardown()
