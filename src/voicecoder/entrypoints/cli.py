"""The `voicecoder` command: serve, webhook set|info|delete, doctor, sandbox."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import anyio
import attrs

from voicecoder.adapters.telegram_bot_api import TelegramApiError
from voicecoder.bootstrap import build_container, doctor, open_runtime
from voicecoder.config import Config
from voicecoder.domain.errors import ConfigurationError, StateStoreError, VoicecoderError
from voicecoder.domain.model import Diagnostic
from voicecoder.entrypoints import webhook_admin
from voicecoder.entrypoints.logs import configure_logging
from voicecoder.redaction import Redactor

log = logging.getLogger("voicecoder")
_E = TypeVar("_E", bound=BaseException)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicecoder",
        description="Drive Claude Code in a git workspace from Telegram, by voice, with approval before commits.",
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="optional .env file (default: ./.env)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (webhook server, or polling)")
    serve.add_argument("--polling", action="store_true", help="long polling instead of the webhook")
    serve.add_argument("--delete-webhook", action="store_true", help="with --polling: delete a webhook that is set")
    serve.add_argument("--drop-pending", action="store_true", help="with --delete-webhook: drop waiting updates")

    sub.add_parser("doctor", help="check every dependency and say how to fix what is missing")

    sandbox = sub.add_parser("sandbox", help="try voicecoder locally: web chat + embedded Telegram, no token")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument(
        "--dir",
        type=Path,
        default=default_sandbox_dir(),
        help="workspace and data, outside any git repository (default: $XDG_DATA_HOME/voicecoder/sandbox)",
    )
    sandbox.add_argument(
        "--demo-agent", action="store_true", help="run the real CLI against the local fake Anthropic API (offline)"
    )

    webhook_admin.register(sub)
    return parser


def default_sandbox_dir() -> Path:
    """Outside the checkout: the sandbox workspace is a git repository of its own and must not nest in ours."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "voicecoder" / "sandbox"


def stable_webhook_identity(config: Config, env: dict[str, str]) -> Config:
    """
    Keep the webhook path and secret stable across restarts when they are not configured.

    They are generated once and stored in DATA_DIR/webhook.json (mode 0600), so `serve` and `webhook set` agree.
    """
    if env.get("WEBHOOK_PATH") and env.get("WEBHOOK_SECRET"):
        return config
    path = config.data_dir / "webhook.json"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    identity = {
        "path": env.get("WEBHOOK_PATH") or stored.get("path") or "/telegram/" + secrets.token_urlsafe(16),
        "secret": env.get("WEBHOOK_SECRET") or stored.get("secret") or secrets.token_urlsafe(32),
    }
    if identity != stored:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(identity, handle)
    return attrs.evolve(config, webhook_path=identity["path"], webhook_secret=identity["secret"])


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def render_diagnostics(results: Sequence[Diagnostic]) -> str:
    lines = []
    for d in results:
        mark = "⚠️ " if d.warning else ("✅" if d.ok else "❌")
        line = f"{mark} {d.name}: {d.detail}"
        if (not d.ok or d.warning) and d.fix:
            line += f"\n    → {d.fix}"
        lines.append(line)
    return "\n".join(lines)


async def _doctor(config: Config) -> int:
    container = build_container(config)
    async with open_runtime(container):
        results = await doctor(container)
    _print(render_diagnostics(results))
    return 0 if all(d.ok for d in results) else 1


async def _serve(config: Config, args: argparse.Namespace) -> int:
    from voicecoder.entrypoints.server import serve  # noqa: PLC0415 - keeps `doctor` start-up light

    config.require_telegram()
    container = build_container(config)
    async with open_runtime(container):
        await serve(container, polling=args.polling, delete_webhook=args.delete_webhook, drop_pending=args.drop_pending)
    return 0


def serve_failure(error: BaseException, config: Config) -> tuple[str, int]:
    """
    The one line (without the ❌) and the exit code for whatever stopped `serve`: 2 for bad configuration, else 1.

    Task groups wrap what they raise in exception groups: the first real cause inside is reported, never the group.
    """
    leaves = _leaves(error)
    cause = next((e for e in leaves if isinstance(e, VoicecoderError)), None) or next(
        (e for e in leaves if not isinstance(e, KeyboardInterrupt)), leaves[0]
    )
    if isinstance(cause, KeyboardInterrupt):
        return "", 130
    if isinstance(cause, ConfigurationError):
        return str(cause), 2
    if isinstance(cause, TelegramApiError):
        return f"Telegram said: {cause}. Check TELEGRAM_TOKEN and that Telegram is reachable, then start again.", 1
    if isinstance(cause, StateStoreError):
        return f"{cause}. Check that DATA_DIR ({config.data_dir}) is a writable directory on a local disk.", 1
    if isinstance(cause, VoicecoderError):
        return str(cause), 1
    if isinstance(cause, OSError):
        return _os_failure(cause, config), 1
    log.debug("serve stopped on an unexpected error", exc_info=cause)
    line = (
        f"voicecoder stopped on an unexpected error: {type(cause).__name__}: {cause}. Please report it; "
        "LOG_LEVEL=DEBUG shows where it happened."
    )
    return line, 1


def _os_failure(error: OSError, config: Config) -> str:
    reason = error.strerror or str(error)
    if error.filename:
        path = Path(os.fsdecode(error.filename)).absolute()
        for variable, root in (("DATA_DIR", config.data_dir), ("WORKSPACE_DIR", config.workspace_dir)):
            if path.is_relative_to(root.absolute()):
                return f"Cannot use {variable} ({root}): {reason} ({path}). Point {variable} at a writable directory."
        return f"Cannot start: {reason} ({path})."
    return f"Cannot start: {reason}."


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


async def _webhook(config: Config, args: argparse.Namespace) -> int:
    config.require_telegram()
    if getattr(args, "webhook_action", None) == "set":
        if args.url is None:
            if not config.public_url:
                _print("❌ No URL: pass --url or set PUBLIC_URL (and WEBHOOK_PATH) in .env.")
                return 2
            args.url = config.public_url.rstrip("/") + config.webhook_path
        if args.secret_token is None:
            args.secret_token = config.webhook_secret
    container = build_container(config)
    try:
        _print(await webhook_admin.run_webhook_command(args, container.bot_api()))
    finally:
        await container.bot_api().close()
    return 0


def _first_leaf(group: BaseExceptionGroup[_E]) -> _E:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


async def _sandbox(args: argparse.Namespace) -> int:
    problem = ""
    try:
        return await _run_sandbox(args)
    except* OSError as group:
        error = _first_leaf(group)
        problem = f"Could not start the sandbox on {args.host}:{args.port}: {error.strerror}. Try --port <another>."
    except* VoicecoderError as group:
        problem = str(_first_leaf(group))
    _print(f"❌ {problem}")
    return 1


async def _run_sandbox(args: argparse.Namespace) -> int:
    from voicecoder.entrypoints.sandbox import run_sandbox  # noqa: PLC0415 - imports the fakes only when asked

    async with anyio.create_task_group() as tg:
        info = await tg.start(
            functools.partial(run_sandbox, args.dir, host=args.host, port=args.port, demo_agent=args.demo_agent)
        )
        _print(
            f"\n  voicecoder sandbox is running: open {info.url}\n"
            f"  workspace: {info.workspace}\n  agent: {info.agent}\n  speech to text: {info.speech}\n"
            "  Ctrl+C to stop.\n"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    try:
        config = Config.from_env(env, dotenv=args.env_file)
        configure_logging(fmt=config.log_format, level=config.log_level, secrets=config.secrets())
        if args.command == "serve":
            return _run_serve(config, args, env)
        if args.command == "webhook":
            config = stable_webhook_identity(config, env)
            configure_logging(fmt=config.log_format, level=config.log_level, secrets=config.secrets())
        if args.command == "doctor":
            return anyio.run(_doctor, config)
        if args.command == "webhook":
            return anyio.run(_webhook, config, args)
        if args.command == "sandbox":
            return anyio.run(_sandbox, args)
    except TelegramApiError as exc:
        _print(f"❌ Telegram said: {exc}")
        return 1
    except VoicecoderError as exc:
        _print(f"❌ {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _run_serve(config: Config, args: argparse.Namespace, env: dict[str, str]) -> int:
    """`serve` from its first file write to its exit: whatever stops it is one ❌ line (see `serve_failure`)."""
    redact = Redactor(config.secrets())
    try:
        config = stable_webhook_identity(config, env)
        redact = configure_logging(fmt=config.log_format, level=config.log_level, secrets=config.secrets())
        return anyio.run(_serve, config, args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as error:
        line, code = serve_failure(error, config)
    if line:
        _print(f"❌ {redact(line)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
