"""The sandbox's demo model: natural requests become tool calls, results become sentences."""

from __future__ import annotations

from typing import Any

import pytest

from voicecoder.simulators.demo_model import DEMO_PROMPTS, LONG_JOB_COMMAND, TESTS_COMMAND, ToolCall, demo_reply


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": f"<system-reminder>x</system-reminder>{text}"}]}


def called(step: Any, tool_id: str) -> dict[str, Any]:
    assert isinstance(step, ToolCall)
    return {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": tool_id, "name": step.name, "input": step.input}],
    }


def result(tool_id: str, output: str, *, is_error: bool = False) -> dict[str, Any]:
    block = {"type": "tool_result", "tool_use_id": tool_id, "content": output, "is_error": is_error}
    return {"role": "user", "content": [block]}


def play(prompt: str, *outputs: tuple[str, bool]) -> tuple[list[ToolCall], str]:
    """Run the model through *prompt*, feeding *outputs* as the results of its tool calls in turn."""
    messages: list[dict[str, Any]] = [user("an earlier prompt"), {"role": "assistant", "content": "ok"}, user(prompt)]
    calls: list[ToolCall] = []
    for index in range(len(outputs) + 1):
        step = demo_reply(messages)
        if isinstance(step, str):
            return calls, step
        calls.append(step)
        output, is_error = outputs[index] if index < len(outputs) else ("", False)
        messages += [called(step, f"t{index}"), result(f"t{index}", output, is_error=is_error)]
    raise AssertionError("the model kept calling tools")


class TestDemoModel:
    @pytest.mark.parametrize("prompt", DEMO_PROMPTS)
    def test_every_listed_prompt_is_understood(self, prompt: str) -> None:
        """Each prompt the sandbox page offers leads to a tool call, never to the help text."""
        step = demo_reply([user(prompt)])

        assert isinstance(step, ToolCall), step

    def test_run_the_tests_shows_the_output(self) -> None:
        """'run the tests' asks to run the unittest command; its output reaches the answer."""
        calls, answer = play("run the tests and fix any failures", ("Ran 3 tests in 0.01s\n\nOK", False))

        assert [(c.name, c.input["command"]) for c in calls] == [("Bash", TESTS_COMMAND)]
        assert "Ran 3 tests" in answer

    def test_a_denial_is_quoted(self) -> None:
        """When the command is denied, the answer says so with the reason it got."""
        _, answer = play("run the tests", ("The user denied this from their phone and said: “not now”", True))

        assert answer.startswith(f"I did not run `{TESTS_COMMAND}`")
        assert "not now" in answer

    def test_a_failing_command_is_reported(self) -> None:
        """A command that ran and failed is reported as a failure with its output."""
        _, answer = play("run the tests", ("Exit code 1\nFAILED (failures=1)", True))

        assert "it failed" in answer
        assert "FAILED (failures=1)" in answer

    def test_rename_reads_then_edits(self) -> None:
        """A rename reads the file, then edits every occurrence."""
        calls, answer = play(
            "rename the variable count to total in main dot py", ("     1\tcount = 1\n", False), ("", False)
        )

        assert [c.name for c in calls] == ["Read", "Edit"]
        assert calls[1].input == {
            "file_path": "main.py",
            "old_string": "count",
            "new_string": "total",
            "replace_all": True,
        }
        assert answer == "I renamed every “count” to “total” in main.py."

    def test_add_function_to_a_new_file(self) -> None:
        """Adding a function to a file that does not exist writes a new file with it."""
        calls, answer = play(
            "add a function that returns the sum of two numbers", ("File does not exist.", True), ("ok", False)
        )

        assert [c.name for c in calls] == ["Read", "Write"]
        assert calls[1].input["content"].startswith("def add_numbers(a, b):")
        assert answer == "I added the function add_numbers() to utils.py."

    def test_add_function_keeps_the_file(self) -> None:
        """Adding a function to an existing file keeps what was there."""
        calls, _ = play(
            "add a function called greet to app.py", ("     1\timport os\n     2\t\n", False), ("ok", False)
        )

        assert calls[1].input["content"].startswith("import os\n")
        assert "def greet():" in calls[1].input["content"]

    @pytest.mark.parametrize(
        ("prompt", "command"),
        [
            ("delete notes.txt", "rm notes.txt"),
            ("delete the build directory and start again", "rm -rf build"),
            ("run a long job", LONG_JOB_COMMAND),
            ("install the requests package", "pip install requests"),
            ("push it", "git push"),
        ],
    )
    def test_commands(self, prompt: str, command: str) -> None:
        """Deleting, a long job, installs and pushes are Bash commands (each asks on the phone)."""
        step = demo_reply([user(prompt)])

        assert isinstance(step, ToolCall)
        assert step.input["command"] == command

    def test_after_an_interrupt_the_new_prompt_counts(self) -> None:
        """The CLI sends a prompt together with an interrupted tool's result; the prompt is still read."""
        messages = [
            user("run a long job"),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "rejected", "is_error": True},
                    {"type": "text", "text": "[Request interrupted by user for tool use]"},
                    {"type": "text", "text": "add a README"},
                ],
            },
        ]

        step = demo_reply(messages)

        assert isinstance(step, ToolCall)
        assert step.input["file_path"] == "README.md"

    def test_commit_is_explained(self) -> None:
        """A commit request is answered with how Approve commits."""
        assert "✅ Approve" in str(demo_reply([user("commit the changes with the message initial setup")]))
