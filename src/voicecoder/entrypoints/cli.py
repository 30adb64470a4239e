"""The `voicecoder` command: serve, webhook set|info|delete, doctor, selftest, sandbox."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import webbrowser
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio
import attrs

# Only what every start needs (the parser, the configuration, the failure lines): each command imports the rest of
# the composition root when it runs, so a start that stops at a configuration error loads neither the container
# nor the Bot API client.
from voicecoder.bootstrap.operator import register_operator_commands, run_selftest, telegram_failure_of, webhook_report
from voicecoder.bootstrap.webhook_identity import resolve_webhook_identity
from voicecoder.config import TRANSPORTS, Config
from voicecoder.domain.errors import ConfigurationError, StateStoreError, VoicecoderError
from voicecoder.entrypoints.logs import configure_logging
from voicecoder.redaction import Redactor

if TYPE_CHECKING:
    from voicecoder.domain.model import Diagnostic

log = logging.getLogger("voicecoder")
ROLES = ("all", "ingress", "worker")
_E = TypeVar("_E", bound=BaseException)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicecoder",
        description="Drive Claude Code in a git workspace from Telegram, by voice, with approval before commits.",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="the configuration file (default: ./.env when it exists; a file named here must exist)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bot (webhook server, polling, or Telethon's MTProto)")
    serve.add_argument(
        "--transport",
        choices=TRANSPORTS,
        help="how updates arrive (default: TRANSPORT, else webhook); telethon needs API_ID and API_HASH",
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all (default): one process does everything; ingress: a stateless webhook replica storing updates "
        "in DATABASE_URL; worker: runs the updates of the workspace whose tree is on this host",
    )
    serve.add_argument("--host-id", default=None, help="--role worker: this host's name (default: the hostname)")
    serve.add_argument(
        "--lease-ttl", type=float, default=None, help="--role worker: seconds a workspace lease lasts (default 15)"
    )
    serve.add_argument("--polling", action="store_true", help="long polling instead of the webhook")
    serve.add_argument("--delete-webhook", action="store_true", help="with --polling: delete a webhook that is set")
    serve.add_argument("--drop-pending", action="store_true", help="with --delete-webhook: drop waiting updates")

    doctor_p = sub.add_parser("doctor", help="check every dependency and say how to fix what is missing")
    doctor_p.add_argument(
        "--deep", action="store_true", help="also load the local speech model (slower; may fill its cache)"
    )

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
        "--projects", action="store_true", help="serve two demo projects (shop, blog) that /project switches between"
    )
    sandbox.add_argument(
        "--no-browser", dest="open_browser", action="store_false", help="only print the URL; never open a browser"
    )

    register_operator_commands(sub)
    return parser


def default_sandbox_dir() -> Path:
    """Outside the checkout: the sandbox workspace is a git repository of its own and must not nest in ours."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "voicecoder" / "sandbox"


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


async def _doctor(config: Config, args: argparse.Namespace) -> int:
    from voicecoder.bootstrap import build_container  # noqa: PLC0415 - see the imports
    from voicecoder.bootstrap.doctor import doctor  # noqa: PLC0415

    config = _with_identity(config, create=False)
    results = await doctor(build_container(config), deep=args.deep)
    _print(render_diagnostics(results))
    return 0 if all(d.ok for d in results) else 1


def _with_identity(config: Config, *, create: bool) -> Config:
    """The configuration with its webhook path and secret resolved; the log redactor learns a generated secret."""
    resolved = resolve_webhook_identity(config, create=create)
    if resolved is not config:
        configure_logging(fmt=resolved.log_format, level=resolved.log_level, secrets=resolved.secrets())
    return resolved


async def _serve(config: Config, args: argparse.Namespace) -> int:
    from voicecoder.bootstrap import build_container, open_runtime  # noqa: PLC0415 - see the imports
    from voicecoder.entrypoints.gc_tuning import settle_heap  # noqa: PLC0415
    from voicecoder.entrypoints.server import serve  # noqa: PLC0415 - keeps `doctor` start-up light

    config.require_users()
    config.require_telegram()
    container = build_container(config)
    async with open_runtime(container):
        settle_heap()  # the process is ours: start-up is done, so tune the collector for serving (gc_tuning)
        await serve(container, polling=args.polling, delete_webhook=args.delete_webhook, drop_pending=args.drop_pending)
    return 0


async def _serve_ingress(config: Config) -> int:
    from voicecoder.bootstrap import build_container  # noqa: PLC0415 - see the imports
    from voicecoder.entrypoints.server import serve_ingress  # noqa: PLC0415

    await serve_ingress(build_container(config))
    return 0


async def _serve_worker(config: Config, args: argparse.Namespace) -> int:
    from voicecoder.bootstrap import build_container  # noqa: PLC0415 - see the imports
    from voicecoder.bootstrap.cluster import DEFAULT_LEASE_TTL_S, default_host_id  # noqa: PLC0415
    from voicecoder.entrypoints.server import serve_worker  # noqa: PLC0415

    config.require_users()
    config.require_telegram()
    host = args.host_id or default_host_id()
    await serve_worker(build_container(config), host=host, ttl_s=args.lease_ttl or DEFAULT_LEASE_TTL_S)
    return 0


def _ingress_config(config: Config) -> Config:
    """
    The configuration of an ingress replica: DATABASE_URL and a webhook identity every replica shares.

    Raises:
        ConfigurationError: Either is missing (a generated identity would differ between replicas).
    """
    config.require_cluster("ingress")
    if config.webhook_path is None or config.webhook_secret is None:
        raise ConfigurationError(
            "`voicecoder serve --role ingress` needs WEBHOOK_PATH and WEBHOOK_SECRET, the same on every replica "
            "(and in `voicecoder webhook set`): a replica cannot generate its own, since Telegram sends every "
            "update with one secret to one URL."
        )
    return config


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
    if telegram_failure_of(cause) is not None:
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
    action = args.webhook_action
    config = _with_identity(config, create=action == "set")
    foreign_secret = False
    if action == "set":
        if args.url is None:
            if not config.webhook_url:
                _print("❌ No URL: set PUBLIC_URL in the configuration (e.g. https://bot.example.org) or pass --url.")
                return 2
            args.url = config.webhook_url
        foreign_secret = args.secret_token is not None and args.secret_token != config.webhook_secret
        if args.secret_token is None:
            args.secret_token = config.webhook_secret
        if args.ip_address is None:
            args.ip_address = config.webhook_ip_address
    report = await webhook_report(config, args, foreign_secret=foreign_secret)
    _print(str(report))
    return 0 if report.ok else 1


async def _selftest(config: Config, args: argparse.Namespace) -> int:
    config = _with_identity(config, create=False)
    return await run_selftest(config, args, print_line=_print)


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
            functools.partial(
                run_sandbox,
                args.dir,
                host=args.host,
                port=args.port,
                demo_agent=args.demo_agent,
                projects=args.projects,
            )
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
    try:
        config = Config.from_env(dict(os.environ), dotenv=args.env_file or Path(".env"), required=bool(args.env_file))
        configure_logging(fmt=config.log_format, level=config.log_level, secrets=config.secrets())
        if args.command == "doctor":
            return anyio.run(_doctor, config, args)
        if args.command == "serve":
            return _run_serve(config, args)
        if args.command == "webhook":
            return anyio.run(_webhook, config, args)
        if args.command == "sandbox":
            return anyio.run(_sandbox, args)
        if args.command == "selftest":
            return anyio.run(_selftest, config, args)
    except VoicecoderError as exc:
        failure = telegram_failure_of(exc)
        _print(f"❌ {failure or exc}")
        return 1 if failure is not None else 2
    except KeyboardInterrupt:
        return 130
    return 2


def _run_serve(config: Config, args: argparse.Namespace) -> int:
    """`serve` from its first file write to its exit: whatever stops it is one ❌ line (see `serve_failure`)."""
    redact = Redactor(config.secrets())
    try:
        if args.transport is not None:
            config = attrs.evolve(config, transport=args.transport)
            config.validate()
        if args.role == "ingress":
            return anyio.run(_serve_ingress, _ingress_config(config))
        if args.role == "worker":
            config.require_cluster("worker")
            return anyio.run(_serve_worker, config, args)
        webhook = config.transport == "webhook" and not args.polling
        config = _with_identity(config, create=webhook)
        redact = Redactor(config.secrets())
        return anyio.run(_serve, config, args)
    except (Exception, KeyboardInterrupt, BaseExceptionGroup) as error:
        line, code = serve_failure(error, config)
    if line:
        _print(f"❌ {redact(line)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
