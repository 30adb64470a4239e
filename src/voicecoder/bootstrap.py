"""
The composition root: the one dependency-injector container, and the async lifetime around it.

This is the only module that imports adapters. Providers are synchronous; the entrypoint owns async lifetimes
(`open_runtime`): it opens the databases and the workspace and closes HTTP sessions on the way out.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import attrs
from dependency_injector import containers, providers

from voicecoder.adapters.claude_cli_agent import ClaudeCliAgent, ClaudeCliConfig
from voicecoder.adapters.detect_secrets_scanner import DetectSecretsScanner
from voicecoder.adapters.dulwich_workspace import DulwichWorkspace
from voicecoder.adapters.prometheus_metrics import MeteredAgentRunner, MeteredTranscriber, Metrics
from voicecoder.adapters.sqlite_inbox import SqliteInbox
from voicecoder.adapters.sqlite_state_store import SqliteStateStore
from voicecoder.adapters.stt.assemblyai import AssemblyAITranscriber
from voicecoder.adapters.stt.audio_intake import AudioLimits
from voicecoder.adapters.stt.code_aware import CodeAwareTranscriber
from voicecoder.adapters.stt.deepgram import DeepgramTranscriber
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber, check_device
from voicecoder.adapters.stt.openai_compatible import OpenAITranscriber
from voicecoder.adapters.stt.plugins import BUILTIN_PROVIDERS, PluginContext, load_plugin
from voicecoder.adapters.stt.vocabulary import WorkspaceVocabulary
from voicecoder.adapters.system_clock import SystemClock
from voicecoder.adapters.telegram_bot_api import TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram_messenger import TelegramMessenger
from voicecoder.adapters.telegram_updates import TelegramUpdateHandler
from voicecoder.adapters.update_dispatcher import DispatchStats, UpdateDispatcher
from voicecoder.config import Config
from voicecoder.domain.model import Diagnostic, UserId
from voicecoder.domain.policy import ApprovalPolicy
from voicecoder.domain.ports import AgentRunner, Transcriber
from voicecoder.domain.services import Ports, Settings, VoiceCoder

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
        permission_mode=config.claude_permission_mode,
        max_turns=config.claude_max_turns,
        timeout_s=config.claude_timeout_s,
        config_dir=config.claude_config_dir.resolve() if config.claude_config_dir else None,
        extra_env=dict(config.claude_env),
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


@attrs.frozen
class RuntimeChecks:
    """The process-level facts of /info and `voicecoder doctor`: Python, packages, data dir, Telegram, webhook."""

    config: Config
    bot_api: TelegramBotApi
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
            _data_dir_check(config.data_dir),
            Diagnostic(
                "telegram token",
                ok=config.telegram_token is not None,
                detail="set" if config.telegram_token else "TELEGRAM_TOKEN is not set",
                fix="create a bot with @BotFather and put TELEGRAM_TOKEN in .env (or try `voicecoder sandbox`)",
            ),
            Diagnostic(
                "allowed users",
                ok=bool(config.allowed_user_ids),
                detail=f"{len(config.allowed_user_ids)} user(s)" if config.allowed_user_ids else "nobody is allowed",
                fix="set ALLOWED_USER_IDS to your numeric Telegram id (ask @userinfobot)",
            ),
        ]
        if self.online and config.telegram_token:
            results.append(await _webhook_check(config, self.bot_api))
        if shutil.which("git") is None:
            results.append(
                Diagnostic("git CLI", ok=True, warning=True, detail="not installed (optional: voicecoder uses dulwich)")
            )
        return results


async def doctor(container: Container) -> list[Diagnostic]:
    """Every fact `voicecoder doctor` reports: the same list /info shows in the chat."""
    return await container.voicecoder().diagnose()


def _data_dir_check(path: Path) -> Diagnostic:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Diagnostic(
            "data dir", ok=False, detail=f"{path} is not writable ({exc.strerror})", fix="fix DATA_DIR or its owner"
        )
    return Diagnostic("data dir", ok=True, detail=f"{path.resolve()} is writable")


async def _webhook_check(config: Config, bot_api: TelegramBotApi) -> Diagnostic:
    try:
        info = await bot_api.get_webhook_info()
    except TelegramApiError as exc:
        return Diagnostic("webhook", ok=False, detail=f"getWebhookInfo failed: {exc}", fix="check TELEGRAM_TOKEN")
    except Exception as exc:
        return Diagnostic("webhook", ok=False, detail=f"Telegram unreachable: {type(exc).__name__}", fix="check DNS")
    if not info.url:
        ok = config.transport == "polling"
        return Diagnostic(
            "webhook",
            ok=ok,
            detail="no webhook set (polling mode)" if ok else "no webhook set",
            fix=None if ok else "run `voicecoder webhook set` (needs PUBLIC_URL)",
        )
    detail = f"set, {info.pending_update_count} pending"
    if info.last_error_message:
        detail += f", last error: {info.last_error_message}"
        return Diagnostic("webhook", ok=False, detail=detail, fix="see docs/WEBHOOK.md#5-troubleshoot")
    return Diagnostic("webhook", ok=True, detail=detail)


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
            AssemblyAITranscriber,
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
    )
    messenger = providers.Selector(
        config.messaging.transport,
        telegram=providers.Singleton(TelegramMessenger, bot_api),
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
        diagnosables=providers.Callable(
            tuple,
            providers.List(
                providers.Singleton(RuntimeChecks, settings, bot_api), workspace, claude, speech_engine, store
            ),
        ),
    )
    domain_settings = providers.Singleton(
        Settings,
        allowed_users=providers.Callable(_user_ids, settings.provided.allowed_user_ids),
        workspace_path=providers.Callable(lambda c: str(Path(c.workspace_dir).resolve()), settings),
        policy=providers.Singleton(ApprovalPolicy, settings.provided.auto_approve_paths),
        compaction_threshold=settings.provided.compaction_threshold,
    )
    voicecoder = providers.Singleton(VoiceCoder, ports, domain_settings)

    update_handler = providers.Singleton(
        TelegramUpdateHandler,
        voicecoder,
        bot_api,
        max_bytes=settings.provided.max_audio_bytes,
        messenger=messenger,
    )
    dispatch_stats = providers.Singleton(DispatchStats)
    dispatcher = providers.Singleton(UpdateDispatcher, inbox, update_handler, stats=dispatch_stats)


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
        {"stt": {"backend": backend, "name": config.stt_backend}, "messaging": {"transport": "telegram"}}
    )
    container.check_dependencies()
    if backend == "local":
        check_device(config.whisper_device, config.whisper_compute)
    elif backend == "plugin":
        container.speech_engine()  # a broken plug-in is a start-up error naming it, not a failure at first use
    return container


@contextlib.asynccontextmanager
async def open_runtime(container: Container) -> AsyncIterator[Container]:
    """Open what needs opening (databases, workspace) and close HTTP sessions and files on exit."""
    config = container.settings()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = container.store()
    inbox = container.inbox()
    await store.open()
    await inbox.open()
    await container.workspace().open()
    try:
        yield container
    finally:
        for closer in (container.bot_api().close, inbox.aclose, store.close):
            try:
                await closer()
            except Exception:
                log.exception("shutdown: closing failed")
        engine = container.speech_engine()
        aclose = getattr(engine, "aclose", None)
        if aclose is not None:
            await aclose()


__all__ = ["Container", "build_container", "doctor", "open_runtime"]
