"""
The scripted "model" behind the fake Anthropic API's default answers: the sandbox's ``--demo-agent``.

It understands a handful of natural requests, typed or spoken (the voice fixtures say them), works
through them with the real CLI's tools, and answers in sentences:

* "create a file called notes.txt with hello" / "add a README" — a ``Write``;
* "rename count to total in main.py" / "replace X with Y in FILE" — ``Read`` then ``Edit``;
* "add a function that returns the sum of two numbers (to FILE)" — ``Read`` then ``Write`` (or a new file);
* "delete notes.txt" / "delete the build directory" — ``Bash: rm …`` (a question on the phone; a
  directory is ``rm -rf``, which the destructive-command gate flags);
* "run the tests" — ``Bash: python3 -m unittest discover -v`` (a question; the output reaches the answer);
* "run a long job" — a Bash loop that runs for minutes (to try ⏹ Cancel);
* "install requests" — ``Bash: pip install requests``; "push" — ``git push`` (flagged);
* "list the python files" / "is the workspace empty?" — ``Bash: find …``; "show the git log" — ``Bash``;
* "run command <anything>" — that command;
* "commit" — an explanation of Approve; anything else — what it can do.

It is stateless: each request is answered from the conversation the CLI sends (the user's latest
prompt, and the tool calls and results since), so it works with ``--resume`` and warm processes alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

__all__ = ["DEMO_PROMPTS", "Step", "demo_reply", "texts_of"]

#: Requests to try in the sandbox (the page shows them as chips; the README lists them).
DEMO_PROMPTS: tuple[str, ...] = (
    "add a README",
    "create a file called notes.txt with hello world",
    "add a function that returns the sum of two numbers",
    "rename add_numbers to add in utils.py",
    "run the tests",
    "delete notes.txt",
    "run a long job",
    "list the python files",
    "delete the build directory",
)

TESTS_COMMAND = "python3 -m unittest discover -v"
LONG_JOB_COMMAND = 'for i in $(seq 1 600); do echo "step $i of 600"; sleep 1; done'
_OUTPUT_TAIL_LINES = 15
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
_READ_LINE = re.compile(r"^\s*\d+\t(.*)$")
_INTERRUPTED = "[Request interrupted"


@attrs.frozen
class ToolCall:
    name: str
    input: Mapping[str, Any]
    text: str | None = None


Step = ToolCall | str
"""The model's next move: call a tool (with a sentence before it) or end the turn with a sentence."""


@attrs.frozen
class Done:
    """A tool call of this turn and what came back."""

    name: str
    input: Mapping[str, Any]
    output: str
    is_error: bool


# --- reading the conversation ----------------------------------------------------------------


def texts_of(content: Any) -> list[str]:
    """The texts of a message content (a string or blocks; tool results' texts and tool inputs as JSON)."""
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        return []
    out: list[str] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if isinstance(block.get("text"), str):
            out.append(block["text"])
        elif block.get("type") == "tool_result":
            out.extend(texts_of(block.get("content")))
        elif block.get("type") == "tool_use":
            out.append(json.dumps(block.get("input"), ensure_ascii=False))
    return out


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, Mapping)] if isinstance(content, list) else []


def _prompt_of(message: Mapping[str, Any]) -> str | None:
    """
    The user's words in a user message, or None for one that only carries tool results.

    After an interrupt the CLI sends the next prompt in the same message as the interrupted tool's result and
    its "[Request interrupted …]" note; the prompt is the last text that is neither.
    """
    if message.get("role") != "user":
        return None
    content = message.get("content")
    texts = [content] if isinstance(content, str) else [str(b["text"]) for b in _blocks(message) if "text" in b]
    cleaned = [t for t in (_REMINDER.sub("", t).strip() for t in texts) if t and not t.startswith(_INTERRUPTED)]
    return cleaned[-1] if cleaned else None


def conversation(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[Done]]:
    """The latest prompt and the tool calls (with their results) made for it since."""
    start = 0
    prompt = ""
    for index, message in enumerate(messages):
        found = _prompt_of(message)
        if found is not None:
            prompt, start = found, index
    calls: dict[str, tuple[str, Mapping[str, Any]]] = {}
    done: list[Done] = []
    for message in messages[start + 1 :]:
        for block in _blocks(message):
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                tool_input = block.get("input")
                calls[block["id"]] = (str(block.get("name")), tool_input if isinstance(tool_input, Mapping) else {})
            elif block.get("type") == "tool_result" and block.get("tool_use_id") in calls:
                name, tool_input = calls[str(block["tool_use_id"])]
                output = "\n".join(texts_of(block.get("content")))
                done.append(Done(name, tool_input, output, block.get("is_error") is True))
    return prompt, done


# --- answering -------------------------------------------------------------------------------


def _tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept) if kept else "(no output)"


def _file_content(read_output: str) -> str:
    """The file text of a Read result (the CLI numbers each line: spaces, the number, a tab, the line)."""
    lines = []
    for line in read_output.splitlines():
        match = _READ_LINE.match(line)
        if match is None:
            break
        lines.append(match.group(1))
    text = "\n".join(lines)
    return text + "\n" if text and not text.endswith("\n") else text


def _bash_outcome(command: str, result: Done, what: str) -> str:
    quiet = not result.output.strip() or result.output.strip().startswith("(Bash completed with no output")
    if not result.is_error and quiet:
        return f"I ran `{command}` ({what}); it finished without output."
    if not result.is_error:
        return f"I ran `{command}` ({what}). Its output ends with:\n```\n{_tail(result.output)}\n```"
    if result.output.startswith("Exit code") or "\nExit code" in result.output[:200]:
        return f"I ran `{command}` ({what}), and it failed:\n```\n{_tail(result.output)}\n```"
    return f"I did not run `{command}`. The answer I got: “{_tail(result.output, 3)}”"


def _bash(command: str, description: str, text: str, what: str) -> Callable[[list[Done]], Step]:
    def step(done: list[Done]) -> Step:
        if not done:
            return ToolCall("Bash", {"command": command, "description": description}, text)
        return _bash_outcome(command, done[-1], what)

    return step


def _spoken(prompt: str) -> str:
    """Voice notes say "test dot txt"; files end in punctuation when spoken as a sentence."""
    return re.sub(r"(?<=\w) dot (?=\w)", ".", prompt, flags=re.IGNORECASE).strip()


_CREATE = re.compile(
    r"\b(?:create|make|write|add) (?:a |the )?(?:new )?(?:file )?(?:called |named )?"
    r"(?P<path>[\w./-]+\.\w+|[\w-]+/[\w./-]+)\s+"
    r"(?:with|containing)(?: (?:the )?(?:content|text))?[: ]\s*(?P<content>.+)",
    re.IGNORECASE | re.DOTALL,
)
_CREATE_EMPTY = re.compile(
    r"\b(?:create|make|add|touch) (?:a |an |the )?(?:new |empty )*file (?:called |named )?(?P<path>[\w./-]+\.\w+)",
    re.IGNORECASE,
)
_README = re.compile(r"\b(?:add|create|write|make) (?:a |the )?readme\b", re.IGNORECASE)
_REPLACE = re.compile(
    r"\b(?:rename|replace|change)(?: the)?(?: variable| function| word| text)? [`'\"]?(?P<old>[\w.-]+)[`'\"]?"
    r" (?:to|with|into) [`'\"]?(?P<new>[\w.-]+)[`'\"]? in (?:the file )?(?P<path>[\w./-]+\.\w+)",
    re.IGNORECASE,
)
_FUNCTION = re.compile(r"\badd (?:a |an )?(?:new )?function\b(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_INTO = re.compile(r"\b(?:to|in|into) (?:the file )?(?P<path>[\w./-]+\.\w+)", re.IGNORECASE)
_NAMED = re.compile(r"\b(?:called|named) [`'\"]?(?P<name>[A-Za-z_]\w*)", re.IGNORECASE)
_DELETE = re.compile(
    r"\b(?:delete|remove)(?: the)?(?: file)? [`'\"]?(?P<target>[\w./-]+)[`'\"]?(?P<dir> director(?:y|ies)| folder)?"
    r"(?:[\s.,!?]|$)",
    re.IGNORECASE,
)
_RUN_COMMAND = re.compile(r"\brun (?:the )?command[: ]\s*(?P<command>.+)", re.IGNORECASE | re.DOTALL)
_RUN_TESTS = re.compile(r"\b(?:run|execute|start) (?:the |all |my )?(?:unit )?tests?\b|\btest suite\b", re.IGNORECASE)
_LONG_JOB = re.compile(r"\b(?:long|slow)(?:[- ]running)? (?:job|command|task|build)\b", re.IGNORECASE)
_INSTALL = re.compile(r"\binstall (?:the )?(?P<package>[\w.-]+)", re.IGNORECASE)
_LIST = re.compile(
    r"\b(?:list|show|find)(?: me)?(?: all)?(?: the)? (?P<kind>python |py |text )?files\b|\b(?:is|if) the work ?space"
    r"(?: directory| folder)? (?:is )?empty\b",
    re.IGNORECASE,
)
_GIT_LOG = re.compile(r"\b(?:git log|commit history|last commits)\b", re.IGNORECASE)
_LOG_FILE = re.compile(r"\blast (?:ten|\d+) lines of the log\b", re.IGNORECASE)
_PUSH = re.compile(r"\b(?:git )?push\b", re.IGNORECASE)
_COMMIT = re.compile(r"\bcommit\b", re.IGNORECASE)

HELP = (
    "I'm voicecoder's demo model: no real AI, just a few requests I understand. Try “add a README”, "
    "“create a file called notes.txt with hello world”, “add a function that returns the sum of two numbers”, "
    "“rename add_numbers to add in utils.py”, “run the tests”, “delete notes.txt”, “run a long job” "
    "(then tap ⏹ Cancel) or “list the python files”. Commands and deletions ask you first on the phone."
)


def _function_source(rest: str) -> tuple[str, str]:
    """A name and Python source for "add a function …" (the sum of two numbers, or a named stub)."""
    if re.search(r"\bsum\b|\badds?\b", rest, re.IGNORECASE):
        return "add_numbers", ('def add_numbers(a, b):\n    """Return the sum of two numbers."""\n    return a + b\n')
    named = _NAMED.search(rest)
    name = named.group("name") if named else "new_function"
    return name, f'def {name}():\n    """Added by voicecoder\'s demo model; fill me in."""\n    return None\n'


def _create(path: str, content: str) -> Callable[[list[Done]], Step]:
    def step(done: list[Done]) -> Step:
        if not done:
            return ToolCall("Write", {"file_path": path, "content": content}, f"I'll create {path}.")
        if done[-1].is_error:
            return f"I could not create {path}: {_tail(done[-1].output, 3)}"
        lines = content.count("\n")
        return f"I created {path} ({lines} line{'s' if lines != 1 else ''}). Tap 📝 Show Diff to see it."

    return step


def _replace(path: str, old: str, new: str) -> Callable[[list[Done]], Step]:
    def step(done: list[Done]) -> Step:
        if not done:
            return ToolCall("Read", {"file_path": path}, f"Let me look at {path} first.")
        if len(done) == 1:
            if done[0].is_error:
                return f"I could not read {path}: {_tail(done[0].output, 2)}"
            content = _file_content(done[0].output)
            if not re.search(rf"\b{re.escape(old)}\b", content):
                return f"I found no “{old}” in {path}, so I changed nothing."
            return ToolCall(
                "Edit",
                {"file_path": path, "old_string": old, "new_string": new, "replace_all": True},
                f"I'll rename {old} to {new} in {path}.",
            )
        if done[-1].is_error:
            return f"I could not edit {path}: {_tail(done[-1].output, 3)}"
        return f"I renamed every “{old}” to “{new}” in {path}."

    return step


def _add_function(path: str, name: str, source: str) -> Callable[[list[Done]], Step]:
    def step(done: list[Done]) -> Step:
        if not done:
            return ToolCall("Read", {"file_path": path}, f"I'll add {name}() to {path}; first I read it.")
        if len(done) == 1:
            existing = "" if done[0].is_error else _file_content(done[0].output)
            content = (existing.rstrip("\n") + "\n\n\n" if existing.strip() else "") + source
            return ToolCall("Write", {"file_path": path, "content": content})
        if done[-1].is_error:
            return f"I could not write {path}: {_tail(done[-1].output, 3)}"
        return f"I added the function {name}() to {path}."

    return step


def _list(pattern: str | None, where: str | None) -> Callable[[list[Done]], Step]:
    # The CLI offers no Glob tool in print mode (2.1.330): a read-only find does it.
    name = f" -name '{pattern}'" if pattern else ""
    command = f"find {where or '.'} -path ./.git -prune -o -type f{name} -print"

    def step(done: list[Done]) -> Step:
        if not done:
            return ToolCall("Bash", {"command": command, "description": "List the files"}, "I'll look.")
        if done[-1].is_error:
            return _bash_outcome(command, done[-1], "listing the files")
        files = [line for line in done[-1].output.splitlines() if line.strip() and not line.startswith("(Bash")]
        if not files:
            return "I found no such files: that part of the workspace is empty."
        shown = "\n".join(f"• {f}" for f in files[:30])
        more = f"\n… and {len(files) - 30} more." if len(files) > 30 else ""
        return f"I found {len(files)} file{'s' if len(files) != 1 else ''}:\n{shown}{more}"

    return step


def plan(prompt: str) -> Callable[[list[Done]], Step] | None:
    """How the demo model works through *prompt*, one step per call; None when it does not understand it."""
    spoken = _spoken(prompt)
    if match := _RUN_COMMAND.search(prompt):
        command = match.group("command").strip().strip("`")
        return _bash(command, f"Run {command}", f"I'll run `{command}`.", "as you asked")
    if match := _CREATE.search(spoken):
        path = match.group("path")
        content = match.group("content").strip().rstrip(".").strip("\"'`")
        return _create(path, content + "\n")
    if _README.search(spoken):
        return _create("README.md", "# Demo project\n\nCreated in voicecoder's sandbox by the demo model.\n")
    if match := _REPLACE.search(spoken):
        return _replace(match.group("path").rstrip("."), match.group("old"), match.group("new"))
    if match := _FUNCTION.search(spoken):
        rest = match.group("rest")
        into = _INTO.search(rest)
        name, source = _function_source(rest)
        return _add_function(into.group("path").rstrip(".") if into else "utils.py", name, source)
    if _LONG_JOB.search(spoken):
        return _bash(LONG_JOB_COMMAND, "A long-running job (stop it with ⏹ Cancel)", "I'll start the long job.", "")
    if _RUN_TESTS.search(spoken):
        return _bash(TESTS_COMMAND, "Run the tests", "I'll run the tests.", "the tests")
    if match := _DELETE.search(spoken):
        target = match.group("target").rstrip(".")
        directory = bool(match.group("dir")) or "." not in target.rsplit("/", 1)[-1]
        command = f"rm -rf {target}" if directory else f"rm {target}"
        what = f"deleting {target}" + (" and everything in it" if directory else "")
        return _bash(command, f"Delete {target}", f"I'll delete {target}.", what)
    if match := _INSTALL.search(spoken):
        package = match.group("package")
        return _bash(f"pip install {package}", f"Install {package}", f"I'll install {package}.", "the install")
    if match := _LIST.search(spoken):
        python = match.group("kind") and match.group("kind").strip().lower() in ("python", "py")
        where = "src" if re.search(r"\bsource\b|\bsrc\b", spoken, re.IGNORECASE) else None
        return _list("*.py" if python else None, where)
    if _LOG_FILE.search(spoken):
        return _bash("tail -n 10 *.log", "Show the end of the log file", "I'll look at the log.", "the log")
    if _GIT_LOG.search(spoken):
        return _bash("git log --oneline -10", "Show the last commits", "Here is the history.", "the history")
    if _PUSH.search(spoken):
        return _bash("git push", "Push the commits", "I'll push.", "the push")
    if _COMMIT.search(spoken):
        return lambda _done: (
            "I don't commit by myself: voicecoder commits exactly the change you approve. Tap ✅ Approve under the "
            "change and it is committed with your prompt in the message."
        )
    return None


def demo_reply(messages: Sequence[Mapping[str, Any]], *, unknown: Callable[[str], str] | None = None) -> Step:
    """
    The demo model's next step for the conversation *messages*.

    A request it does not understand is answered with *unknown(prompt)*, by default what it does understand.
    """
    prompt, done = conversation(messages)
    steps = plan(prompt) if prompt else None
    if steps is None:
        return unknown(prompt) if unknown is not None else HELP
    return steps(done)


def describe(step: Step) -> str:
    """One line for logs and tests."""
    if isinstance(step, str):
        return step
    return f"{step.name} {json.dumps(dict(step.input), ensure_ascii=False)}"
