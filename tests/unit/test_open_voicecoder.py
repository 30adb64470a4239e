"""
`open_voicecoder`: an embedder's one entry point opens what it built, closes exactly that, and nothing more.

Real adapters (dulwich, SQLite), with the git CLI as the oracle for the workspace it creates.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from voicecoder import ChatId, StateStoreError, UserId, WorkspaceStatus, open_voicecoder
from voicecoder.adapters import (
    ClaudeCliAgent,
    ClaudeCliConfig,
    DulwichWorkspace,
    LocalWhisperTranscriber,
    MeteredAgentRunner,
    MeteredTranscriber,
    Metrics,
    SqliteStateStore,
)
from voicecoder.domain.errors import NotARepositoryError, WorkspaceError
from voicecoder.domain.replies import ErrorReply, GitStatusView, HelpText
from voicecoder.testing.fakes import FakeTranscriber, FakeWorkspace, RecordingMessenger

CHAT = ChatId(7)
DEV = UserId(42)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def open_files_under(directory: Path) -> set[Path]:
    """Files this process holds open under *directory* (from /proc/self/fd)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if target.is_relative_to(directory):
            found.add(target)
    return found


class TestDefaults:
    async def test_only_a_messenger_is_needed(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """
        With nothing but a messenger: a git workspace at ./workspace, SQLite in ./data, the CLI agent and the local
        speech model — and it answers.
        """
        monkeypatch.chdir(tmp_path)
        messenger = RecordingMessenger()

        async with open_voicecoder(messenger=messenger, allowed_users=[DEV.value]) as app:
            assert git(tmp_path / "workspace", "rev-parse", "--is-inside-work-tree").strip() == "true"
            assert (tmp_path / "data" / "state.sqlite3").is_file()
            assert isinstance(app.ports.workspace, DulwichWorkspace)
            assert isinstance(app.ports.store, SqliteStateStore)
            assert isinstance(app.ports.agent, ClaudeCliAgent)
            assert isinstance(app.ports.transcriber, LocalWhisperTranscriber)
            await app.help(CHAT, DEV)
            status = await app.git_status(CHAT, DEV)

        assert isinstance(status, WorkspaceStatus)
        assert status.branch == git(tmp_path / "workspace", "branch", "--show-current").strip()
        help_text, view = messenger.replies()
        assert isinstance(help_text, HelpText)
        assert view == GitStatusView(status)

    async def test_no_inbox_and_no_metering_unless_asked(self, tmp_path: Path) -> None:
        """No webhook inbox database, no Prometheus wrappers; /info checks only what is in use."""
        async with open_voicecoder(
            messenger=RecordingMessenger(), workspace=tmp_path / "ws", data_dir=tmp_path / "data"
        ) as app:
            checks = {d.name for d in await app.diagnose()}

        assert sorted(p.name for p in (tmp_path / "data").iterdir() if p.suffix == ".sqlite3") == ["state.sqlite3"]
        assert not isinstance(app.ports.agent, MeteredAgentRunner)
        assert not isinstance(app.ports.transcriber, MeteredTranscriber)
        assert not any("telegram" in name or "webhook" in name for name in checks)
        assert {"workspace", "Claude Code CLI", "state store"} <= checks

    async def test_metrics_when_asked(self, tmp_path: Path) -> None:
        """metrics= wraps the agent and the transcriber in the Prometheus meters, around what was chosen."""
        metrics = Metrics()
        transcriber = FakeTranscriber()
        transcriber.learn(b"OggS" + b"\2" * 50, "hello")

        async with open_voicecoder(
            messenger=RecordingMessenger(),
            workspace=tmp_path / "ws",
            data_dir=tmp_path / "data",
            transcriber=transcriber,
            metrics=metrics,
        ) as app:
            assert isinstance(app.ports.agent, MeteredAgentRunner)
            assert isinstance(app.ports.agent.inner, ClaudeCliAgent)
            assert isinstance(app.ports.transcriber, MeteredTranscriber)
            assert app.ports.transcriber.inner is transcriber

        assert b"voicecoder_" in metrics.render()


class TestLifetime:
    async def test_closes_what_it_built(self, tmp_path: Path) -> None:
        """The SQLite store it opened is closed on exit (no file left open; later calls refused)."""
        data = tmp_path / "data"
        async with open_voicecoder(messenger=RecordingMessenger(), workspace=tmp_path / "ws", data_dir=data) as app:
            assert data / "state.sqlite3" in open_files_under(data)

        assert open_files_under(data) == set()
        with pytest.raises(StateStoreError, match="closed"):
            await app.ports.store.load_session(CHAT)

    async def test_leaves_what_it_was_given_alone(self, tmp_path: Path) -> None:
        """A store and a workspace passed in are neither opened nor closed by it: they stay the caller's."""

        class Workspace(DulwichWorkspace):
            opened = 0

            async def open(self) -> None:
                type(self).opened += 1
                await super().open()

        store = SqliteStateStore(tmp_path / "mine.sqlite3")
        await store.open()
        workspace = Workspace(tmp_path / "ws")

        async with open_voicecoder(
            messenger=RecordingMessenger(), workspace=workspace, store=store, data_dir=tmp_path / "data"
        ) as app:
            assert app.ports.store is store
            assert app.ports.workspace is workspace

        assert Workspace.opened == 0
        assert not (tmp_path / "data" / "state.sqlite3").exists()
        assert await store.load_session(CHAT) is None  # still open
        await store.close()

    async def test_a_workspace_object_needs_no_path(self, tmp_path: Path) -> None:
        """Any `Workspace` will do; /status reports its path."""
        workspace = FakeWorkspace(path=str(tmp_path / "elsewhere"))
        async with open_voicecoder(
            messenger=RecordingMessenger(), workspace=workspace, data_dir=tmp_path / "data", allowed_users=[DEV.value]
        ) as app:
            assert await app.git_status(CHAT, DEV) == await workspace.status()

        assert app.settings.workspace_path == str(tmp_path / "elsewhere")

    async def test_closes_on_an_error_in_the_body(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        with pytest.raises(RuntimeError, match="embedder bug"):
            async with open_voicecoder(messenger=RecordingMessenger(), workspace=tmp_path / "ws", data_dir=data):
                raise RuntimeError("embedder bug")

        assert open_files_under(data) == set()

    async def test_a_workspace_that_cannot_open_closes_the_store(self, tmp_path: Path) -> None:
        """A workspace path that is a file: WorkspaceError, and the store it had opened is closed again."""
        (tmp_path / "ws").write_text("not a directory\n")
        data = tmp_path / "data"

        with pytest.raises(WorkspaceError) as raised:
            async with open_voicecoder(messenger=RecordingMessenger(), workspace=tmp_path / "ws", data_dir=data):
                pytest.fail("the body must not run")

        assert isinstance(raised.value, NotARepositoryError | WorkspaceError)
        assert open_files_under(data) == set()


class TestErrorTexts:
    async def test_embedded_errors_carry_no_cli_hint(self, tmp_path: Path) -> None:
        """Inside someone else's bot an error reply names no voicecoder environment variable (no hint)."""
        messenger = RecordingMessenger()
        missing = tmp_path / "no-such-claude"
        agent = ClaudeCliAgent(ClaudeCliConfig(workdir=tmp_path / "ws", binary=str(missing)))
        async with open_voicecoder(
            messenger=messenger,
            workspace=tmp_path / "ws",
            data_dir=tmp_path / "data",
            allowed_users=[DEV.value],
            agent=agent,
        ) as app:
            await app.prompt(CHAT, DEV, "hello")

        (error,) = messenger.of_type(ErrorReply)
        assert error.hint is None
        assert "CLAUDE_" not in error.message
