"""
The workspaces of a bot with several projects (``PROJECTS``): one `VoiceCoder` per (user, project) workspace.

Each workspace's app has its own tree (a clone under ``WORKSPACES_ROOT/<project>/user-<id>``, or the project's own
tree when it is shared), its own state database (``DATA_DIR/projects/<project>/user-<id>.sqlite3`` or
``shared.sqlite3``: sessions, pending changes, turn counters, tool rules and audit never mix), its own agent
working in that tree and its own workspace lock. The speech engine, the clock, the secret scanner and the chat
messenger are shared; the messenger tags each workspace's buttons with its project.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.abc
import attrs

from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.adapters.git.provision import ProvisionError, clone_workspace, is_work_tree
from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, Metrics
from voicecoder.adapters.sqlite.state_store import OwnerFence, SqliteStateStore
from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary
from voicecoder.config import Config
from voicecoder.domain.model import UserId
from voicecoder.domain.policy import ToolPolicy
from voicecoder.domain.ports import AgentRunner, Clock, Diagnosable, Messenger, SecretScanner, Transcriber
from voicecoder.domain.projects import ProjectMessenger
from voicecoder.domain.services import Ports, Settings, VoiceCoder
from voicecoder.projects_config import ProjectSpec

__all__ = ["ProjectWorkspaceSet", "state_path", "workspace_path"]

log = logging.getLogger(__name__)

AgentFactory = Callable[[Config], AgentRunner]
"""Builds the agent of one workspace from the configuration narrowed to it (``workspace_dir`` is its tree)."""


def workspace_path(config: Config, spec: ProjectSpec, user: UserId) -> Path:
    """Where *user*'s tree of *spec* lives: the project's own path when shared, else a clone of their own."""
    if spec.shared and spec.path is not None:
        return spec.path.expanduser().absolute()
    return (config.workspaces_root / spec.name / f"user-{user.value}").expanduser().absolute()


def state_path(config: Config, spec: ProjectSpec, user: UserId) -> Path:
    name = "shared" if spec.shared else f"user-{user.value}"
    return config.data_dir / "projects" / spec.name / f"{name}.sqlite3"


class ProjectWorkspaceSet:
    """
    The `ProjectWorkspaces` port: opens each workspace's app on first use and closes them all in `aclose`.

    *workspace_config* narrows the service's `Config` to one tree (the container's helpers build the agent's
    configuration and tool policy from it); *agent_factory* replaces the Claude CLI agent (tests, the sandbox);
    *state_fence* gives a cluster worker's fence of a (project, user or None when shared) workspace's state.
    """

    def __init__(
        self,
        config: Config,
        *,
        messenger: Messenger,
        transcriber: Transcriber,
        clock: Clock,
        scanner: SecretScanner,
        settings: Settings,
        metrics: Metrics,
        tool_policy: Callable[[Config], ToolPolicy | None],
        claude_config: Callable[[Config], ClaudeCliConfig],
        agent_factory: AgentFactory | None = None,
        state_fence: Callable[[str, int | None], OwnerFence] | None = None,
    ) -> None:
        self._config = config
        self._specs = {spec.name: spec for spec in config.projects}
        self._messenger = messenger
        self._transcriber = transcriber
        self._clock = clock
        self._scanner = scanner
        self._settings = settings
        self._metrics = metrics
        self._tool_policy = tool_policy
        self._claude_config = claude_config
        self._agent_factory = agent_factory
        self._state_fence = state_fence
        self._apps: dict[tuple[str, Path], VoiceCoder] = {}
        self._claudes: list[ClaudeCliAgent] = []
        self._locks: dict[tuple[str, Path], anyio.Lock] = {}
        self._stack = contextlib.AsyncExitStack()

    def opened(self) -> tuple[VoiceCoder, ...]:
        return tuple(self._apps.values())

    async def open(self, user: UserId, project: str, /) -> VoiceCoder:
        """
        *user*'s app of *project* (see `voicecoder.domain.projects.ProjectWorkspaces.open`).

        Raises:
            WorkspaceError: The tree cannot be cloned or is not a git repository (`ProvisionError`).
            StateStoreError: The workspace's state database cannot be opened.
        """
        spec = self._specs[project]
        path = workspace_path(self._config, spec, user)
        key = (project, path)
        app = self._apps.get(key)
        if app is not None:
            return app
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            app = self._apps.get(key)
            if app is None:
                app = await self._build(spec, user, path)
                self._apps[key] = app
        return app

    async def _build(self, spec: ProjectSpec, user: UserId, path: Path) -> VoiceCoder:
        if spec.shared:
            if not is_work_tree(path):
                raise ProvisionError(
                    f"the shared project {spec.name}'s path {path} is not a git work tree: fix its path in "
                    "PROJECTS / PROJECTS_FILE, or run git init there."
                )
        else:
            await clone_workspace(spec.source, path, branch=spec.branch)
        narrowed = attrs.evolve(self._config, workspace_dir=path)
        workspace = DulwichWorkspace(path, init_if_missing=False)
        await workspace.open()
        state = state_path(self._config, spec, user)
        state.parent.mkdir(parents=True, exist_ok=True)
        fence = self._state_fence(spec.name, None if spec.shared else user.value) if self._state_fence else None
        store = SqliteStateStore(state, fence=fence)
        await store.open()
        self._stack.push_async_callback(store.close)
        agent: AgentRunner
        if self._agent_factory is not None:
            agent = self._agent_factory(narrowed)
            checked: object = agent
        else:
            claude = ClaudeCliAgent(self._claude_config(narrowed))
            self._stack.push_async_callback(claude.aclose)
            self._claudes.append(claude)
            agent = MeteredAgentRunner(inner=claude, metrics=self._metrics)
            checked = claude
        checks = tuple(d for d in (workspace, checked, store, self._transcriber) if isinstance(d, Diagnosable))
        ports = Ports(
            workspace=workspace,
            agent=agent,
            transcriber=self._transcriber,
            messenger=ProjectMessenger(self._messenger, spec.name),
            store=store,
            clock=self._clock,
            scanner=self._scanner,
            vocabulary=WorkspaceVocabulary(path),
            diagnosables=checks,
        )
        settings = attrs.evolve(
            self._settings,
            workspace_path=str(path),
            tools=self._tool_policy(narrowed),
            project=spec.name,
        )
        log.info("project %s: workspace %s opened for user %s", spec.name, path, user)
        return VoiceCoder(ports, settings)

    async def keep_warm(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """
        Reap every workspace agent's idle processes until cancelled, then close them all.

        Each idle CLI holds 300-500 MB, so with several users and projects an unreaped one per workspace would add
        up; the service starts this in its task group as it does the single workspace's `ClaudeCliAgent.keep_warm`.
        """
        keep_warm_s = self._claude_config(self._config).keep_warm_s
        task_status.started()
        try:
            while True:
                await anyio.sleep(max(1.0, min(60.0, keep_warm_s / 4)))
                for claude in tuple(self._claudes):
                    await claude.reap_idle()
        finally:
            with anyio.CancelScope(shield=True):
                for claude in tuple(self._claudes):
                    await claude.aclose()

    async def aclose(self) -> None:
        """Close every workspace's database and agent. Raises nothing (failures are logged)."""
        try:
            await self._stack.aclose()
        except Exception:
            log.exception("closing the project workspaces failed")
        self._apps.clear()
