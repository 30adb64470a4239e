"""
The wiring of voicecoder inside someone else's bot (`open_voicecoder`) and inside tests (`for_tests`).

Both go through the same container classes as `voicecoder serve`, with the ports they are given put in place of
the built ones: one wiring, so a test exercises what production runs. `for_tests`, which is given every port,
builds the `App` part alone (the domain's wiring): instantiating the whole `Container` copies all of its ~60
providers, 8 ms a test, and the suite builds over a thousand apps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

from dependency_injector import providers

from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics
from voicecoder.bootstrap.container import App, _tool_policy, _user_ids, build_container
from voicecoder.bootstrap.runtime import lifetime
from voicecoder.config import Config
from voicecoder.domain.ports import (
    AgentRunner,
    Clock,
    Diagnosable,
    Messenger,
    SecretScanner,
    StateStore,
    Transcriber,
    VocabularySource,
    Workspace,
)
from voicecoder.domain.services import Settings, VoiceCoder


@contextlib.asynccontextmanager
async def open_voicecoder(
    *,
    messenger: Messenger,
    workspace: Path | str | Workspace = Path("workspace"),
    data_dir: Path | str = Path("data"),
    transcriber: Transcriber | None = None,
    agent: AgentRunner | None = None,
    allowed_users: Iterable[int] = (),
    settings: Settings | None = None,
    store: StateStore | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[VoiceCoder]:
    """
    Open voicecoder for your own bot: open what it needs, yield the `VoiceCoder`, close it all on exit.

    Only *messenger* (your chat, as a `Messenger`) is required. Defaults: *workspace* is a git repository at that
    path (a `DulwichWorkspace`; created if missing), or pass your own `Workspace`; the session store is SQLite in
    *data_dir*; the agent is the Claude Code CLI (``claude`` on PATH) working in the workspace; speech to text is
    the local Whisper model (the ``local-stt`` extra). *allowed_users* are the user ids that may use it (nobody by
    default), or pass complete domain *settings*. There is no webhook inbox (your bot receives its own updates)
    and no Prometheus metering unless you pass *metrics* (a `voicecoder.adapters.Metrics`). Objects you pass in
    are yours to open and close; what this function built, it closes.

    Raises:
        StateStoreError: The state database in *data_dir* cannot be opened.
        WorkspaceError: The workspace cannot be opened or created.
        OSError: *data_dir* cannot be created.
    """
    owned_workspace = not isinstance(workspace, Workspace)
    workspace_dir = Path(workspace) if isinstance(workspace, (str, Path)) else Path(getattr(workspace, "path", "."))
    config = Config(
        workspace_dir=workspace_dir,
        data_dir=Path(data_dir),
        allowed_user_ids=frozenset(allowed_users),
    )
    container = build_container(config)
    if not owned_workspace:
        container.core.workspace.override(providers.Object(workspace))
    if store is not None:
        container.core.store.override(providers.Object(store))
    container.telegram.messenger.override(providers.Object(messenger))
    chosen_agent: AgentRunner = agent if agent is not None else container.core.claude()
    chosen_transcriber: Transcriber = transcriber if transcriber is not None else container.speech.engine()
    if metrics is not None:
        chosen_agent = MeteredAgentRunner(inner=chosen_agent, metrics=metrics)
        chosen_transcriber = MeteredTranscriber(inner=chosen_transcriber, metrics=metrics, provider="embedded")
    container.core.agent.override(providers.Object(chosen_agent))
    container.speech.transcriber.override(providers.Object(chosen_transcriber))
    # /info checks what is in use; never the Telegram token or webhook of the standalone bot.
    in_use = (
        container.core.workspace(),
        agent if agent is not None else container.core.claude(),
        transcriber if transcriber is not None else container.speech.engine(),
        container.core.store(),
    )
    container.diagnosables.override(providers.Object(tuple(d for d in in_use if isinstance(d, Diagnosable))))
    if settings is None:
        settings = Settings(
            allowed_users=_user_ids(config.allowed_user_ids),
            workspace_path=str(workspace_dir.resolve()),
            # The default agent asks before commands: the questions go to your messenger.
            tools=_tool_policy(config),
        )
    container.app.domain_settings.override(providers.Object(settings))

    async with lifetime(
        container, store=store is None, workspace=owned_workspace, speech=transcriber is None, agent=agent is None
    ):
        yield container.app.voicecoder()


def for_tests(
    *,
    workspace: Workspace,
    agent: AgentRunner,
    transcriber: Transcriber,
    messenger: Messenger,
    store: StateStore,
    clock: Clock,
    scanner: SecretScanner,
    vocabulary: VocabularySource,
    settings: Settings,
    diagnosables: Sequence[Diagnosable] | None = None,
) -> VoiceCoder:
    """
    The `VoiceCoder` of the production container with every port given (cosmicpython's ``bootstrap`` for tests).

    Nothing is opened or metered: the ports are the caller's. *diagnosables* (default: the workspace, agent and
    transcriber that are `Diagnosable`) are what /info checks. The container's `App` part, which wires the domain,
    is given the ports where `Container` gives it the built ones.
    """
    if diagnosables is None:
        diagnosables = tuple(d for d in (workspace, agent, transcriber) if isinstance(d, Diagnosable))
    given: dict[str, object] = {
        "settings": Config(workspace_dir=Path(getattr(workspace, "path", "."))),
        "workspace": workspace,
        "agent": agent,
        "transcriber": transcriber,
        "messenger": messenger,
        "store": store,
        "clock": clock,
        "scanner": scanner,
        "vocabulary": vocabulary,
        "diagnosables": tuple(diagnosables),
    }
    container = App(**{name: providers.Object(port) for name, port in given.items()})
    container.domain_settings.override(providers.Object(settings))
    container.check_dependencies()
    app: VoiceCoder = container.voicecoder()
    return app


__all__ = ["for_tests", "open_voicecoder"]
