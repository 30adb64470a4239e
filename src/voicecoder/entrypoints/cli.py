"""The `voicecoder` command: serve, webhook set|info|delete, doctor, sandbox."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import secrets
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import anyio
import attrs

from voicecoder.adapters.telegram_bot_api import TelegramApiError
from voicecoder.bootstrap import build_container, doctor, open_runtime
from voicecoder.config import TRANSPORTS, Config
from voicecoder.domain.errors import VoicecoderError
from voicecoder.domain.model import Diagnostic
from voicecoder.entrypoints import webhook_admin
from voicecoder.entrypoints.logs import configure_logging

log = logging.getLogger("voicecoder")
_E = TypeVar("_E", bound=BaseException)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicecoder",
        description="Drive Claude Code in a git workspace from Telegram, by voice, with approval before commits.",
    )
    parser.add_argument("--env-file", type=Path, default=Path(".env"), help="optional .env file (default: ./.env)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (webhook server, polling, or Telethon's MTProto)")
    serve.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="how updates arrive (default: TRANSPORT, else webhook); telethon needs API_ID and API_HASH",
    )
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
    sandbox.add_argument(
        "--no-browser", dest="open_browser", action="store_false", help="only print the URL; never open a browser"
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
    if args.transport is not None:
        config = attrs.evolve(config, transport=args.transport)
        config.validate()
    container = build_container(config)
    async with open_runtime(container):
        await serve(container, polling=args.polling, delete_webhook=args.delete_webhook, drop_pending=args.drop_pending)
    return 0


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
        opened = args.open_browser and display_available() and await anyio.to_thread.run_sync(webbrowser.open, info.url)
        banner = f"voicecoder sandbox: {info.url}"
        how = "opened in your browser" if opened else "open this address in your browser"
        _print(
            f"\n  ┌{'─' * (len(banner) + 4)}┐\n  │  {banner}  │\n  └{'─' * (len(banner) + 4)}┘\n"
            f"  {how}\n\n"
            f"  workspace: {info.workspace}\n  agent: {info.agent}\n  speech to text: {info.speech}\n"
            "  Ctrl+C to stop.\n"
        )
    return 0


def display_available() -> bool:
    """Whether a browser could show a window here: a desktop OS, or an X11/Wayland display (not an SSH box)."""
    return sys.platform in {"darwin", "win32"} or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    try:
        config = Config.from_env(env, dotenv=args.env_file)
        configure_logging(fmt=config.log_format, level=config.log_level, secrets=config.secrets())
        if args.command in {"serve", "webhook"}:
            config = stable_webhook_identity(config, env)
            configure_logging(fmt=config.log_format, level=config.log_level, secrets=config.secrets())
        if args.command == "doctor":
            return anyio.run(_doctor, config)
        if args.command == "serve":
            return anyio.run(_serve, config, args)
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


if __name__ == "__main__":
    sys.exit(main())
