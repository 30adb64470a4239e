"""
The composition root: the one dependency-injector container, and the async lifetime around it.

This is the only module that imports adapters. Providers are synchronous; the entrypoint owns async lifetimes
(`open_runtime`): it opens the databases and the workspace and closes HTTP sessions on the way out.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import attrs
from dependency_injector import containers, providers

from voicecoder.adapters.claude import ClaudeCliAgent, ClaudeCliConfig, hide_own_environment
from voicecoder.adapters.claude_node import NodeRuntime
from voicecoder.adapters.detect_secrets_scanner import DetectSecretsScanner
from voicecoder.adapters.git import DulwichWorkspace
from voicecoder.adapters.host_checks import (
    directory_diagnostic,
    is_repository,
    new_workspace_diagnostic,
    sqlite_file_diagnostic,
)
from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics
from voicecoder.adapters.sqlite_inbox import SqliteInbox
from voicecoder.adapters.sqlite_state_store import SCHEMA_VERSION as STATE_SCHEMA_VERSION
from voicecoder.adapters.sqlite_state_store import SqliteStateStore
from voicecoder.adapters.stt.audio_intake import AudioLimits
from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber
from voicecoder.adapters.stt.deepgram import DeepgramTranscriber
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber, base_weights_dir, check_device
from voicecoder.adapters.stt.openai_compatible import OpenAITranscriber
from voicecoder.adapters.stt.plugins import BUILTIN_PROVIDERS, PluginContext, load_plugin
from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary
from voicecoder.adapters.system_clock import SystemClock
from voicecoder.adapters.telegram_bot_api import TelegramBotApi
from voicecoder.adapters.telegram_messenger import TelegramMessenger
from voicecoder.adapters.telegram_updates import TelegramUpdateHandler
from voicecoder.adapters.telegram_webhook_health import expectation, telegram_diagnostics
from voicecoder.adapters.update_dispatcher import DispatchStats, UpdateDispatcher
from voicecoder.config import Config
from voicecoder.domain.errors import (
    AgentNotInstalledError,
    AgentTimeoutError,
    ConfigurationError,
    ProviderAuthError,
    VoicecoderError,
)
from voicecoder.domain.model import Diagnostic, UserId
from voicecoder.domain.policy import ApprovalPolicy, ToolApprovalMode, ToolPolicy
from voicecoder.domain.ports import AgentRunner, Diagnosable, Messenger, StateStore, Transcriber, Workspace
from voicecoder.domain.services import Ports, Settings, VoiceCoder
from voicecoder.redaction import Redactor

log = logging.getLogger(__name__)

# A token-shaped placeholder so the Bot API client can be built where Telegram is not configured
# (doctor, tests); any real call with it fails with 401 and says so.
_NO_TOKEN = "0000000:not-configured-set-TELEGRAM_TOKEN-in-env"  # noqa: S105 - a placeholder, not a secret


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


def _telethon_client(config: Config) -> Any:
    """The standalone bot's own ``TelegramClient`` (not connected yet; `voicecoder serve` logs it in)."""
    try:
        from voicecoder.adapters.telethon.session import bot_client, bot_session  # noqa: PLC0415 - optional extra
    except ImportError:
        raise ConfigurationError(
            "TRANSPORT=telethon needs Telethon: install voicecoder with its telethon extra "
            "(pip install 'voicecoder[telethon]')."
        ) from None
    api_id, api_hash = config.require_mtproto()
    path = config.telethon_session_path
    try:
        session = bot_session(path, config.telethon_session_string)
    except ValueError as exc:
        raise ConfigurationError(
            f"TELETHON_SESSION_STRING is not usable ({exc}). Export one with Telethon's StringSession, or unset it "
            "to log in with TELEGRAM_TOKEN."
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"The Telethon session file {path} cannot be created ({exc.strerror}): fix TELETHON_SESSION or DATA_DIR."
        ) from None
    return bot_client(session, api_id, api_hash)


def _telethon_messenger(client: Any) -> Messenger:
    from voicecoder.adapters.telethon import TelethonMessenger  # noqa: PLC0415 - optional extra

    return TelethonMessenger(client)


def _telethon_update_handler(
    app: VoiceCoder, client: Any, *, messenger: Messenger, max_bytes: int
) -> Callable[[dict[str, Any]], Awaitable[None]]:
    from voicecoder.adapters.telethon import TelethonUpdateHandler  # noqa: PLC0415 - optional extra

    return TelethonUpdateHandler(app, client, messenger=messenger, max_bytes=max_bytes)


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


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@attrs.frozen
class RuntimeChecks:
    """
    The process-level facts of /info and `voicecoder doctor`: Python, data dir, Telegram, users, webhook.

    Only looks: the data dir is checked for being writable (or creatable), never created; Telegram is asked once
    each with a short timeout, so a dead network shows as such within seconds instead of as a bad token.
    """

    config: Config
    online: bool = True

    async def diagnose(self) -> list[Diagnostic]:
        config = self.config
        results = [
            Diagnostic(
                "python",
                ok=sys.version_info >= (3, 11),
                detail=f"{sys.version.split()[0]} · voicecoder {_version('voicecoder')}, "
                f"aiohttp {_version('aiohttp')}, dulwich {_version('dulwich')}, "
                f"faster-whisper {_version('faster-whisper')}, assemblyai {_version('assemblyai')}",
                fix="use Python 3.11 or newer",
            ),
            directory_diagnostic("data dir", config.data_dir, variable="DATA_DIR"),
            Diagnostic(
                "telegram token",
                ok=config.telegram_token is not None,
                detail="set" if config.telegram_token else "TELEGRAM_TOKEN is not set",
                fix="create a bot with @BotFather and put TELEGRAM_TOKEN in .env (or try `voicecoder sandbox`)",
            ),
            _users_check(config),
        ]
        if config.transport == "telethon":
            results.append(_mtproto_check(config))
        elif self.online and config.telegram_token:
            expected = await expectation(
                transport=config.transport, url=config.webhook_url, fixed_ip=config.webhook_ip_address
            )
            results.extend(
                await telegram_diagnostics(config.telegram_token, base_url=config.telegram_api_base, expected=expected)
            )
        if shutil.which("git") is None:
            results.append(
                Diagnostic("git CLI", ok=True, warning=True, detail="not installed (optional: voicecoder uses dulwich)")
            )
        return results


def _users_check(config: Config) -> Diagnostic:
    if config.allowed_user_ids:
        return Diagnostic("allowed users", ok=True, detail=f"{len(config.allowed_user_ids)} user(s)")
    return Diagnostic(
        "allowed users",
        ok=config.allow_nobody,
        warning=config.allow_nobody,
        detail="nobody is allowed" + (" (ALLOW_NOBODY=1)" if config.allow_nobody else "; `serve` refuses to start"),
        fix="set ALLOWED_USER_IDS to your numeric Telegram id (ask @userinfobot)",
    )


async def doctor(container: Container, *, deep: bool = False) -> list[Diagnostic]:
    """
    What `voicecoder doctor` reports: the checks /info shows, run concurrently, changing nothing.

    Where an adapter's own check would create what it checks (the workspace's `git init`, the databases, the
    joined speech weights), a look-only check says what the first start will do instead. *deep* also loads the
    local speech model (seconds, and it may join the weights into the cache).
    """
    config = container.settings()
    checks: list[Callable[[], Awaitable[Sequence[Diagnostic]]]] = [
        RuntimeChecks(config).diagnose,
        functools.partial(_workspace_look, container),
        container.claude().diagnose,
        NodeRuntime(config.claude_binary).diagnose,
        functools.partial(_speech_look, container, deep=deep),
        functools.partial(_state_look, config),
    ]
    groups: list[Sequence[Diagnostic]] = [() for _ in checks]

    async def collect(index: int) -> None:
        try:
            groups[index] = await checks[index]()
        except Exception as exc:  # a broken check must not hide the others
            log.exception("doctor: a check failed")
            groups[index] = [Diagnostic("check", ok=False, detail=f"failed: {type(exc).__name__}: {exc}")]

    async with anyio.create_task_group() as tg:
        for index in range(len(checks)):
            tg.start_soon(collect, index)
    return [d for group in groups for d in group]


async def _workspace_look(container: Container) -> Sequence[Diagnostic]:
    path = container.settings().workspace_dir
    if is_repository(path):
        return await container.workspace().diagnose()
    return [new_workspace_diagnostic(path)]


async def _speech_look(container: Container, *, deep: bool) -> Sequence[Diagnostic]:
    engine = container.speech_engine()
    if isinstance(engine, LocalWhisperTranscriber) and not deep:
        # Loading the model takes one to three seconds and joining the base weights writes ~150 MB into the
        # cache: the first voice note (or `doctor --deep`) does that, a quick look does not.
        if importlib.util.find_spec("faster_whisper") is None:
            return [
                Diagnostic(
                    "whisper model",
                    ok=False,
                    detail="faster-whisper is not installed",
                    fix="install voicecoder with the local-stt extra, or choose a cloud STT_PROVIDER",
                )
            ]
        if engine.model != "base":
            return [Diagnostic("whisper model", ok=True, detail=f"{engine.model}: loaded and checked at first use")]
        weights = base_weights_dir(engine.cache_dir)
        if weights.is_dir():
            detail = f"base at {weights}: hash-checked and loaded at first use (`doctor --deep` loads it now)"
            return [Diagnostic("whisper weights", ok=True, detail=detail)]
        where = directory_diagnostic("whisper cache", weights, variable="XDG_CACHE_HOME")
        if not where.ok:
            return [where]
        detail = f"base is joined from the installed weight packages into {weights} on first use"
        return [Diagnostic("whisper weights", ok=True, detail=detail)]
    found: Sequence[Diagnostic] = await engine.diagnose()
    return found


async def _state_look(config: Config) -> Sequence[Diagnostic]:
    return [sqlite_file_diagnostic("state store", config.state_path, schema_version=STATE_SCHEMA_VERSION)]


def _mtproto_check(config: Config) -> Diagnostic:
    missing = [name for name, value in (("API_ID", config.api_id), ("API_HASH", config.api_hash)) if value is None]
    return Diagnostic(
        "mtproto",
        ok=not missing,
        detail=f"{' and '.join(missing)} not set" if missing else f"session {config.telethon_session_path}",
        fix="create an application at https://my.telegram.org (API development tools) and put its api_id and "
        "api_hash in API_ID and API_HASH",
    )


class Container(containers.DeclarativeContainer):
    """Everything voicecoder is made of, for one workspace."""

    config = providers.Configuration()
    settings = providers.Dependency(instance_of=Config)

    clock = providers.Singleton(SystemClock)
    metrics = providers.Singleton(Metrics)
    audio_limits = providers.Singleton(
        AudioLimits,
        max_bytes=settings.provided.max_audio_bytes,
        max_duration_s=settings.provided.max_audio_seconds,
    )

    workspace = providers.Singleton(DulwichWorkspace, settings.provided.workspace_dir)
    scanner = providers.Singleton(DetectSecretsScanner)
    vocabulary = providers.Singleton(WorkspaceVocabulary, settings.provided.workspace_dir)
    store = providers.Singleton(SqliteStateStore, settings.provided.state_path)
    inbox = providers.Singleton(SqliteInbox, settings.provided.inbox_path)

    claude = providers.Singleton(ClaudeCliAgent, providers.Callable(_claude_config, settings))
    agent: providers.Provider[AgentRunner] = providers.Singleton(MeteredAgentRunner, inner=claude, metrics=metrics)

    speech_engine = providers.Selector(
        config.stt.backend,  # not `config.stt.provider`: that name is a ConfigurationOption attribute
        local=providers.Singleton(
            LocalWhisperTranscriber,
            model=settings.provided.whisper_model,
            limits=audio_limits,
            device=settings.provided.whisper_device,
            compute_type=settings.provided.whisper_compute,
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
    code_aware = providers.Singleton(CodeAwareTranscriber, speech_engine)
    transcriber: providers.Provider[Transcriber] = providers.Singleton(
        MeteredTranscriber, inner=code_aware, metrics=metrics, provider=config.stt.name
    )

    bot_api = providers.Singleton(
        TelegramBotApi,
        providers.Callable(lambda c: c.telegram_token or _NO_TOKEN, settings),
        base_url=settings.provided.telegram_api_base,
        on_error=metrics.provided.count_telegram_error,
        secrets=providers.Callable(lambda c: c.secrets(), settings),
    )
    telethon_client = providers.Singleton(_telethon_client, settings)
    messenger = providers.Selector(
        config.messaging.transport,
        telegram=providers.Singleton(TelegramMessenger, bot_api),
        telethon=providers.Singleton(_telethon_messenger, telethon_client),
    )

    diagnosables = providers.Callable(
        tuple,
        providers.List(
            providers.Singleton(RuntimeChecks, settings),
            workspace,
            claude,
            providers.Singleton(NodeRuntime, settings.provided.claude_binary),
            speech_engine,
            store,
        ),
    )
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

    update_handler = providers.Selector(
        config.messaging.transport,
        telegram=providers.Singleton(
            TelegramUpdateHandler,
            voicecoder,
            bot_api,
            max_bytes=settings.provided.max_audio_bytes,
            messenger=messenger,
        ),
        telethon=providers.Singleton(
            _telethon_update_handler,
            voicecoder,
            telethon_client,
            max_bytes=settings.provided.max_audio_bytes,
            messenger=messenger,
        ),
    )
    dispatch_stats = providers.Singleton(DispatchStats)
    dispatcher = providers.Singleton(
        UpdateDispatcher, inbox, update_handler, stats=dispatch_stats, on_stop=voicecoder.provided.shutdown
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
    messaging = "telethon" if config.transport == "telethon" else "telegram"
    container.config.from_dict(
        {"stt": {"backend": backend, "name": config.stt_backend}, "messaging": {"transport": messaging}}
    )
    container.check_dependencies()
    if backend == "local":
        check_device(config.whisper_device, config.whisper_compute)
    elif backend == "plugin":
        container.speech_engine()  # a broken plug-in is a start-up error naming it, not a failure at first use
    return container


@contextlib.asynccontextmanager
async def open_runtime(container: Container, *, inbox: bool = True) -> AsyncIterator[Container]:
    """
    Open the state database, the workspace and (unless *inbox* is False) the webhook inbox; close all on exit.

    HTTP sessions and the speech engine are closed on exit as well.

    Raises:
        StateStoreError: A database cannot be opened.
        WorkspaceError: The workspace cannot be opened or created.
    """
    config = container.settings()
    hide_own_environment()  # the agent runs as this user: keep /proc/<pid>/environ (the token, …) from it
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = container.store()
    await store.open()
    closers = [container.bot_api().close, store.close]
    try:
        if inbox:
            await container.inbox().open()
            closers.insert(1, container.inbox().aclose)
        await container.workspace().open()
        yield container
    finally:
        # Warm agent processes (and whatever they started) never outlive the runtime.
        with anyio.CancelScope(shield=True):
            await container.claude().aclose()
        for closer in closers:
            try:
                await closer()
            except Exception:
                log.exception("shutdown: closing failed")
        engine = container.speech_engine()
        aclose = getattr(engine, "aclose", None)
        if aclose is not None:
            await aclose()


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
        container.workspace.override(providers.Object(workspace))
    if store is not None:
        container.store.override(providers.Object(store))
    container.messenger.override(providers.Object(messenger))
    chosen_agent: AgentRunner = agent if agent is not None else container.claude()
    chosen_transcriber: Transcriber = transcriber if transcriber is not None else container.speech_engine()
    if metrics is not None:
        chosen_agent = MeteredAgentRunner(inner=chosen_agent, metrics=metrics)
        chosen_transcriber = MeteredTranscriber(inner=chosen_transcriber, metrics=metrics, provider="embedded")
    container.agent.override(providers.Object(chosen_agent))
    container.transcriber.override(providers.Object(chosen_transcriber))
    # /info checks what is in use; never the Telegram token or webhook of the standalone bot.
    in_use = (
        container.workspace(),
        agent if agent is not None else container.claude(),
        transcriber if transcriber is not None else container.speech_engine(),
        container.store(),
    )
    container.diagnosables.override(providers.Object(tuple(d for d in in_use if isinstance(d, Diagnosable))))
    if settings is None:
        settings = Settings(
            allowed_users=_user_ids(config.allowed_user_ids),
            workspace_path=str(workspace_dir.resolve()),
            # The default agent asks before commands: the questions go to your messenger.
            tools=_tool_policy(config),
        )
    container.domain_settings.override(providers.Object(settings))

    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        if store is None:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            await container.store().open()
            closers.append(container.store().close)
        if owned_workspace:
            await container.workspace().open()
        if transcriber is None:
            engine = container.speech_engine()
            aclose = getattr(engine, "aclose", None)
            if aclose is not None:
                closers.append(aclose)
        yield container.voicecoder()
    finally:
        if agent is None:
            with anyio.CancelScope(shield=True):
                await container.claude().aclose()
        for closer in reversed(closers):
            try:
                await closer()
            except Exception:
                log.exception("shutdown: closing failed")


__all__ = ["Container", "build_container", "cli_error_hint", "doctor", "open_runtime", "open_voicecoder"]
