"""`voicecoder doctor` and /info's process-level checks: look at everything, change nothing."""

from __future__ import annotations

import functools
import importlib.util
import logging
import shutil
import sys
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING

import anyio
import attrs

from voicecoder.adapters.claude_node import NodeRuntime
from voicecoder.adapters.git.provision import shown
from voicecoder.adapters.host_checks import (
    directory_diagnostic,
    is_repository,
    new_workspace_diagnostic,
    sqlite_file_diagnostic,
)
from voicecoder.adapters.sqlite.state_store import SCHEMA_VERSION as STATE_SCHEMA_VERSION
from voicecoder.adapters.stt.local_whisper import LocalWhisperTranscriber, base_weights_dir
from voicecoder.adapters.telegram.webhook_health import expectation, telegram_diagnostics
from voicecoder.bootstrap.runtime import lifetime
from voicecoder.config import Config
from voicecoder.domain.model import Diagnostic
from voicecoder.projects_config import ProjectSpec

if TYPE_CHECKING:
    from voicecoder.bootstrap.container import Container

log = logging.getLogger(__name__)


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
        container.core.claude().diagnose,
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

    # What a check builds (the speech engine's HTTP session, the Bot API client) is closed again.
    async with lifetime(container, speech=True, bot_api=True), anyio.create_task_group() as tg:
        for index in range(len(checks)):
            tg.start_soon(collect, index)
    return [d for group in groups for d in group]


def _project_diagnostic(spec: ProjectSpec) -> Diagnostic:
    """A project's source, looked at without cloning or contacting a remote."""
    name = f"project {spec.name}"
    if spec.path is None:
        return Diagnostic(name, ok=True, detail=f"cloned on first use from {shown(spec.source)}")
    if not is_repository(spec.path):
        return Diagnostic(
            name,
            ok=False,
            detail=f"{spec.path} is not a git repository",
            fix="Fix the project's path in PROJECTS / PROJECTS_FILE, or make it a repository (git init, commit).",
        )
    how = "everyone works in this tree" if spec.shared else "each user works in a clone of it"
    return Diagnostic(name, ok=True, detail=f"git repository at {spec.path}; {how}")


async def _workspace_look(container: Container) -> Sequence[Diagnostic]:
    config = container.settings()
    if config.projects:
        # Several projects: WORKSPACE_DIR is not used; each project's source is what must be right.
        return [_project_diagnostic(spec) for spec in config.projects]
    path = config.workspace_dir
    if is_repository(path):
        found: Sequence[Diagnostic] = await container.core.workspace().diagnose()
        return found
    return [new_workspace_diagnostic(path)]


async def _speech_look(container: Container, *, deep: bool) -> Sequence[Diagnostic]:
    engine = container.speech.engine()
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


__all__ = ["RuntimeChecks", "doctor"]
