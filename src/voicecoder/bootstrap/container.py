"""
The composition root's container: everything voicecoder is made of, built lazily from one `Config`.

Providers are synchronous; `voicecoder.bootstrap.runtime` opens and closes what needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.adapters.claude_node import NodeRuntime
from voicecoder.adapters.detect_secrets_scanner import DetectSecretsScanner
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics, UpdateMetrics
from voicecoder.adapters.sqlite.inbox import SqliteInbox
from voicecoder.adapters.sqlite.project_choices import SqliteProjectChoices
from voicecoder.adapters.sqlite.state_store import SqliteStateStore
from voicecoder.adapters.stt.audio_intake import AudioLimits
from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber
from voicecoder.adapters.stt.deepgram import DeepgramTranscriber
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber, check_device
from voicecoder.adapters.stt.openai_compatible import OpenAITranscriber
from voicecoder.adapters.stt.plugins import BUILTIN_PROVIDERS, PluginContext, load_plugin
from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary
from voicecoder.adapters.stt.whisper_window import encoder_windows_named
from voicecoder.adapters.system_clock import SystemClock
from voicecoder.adapters.telegram.dispatcher import DispatchStats, UpdateDispatcher
from voicecoder.adapters.telegram.ingress import KeepWarm, StatelessIngress, TelegramIngress
from voicecoder.adapters.telegram.updates import BOT_COMMANDS, BOT_COMMANDS_WITH_PROJECTS, TelegramUpdateHandler
from voicecoder.adapters.telegram.webhook import TELEGRAM_NETWORKS, IngressStats, WebhookSettings
from voicecoder.bootstrap.doctor import RuntimeChecks
from voicecoder.bootstrap.projects import ProjectWorkspaceSet
from voicecoder.bootstrap.telegram import Telegram, messaging_of
from voicecoder.config import Config
from voicecoder.domain.app import COMMANDS_WITH_PROJECTS, VoiceCoderApp
from voicecoder.domain.errors import (
    AgentNotInstalledError,
    AgentTimeoutError,
    ProviderAuthError,
    VoicecoderError,
)
from voicecoder.domain.model import UserId
from voicecoder.domain.policy import ApprovalPolicy, ToolApprovalMode, ToolPolicy
from voicecoder.domain.ports import (
    AgentRunner,
    Clock,
    Diagnosable,
    Inbox,
    Messenger,
    SecretScanner,
    StateStore,
    Transcriber,
    VocabularySource,
    Workspace,
)
from voicecoder.domain.router import ProjectRouter
from voicecoder.domain.services import Ports, Settings, VoiceCoder
from voicecoder.redaction import Redactor

log = logging.getLogger(__name__)


def _user_ids(ids: frozenset[int]) -> frozenset[UserId]:
    return frozenset(UserId(i) for i in ids)


def _claude_config(config: Config) -> ClaudeCliConfig:
    return ClaudeCliConfig(
        # The CLI runs with cwd = workspace: every path it gets must be absolute.
        workdir=config.workspace_dir.resolve(),
        binary=config.claude_binary,
        model=config.claude_model,
        ask_tools=config.tool_approval != "off",
        permission_mode=config.claude_permission_mode,
        max_turns=config.claude_max_turns,
        timeout_s=config.claude_timeout_s,
        config_dir=config.claude_config_dir.resolve() if config.claude_config_dir else None,
        extra_env=dict(config.claude_env),
        passthrough=config.agent_env_passthrough,
        keep_warm_s=config.claude_keep_warm_s,
    )


def _tool_policy(config: Config) -> ToolPolicy | None:
    """The ToolPolicy of TOOL_APPROVAL (None when off: the CLI's own permission mode decides)."""
    if config.tool_approval == "off":
        return None
    home, workspace = Path.home(), config.workspace_dir.resolve()
    # What the agent's tools may not reach: voicecoder's own settings and state, and the CLI's login (a directory
    # that holds the workspace itself, e.g. DATA_DIR=., cannot be kept from it).
    private = (config.data_dir, config.env_file, config.claude_config_dir or home / ".claude")
    return ToolPolicy(
        workspace=str(workspace),
        mode=ToolApprovalMode(config.tool_approval),
        allow=config.tool_allow,
        home=str(home),
        private=tuple(str(p.resolve()) for p in private if p is not None and not workspace.is_relative_to(p.resolve())),
    )


def _front(config: Config, single: Callable[[], VoiceCoder], router: Callable[[], ProjectRouter]) -> VoiceCoderApp:
    """What the transport drives: the project router where PROJECTS is set, else the one workspace's app."""
    return router() if config.projects else single()


def _keep_warm(
    config: Config, single: Callable[[], ClaudeCliAgent], projects: Callable[[], ProjectWorkspaceSet]
) -> KeepWarm:
    """What reaps idle agent processes: every project workspace's agents where PROJECTS is set, else the one."""
    return projects().keep_warm if config.projects else single().keep_warm


def _telethon_update_handler(
    app: VoiceCoderApp, client: Any, *, messenger: Messenger, max_bytes: int
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    from voicecoder.adapters.telethon import TelethonUpdateHandler  # noqa: PLC0415 - optional extra

    return TelethonUpdateHandler(app, client, messenger=messenger, max_bytes=max_bytes)


def _telethon_ingress(**kwargs: Any) -> Any:
    from voicecoder.adapters.telethon.serve import TelethonIngress  # noqa: PLC0415 - optional extra

    return TelethonIngress(**kwargs)


def _webhook_settings(config: Config) -> WebhookSettings:
    """
    The webhook's checks, from WEBHOOK_PATH/WEBHOOK_SECRET (or the identity `serve` resolved) and the allow-lists.

    Raises:
        ConfigurationError: No webhook identity is configured.
    """
    path, secret = config.require_webhook_identity()
    return WebhookSettings(
        secret_token=secret,
        path=path,
        allowed_networks=TELEGRAM_NETWORKS if config.webhook_ip_allowlist else (),
        trusted_proxies=config.trusted_proxies,
    )


def cli_error_hint(error: VoicecoderError) -> str | None:
    """The `voicecoder` CLI's own addition to an error reply: which of its environment variables to change."""
    match error:
        case AgentTimeoutError():
            return "Raise CLAUDE_TIMEOUT (seconds) to give Claude more time."
        case AgentNotInstalledError():
            return "Set CLAUDE_BINARY to the path of the claude executable."
        case ProviderAuthError(provider=provider):
            return f"Check {provider.upper()}_API_KEY, or set STT_PROVIDER=local."
    return None


def _assemblyai_transcriber(**kwargs: Any) -> Transcriber:
    """Imported when chosen: the SDK takes 0.3-0.6 s to import, a third of `voicecoder doctor`'s budget."""
    from voicecoder.adapters.stt.assemblyai import AssemblyAITranscriber  # noqa: PLC0415

    return AssemblyAITranscriber(**kwargs)


def _inbox(config: Config) -> Inbox:
    """SQLite in DATA_DIR (the embedded mode), or the cluster's PostgreSQL when DATABASE_URL is set."""
    if config.database_url is None:
        return SqliteInbox(config.inbox_path)
    from voicecoder.adapters.postgres.inbox import PostgresInbox  # noqa: PLC0415 - the postgres extra

    return PostgresInbox(config.database_url)


class Core(containers.DeclarativeContainer):
    """What every transport needs: the clock, metrics, the workspace, the stores and the agent."""

    settings = providers.Dependency(instance_of=Config)

    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)
    workspace = providers.Singleton(DulwichWorkspace, settings.provided.workspace_dir)
    scanner = providers.Singleton(DetectSecretsScanner)
    vocabulary = providers.Singleton(WorkspaceVocabulary, settings.provided.workspace_dir)
    store = providers.Singleton(SqliteStateStore, settings.provided.state_path)
    inbox: providers.Provider[Inbox] = providers.Singleton(_inbox, settings)
    project_choices = providers.Singleton(
        SqliteProjectChoices, providers.Callable(lambda c: c.data_dir / "project_choices.sqlite3", settings)
    )
    claude = providers.Singleton(ClaudeCliAgent, providers.Callable(_claude_config, settings))
    agent: providers.Provider[AgentRunner] = providers.Singleton(MeteredAgentRunner, inner=claude, metrics=metrics)


class Speech(containers.DeclarativeContainer):
    """Speech to text: the engine STT_PROVIDER names, hearing with the coding vocabulary, metered."""

    config = providers.Configuration()
    settings = providers.Dependency(instance_of=Config)
    metrics = providers.Dependency(instance_of=Metrics)

    audio_limits = providers.Singleton(
        AudioLimits,
        max_bytes=settings.provided.max_audio_bytes,
        max_duration_s=settings.provided.max_audio_seconds,
    )
    engine = providers.Selector(
        config.backend,  # not `config.provider`: that name is a ConfigurationOption attribute
        local=providers.Singleton(
            LocalWhisperTranscriber,
            model=settings.provided.whisper_model,
            limits=audio_limits,
            device=settings.provided.whisper_device,
            compute_type=settings.provided.whisper_compute,
            encoder_windows=providers.Callable(encoder_windows_named, settings.provided.whisper_window),
        ),
        openai=providers.Singleton(
            OpenAITranscriber,
            base_url=settings.provided.openai_stt_base_url,
            model=settings.provided.openai_stt_model,
            api_key=settings.provided.openai_stt_api_key,
            limits=audio_limits,
        ),
        plugin=providers.Singleton(
            load_plugin,
            providers.Factory(
                PluginContext,
                name=settings.provided.stt_backend,
                limits=audio_limits,
                env=settings.provided.stt_plugin_env,
            ),
        ),
        deepgram=providers.Singleton(
            DeepgramTranscriber,
            api_key=settings.provided.deepgram_api_key,
            base_url=settings.provided.deepgram_base_url,
            limits=audio_limits,
        ),
        assemblyai=providers.Singleton(
            _assemblyai_transcriber,
            api_key=settings.provided.assemblyai_api_key,
            base_url=settings.provided.assemblyai_base_url,
            limits=audio_limits,
        ),
    )
    # Every engine, built-in or plug-in, hears with the coding vocabulary and the workspace's spoken names.
    code_aware = providers.Singleton(CodeAwareTranscriber, engine)
    transcriber: providers.Provider[Transcriber] = providers.Singleton(
        MeteredTranscriber, inner=code_aware, metrics=metrics, provider=config.name
    )


class App(containers.DeclarativeContainer):
    """
    The domain: its ports (given by the other containers), its settings, and the `VoiceCoder` facade.

    The ports are typed dependencies (mypy checks what is passed in); `for_tests` and `open_voicecoder` put their
    own in place of the built ones.
    """

    settings = providers.Dependency(instance_of=Config)
    workspace: providers.Dependency[Workspace] = providers.Dependency()
    agent: providers.Dependency[AgentRunner] = providers.Dependency()
    transcriber: providers.Dependency[Transcriber] = providers.Dependency()
    messenger: providers.Dependency[Messenger] = providers.Dependency()
    store: providers.Dependency[StateStore] = providers.Dependency()
    clock: providers.Dependency[Clock] = providers.Dependency()
    scanner: providers.Dependency[SecretScanner] = providers.Dependency()
    vocabulary: providers.Dependency[VocabularySource] = providers.Dependency()
    diagnosables: providers.Dependency[tuple[Diagnosable, ...]] = providers.Dependency()

    ports = providers.Singleton(
        Ports,
        workspace=workspace,
        agent=agent,
        transcriber=transcriber,
        messenger=messenger,
        store=store,
        clock=clock,
        scanner=scanner,
        vocabulary=vocabulary,
        diagnosables=diagnosables,
    )
    domain_settings = providers.Singleton(
        Settings,
        allowed_users=providers.Callable(_user_ids, settings.provided.allowed_user_ids),
        workspace_path=providers.Callable(lambda c: str(Path(c.workspace_dir).resolve()), settings),
        policy=providers.Singleton(ApprovalPolicy, settings.provided.auto_approve_paths),
        compaction_threshold=settings.provided.compaction_threshold,
        tools=providers.Callable(_tool_policy, settings),
        tool_timeout_s=settings.provided.tool_approval_timeout_s,
        # Agent text goes to a chat rendered as HTML: a placeholder without < and >.
        redact=providers.Callable(lambda c: Redactor(c.secrets(), placeholder="[redacted]"), settings),
        error_hint=providers.Object(cli_error_hint),
        max_prompt_age_s=settings.provided.max_prompt_age_s,
    )
    voicecoder = providers.Singleton(VoiceCoder, ports, domain_settings)


class Container(containers.DeclarativeContainer):
    """Everything voicecoder is made of, for one workspace: four nested containers and the ingress around them."""

    config = providers.Configuration()
    settings = providers.Dependency(instance_of=Config)

    core = providers.Container(Core, settings=settings)
    speech = providers.Container(Speech, config=config.stt, settings=settings, metrics=core.metrics)
    telegram = providers.Container(Telegram, config=config.messaging, settings=settings, metrics=core.metrics)
    # What /info and `doctor` check (`open_voicecoder` narrows it to what is in use).
    diagnosables = providers.Callable(
        tuple,
        providers.List(
            providers.Singleton(RuntimeChecks, settings),
            core.workspace,
            core.claude,
            providers.Singleton(NodeRuntime, settings.provided.claude_binary),
            speech.engine,
            core.store,
        ),
    )
    app = providers.Container(
        App,
        settings=settings,
        workspace=core.workspace,
        agent=core.agent,
        transcriber=speech.transcriber,
        messenger=telegram.messenger,
        store=core.store,
        clock=core.clock,
        scanner=core.scanner,
        vocabulary=core.vocabulary,
        diagnosables=diagnosables,
    )

    # --- several projects (PROJECTS): one app per (user, project) workspace, behind a router ------
    project_workspaces = providers.Singleton(
        ProjectWorkspaceSet,
        settings,
        messenger=telegram.messenger,
        transcriber=speech.transcriber,
        clock=core.clock,
        scanner=core.scanner,
        settings=app.domain_settings,
        metrics=core.metrics,
        tool_policy=providers.Object(_tool_policy),
        claude_config=providers.Object(_claude_config),
    )
    router = providers.Singleton(
        ProjectRouter,
        projects=providers.Callable(lambda c: tuple(p.name for p in c.projects), settings),
        workspaces=project_workspaces,
        choices=core.project_choices,
        messenger=telegram.messenger,
        allowed_users=providers.Callable(_user_ids, settings.provided.allowed_user_ids),
        commands=providers.Object(COMMANDS_WITH_PROJECTS),
    )
    #: What the transports drive: `app.voicecoder`, or the router when projects are configured.
    front = providers.Singleton(_front, settings, app.voicecoder.provider, router.provider)
    keep_warm = providers.Callable(_keep_warm, settings, core.claude.provider, project_workspaces.provider)
    bot_commands = providers.Callable(lambda c: BOT_COMMANDS_WITH_PROJECTS if c.projects else BOT_COMMANDS, settings)

    # --- the ingress: updates into the durable inbox, run by the dispatcher ----------------------
    update_handler = providers.Selector(
        config.messaging.transport,
        telegram=providers.Singleton(
            TelegramUpdateHandler,
            front,
            telegram.bot_api,
            max_bytes=settings.provided.max_audio_bytes,
            messenger=telegram.messenger,
        ),
        telethon=providers.Singleton(
            _telethon_update_handler,
            front,
            telegram.telethon_client,
            max_bytes=settings.provided.max_audio_bytes,
            messenger=telegram.messenger,
        ),
    )
    # Metrics are an observer passed in, never hooks patched onto the counters.
    update_observer = providers.Singleton(UpdateMetrics, core.metrics)
    dispatch_stats = providers.Singleton(DispatchStats, observer=update_observer)
    dispatcher = providers.Singleton(
        UpdateDispatcher, core.inbox, update_handler, stats=dispatch_stats, on_stop=front.provided.shutdown
    )
    # `serve --role worker`: one dispatcher per ownership period, on that period's fenced inbox (given at call).
    worker_dispatcher = providers.Factory(
        UpdateDispatcher, handler=update_handler, stats=dispatch_stats, on_stop=front.provided.shutdown
    )
    ingress_stats = providers.Singleton(IngressStats, observer=update_observer)
    webhook_settings = providers.Factory(_webhook_settings, settings)
    telegram_ingress = providers.Singleton(
        TelegramIngress,
        api=telegram.bot_api,
        inbox=core.inbox,
        dispatcher=dispatcher,
        metrics=core.metrics,
        stats=ingress_stats,
        webhook=webhook_settings.provider,
        host=settings.provided.listen_host,
        port=settings.provided.listen_port,
        polling=providers.Callable(lambda c: c.transport == "polling", settings),
        keep_warm=keep_warm,
        commands=bot_commands,
    )
    # `serve --role ingress`: the webhook alone, storing into the shared inbox (no dispatcher, token or workspace).
    stateless_ingress = providers.Singleton(
        StatelessIngress,
        inbox=core.inbox,
        metrics=core.metrics,
        stats=ingress_stats,
        webhook=webhook_settings.provider,
        host=settings.provided.listen_host,
        port=settings.provided.listen_port,
    )
    telethon_ingress = providers.Singleton(
        _telethon_ingress,
        app=front,
        client=telegram.telethon_client,
        messenger=telegram.messenger,
        inbox=core.inbox,
        dispatcher=dispatcher,
        token=providers.Callable(lambda c: c.require_telegram(), settings),
        session=providers.Callable(lambda c: str(c.telethon_session_path), settings),
        max_bytes=settings.provided.max_audio_bytes,
        keep_warm=keep_warm,
    )


def build_container(config: Config) -> Container:
    """
    A container for *config*; adapters are created lazily, on first use, except what must fail at start.

    Raises:
        ConfigurationError: A speech-to-text plug-in cannot be built, or WHISPER_DEVICE=cuda has no usable GPU.
    """
    container = Container()
    container.settings.override(providers.Object(config))
    backend = config.stt_backend if config.stt_backend in BUILTIN_PROVIDERS else "plugin"
    container.config.from_dict(
        {"stt": {"backend": backend, "name": config.stt_backend}, "messaging": {"transport": messaging_of(config)}}
    )
    container.check_dependencies()
    if backend == "local":
        check_device(config.whisper_device, config.whisper_compute)
    elif backend == "plugin":
        container.speech.engine()  # a broken plug-in is a start-up error naming it, not a failure at first use
    return container


__all__ = ["App", "Container", "Core", "Speech", "Telegram", "build_container", "cli_error_hint"]
