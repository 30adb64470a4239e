"""The pure parts of the Claude adapter: stream-json lines and events, tool labels, redaction, the leader check."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
import uuid
from pathlib import Path, PurePath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.adapters.claude.fake_cli import assistant
from voicecoder.adapters.claude import LineSplitter, StreamParser, leader_is_ours, redact, tool_label
from voicecoder.domain.model import SessionStarted


@pytest.fixture(name="marker")
def _marker() -> str:
    return uuid.uuid4().hex


class TestLeaderIsOurs:
    def test_only_the_marked_process_is_ours(self, marker: str) -> None:
        """A live process with the run's marker is ours; this test process and a vanished pid are not."""
        child = subprocess.Popen(["sleep", "30"], env={**os.environ, "VOICECODER_AGENT_RUN": marker})
        try:
            # Until exec completes, /proc/<pid>/environ still shows the parent's environment.
            deadline = time.monotonic() + 5
            while Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert leader_is_ours(child.pid, marker) is True
            assert leader_is_ours(os.getpid(), marker) is False
        finally:
            child.kill()
            child.wait()

        assert leader_is_ours(child.pid, marker) is False


class TestLineSplitter:
    def test_lines_across_chunks(self) -> None:
        """Lines split over chunk boundaries are reassembled."""
        splitter = LineSplitter(100)

        lines = splitter.feed(b'{"a":') + splitter.feed(b"1}\n{") + splitter.feed(b'"b":2}\nta')

        assert lines == [b'{"a":1}', b'{"b":2}']
        assert splitter.finish() == b"ta"

    def test_oversize_line_is_dropped(self) -> None:
        """A line over the limit is skipped; the next line is intact."""
        splitter = LineSplitter(10)

        lines = splitter.feed(b"short\n" + b"x" * 8) + splitter.feed(b"y" * 50) + splitter.feed(b"zz\nok\n")

        assert lines == [b"short", b"ok"]
        assert splitter.dropped_lines == 1

    @given(
        lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
        cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    )
    def test_any_chunking_gives_the_short_lines(self, lines: list[bytes], cuts: list[int]) -> None:
        """However the stream is chunked, exactly the lines within the limit come out, in order."""
        data = b"".join(line + b"\n" for line in lines)
        bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        splitter = LineSplitter(20)

        out: list[bytes] = []
        for start, end in itertools.pairwise(bounds):
            out += splitter.feed(data[start:end])

        assert out == [line for line in lines if len(line) <= 20]
        assert splitter.finish() is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["type", "subtype", "message", "content", "text", "id", "name", "input", "is_error", "errors", "result"]
            )
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


class TestStreamParser:
    @given(
        objs=st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["system", "assistant", "user", "result", "other"])},
                optional={
                    "subtype": st.sampled_from(["init", "permission_denied", "api_retry", "compact_boundary"])
                    | json_values,
                    "message": json_values,
                    "session_id": json_values,
                    "permission_denials": json_values,
                    "compact_metadata": json_values,
                    "attempt": json_values,
                    "is_error": json_values,
                    "errors": json_values,
                    "result": json_values,
                },
            ),
            max_size=8,
        )
    )
    def test_never_crashes_on_malformed_fields(self, objs: list[dict[str, Any]]) -> None:
        """Any shape of known and unknown fields yields events or nothing, and a result can always be built."""
        parser = StreamParser(workdir=PurePath("/ws"))

        for obj in objs:
            parser.feed(obj)
        res = parser.agent_result()

        assert isinstance(res.success, bool)

    def test_subagent_text_is_not_reported(self) -> None:
        """Text from a nested agent (parent_tool_use_id set) is not the assistant's answer."""
        parser = StreamParser()

        events = parser.feed(assistant({"type": "text", "text": "inner"}, parent="toolu_1"))

        assert events == []

    def test_second_init_is_not_a_new_session(self) -> None:
        """/compact emits init after status lines; only the first init announces the session."""
        parser = StreamParser()

        first = parser.feed({"type": "system", "subtype": "init", "session_id": "s1"})
        second = parser.feed({"type": "system", "subtype": "init", "session_id": "s1"})

        assert (first, second) == ([SessionStarted("s1", None)], [])


class TestToolLabel:
    @pytest.mark.parametrize(
        ("name", "tool_input", "expected"),
        [
            ("Edit", {"file_path": "/ws/src/app.py", "old_string": "a"}, "Edit src/app.py"),
            ("Write", {"file_path": "/ws/notes.txt", "content": "x"}, "Write notes.txt"),
            ("Read", {"file_path": "/elsewhere/README.md"}, "Read /elsewhere/README.md"),
            ("Bash", {"command": "pytest -q", "description": "run tests"}, "Bash: pytest -q"),
            ("Bash", {"command": "echo a\n  echo b"}, "Bash: echo a echo b"),
            ("Grep", {"pattern": "foo"}, 'Grep "foo"'),
            ("Grep", {"pattern": "foo", "path": "/ws/src"}, 'Grep "foo" in src'),
            ("Glob", {"pattern": "**/*.py"}, 'Glob "**/*.py"'),
            ("WebFetch", {"url": "https://example.org", "prompt": "x"}, "WebFetch https://example.org"),
            ("Task", {"description": "explore", "prompt": "..."}, "Task: explore"),
            ("NotebookEdit", {"notebook_path": "/ws/a.ipynb"}, "NotebookEdit a.ipynb"),
            ("TodoWrite", {"todos": []}, "TodoWrite"),
            ("Mystery", None, "Mystery"),
        ],
    )
    def test_labels(self, name: str, tool_input: dict[str, Any] | None, expected: str) -> None:
        """Each tool gets a short label naming what it touches."""
        assert tool_label(name, tool_input, PurePath("/ws")) == expected

    def test_any_spelling_of_the_workspace(self) -> None:
        """With several roots (symlinked and resolved), a path under either is shown relative."""
        roots = (PurePath("/home/u/ws"), PurePath("/data/ws"))

        labels = [tool_label("Read", {"file_path": p}, roots) for p in ("/home/u/ws/a.py", "/data/ws/b.py")]

        assert labels == ["Read a.py", "Read b.py"]

    def test_long_command_is_shortened(self) -> None:
        """Labels stay short enough for a chat progress line."""
        label = tool_label("Bash", {"command": "x" * 500})

        assert len(label) == 80
        assert label.endswith("…")


class TestRedact:
    def test_keys_and_literals(self) -> None:
        """Anthropic keys, key=value pairs, long tokens and given literals are masked."""
        text = "key sk-ant-api03-abc_DEF-123 x-api-key: abcdef123 token=zzzzzzzz " + "a" * 45 + " hello mysecret"

        out = redact(text, ["mysecret"])

        assert "sk-ant" not in out
        assert "abcdef123" not in out
        assert "zzzzzzzz" not in out
        assert "a" * 45 not in out
        assert "mysecret" not in out
        assert "hello" in out
