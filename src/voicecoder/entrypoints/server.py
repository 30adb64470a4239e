"""
`voicecoder serve`: the webhook server, polling, or MTProto via Telethon, wired from the container.

The webhook and polling listen on LISTEN_HOST:LISTEN_PORT (polling for /healthz, /readyz and /metrics only), so a
container health check and a scraper work the same way in either mode; the Telethon transport has no HTTP server.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import anyio
import anyio.abc
from aiohttp import web

from voicecoder.adapters.prometheus_metrics import CONTENT_TYPE, Metrics
from voicecoder.adapters.sqlite_inbox import InboxItem, SqliteInbox
from voicecoder.adapters.telegram_bot_api import TelegramApiError
from voicecoder.adapters.telegram_updates import BOT_COMMANDS, lane_of
from voicecoder.adapters.telegram_webhook_health import poll_pending_updates
from voicecoder.adapters.update_dispatcher import DispatchStats
from voicecoder.bootstrap import Container
from voicecoder.entrypoints.polling import run_polling
from voicecoder.entrypoints.webhook import TELEGRAM_NETWORKS, IngressStats, WebhookSettings, serve_webhook

log = logging.getLogger("voicecoder.updates")


def wire_update_metrics(stats: DispatchStats, metrics: Metrics) -> None:
    """One log line per update with its outcome and duration, mirrored into Prometheus."""

    def processed(lane: str, seconds: float) -> None:
        metrics.updates.labels("processed").inc()
        log.info("update processed lane=%s duration_ms=%.1f", lane, seconds * 1000)

    def failed(item: InboxItem, error: str) -> None:
        metrics.updates.labels("failed").inc()
        log.error("update %s failed for good lane=%s: %s", item.update_id, item.lane, error)

    def retried(item: InboxItem, error: str) -> None:
        metrics.updates.labels("retried").inc()
        log.warning("update %s will be retried lane=%s: %s", item.update_id, item.lane, error)

    stats.on_processed = processed
    stats.on_attempt = metrics.processing_seconds.observe
    stats.on_failed = failed
    stats.on_retry = retried


def ingress_stats(metrics: Metrics) -> IngressStats:
    """Outcome counters of the webhook or the poller (acked, duplicate, ignored, rejected), mirrored into Prometheus."""

    def count(outcome: str) -> None:
        metrics.updates.labels(outcome).inc()

    return IngressStats(on_outcome=count)


def metrics_route(metrics: Metrics, inbox: SqliteInbox) -> Callable[[web.Application], None]:
    """Adds ``/metrics`` to the webhook app (or polling's health app) and counts the webhook's outcomes."""

    async def handle(_request: web.Request) -> web.Response:
        metrics.inbox_depth.set(await inbox.depth())
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def configure(app: web.Application) -> None:
        app.router.add_get("/metrics", handle)

    return configure


def webhook_settings(container: Container) -> WebhookSettings:
    config = container.settings()
    path, secret = config.require_webhook_identity()
    return WebhookSettings(
        secret_token=secret,
        path=path,
        allowed_networks=TELEGRAM_NETWORKS if config.webhook_ip_allowlist else (),
        trusted_proxies=config.trusted_proxies,
    )


async def announce_commands(container: Container) -> None:
    """Publish the command menu: cosmetic, so one try, and a failure is one warning (the bot works without it)."""
    try:
        await container.bot_api().set_my_commands(BOT_COMMANDS, attempts=1)
    except TelegramApiError as exc:
        logging.getLogger(__name__).warning("setMyCommands failed (the command menu stays as it was): %s", exc)


async def serve(
    container: Container,
    *,
    polling: bool = False,
    delete_webhook: bool = False,
    drop_pending: bool = False,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Run until SIGTERM/SIGINT (or *stop*); the container's runtime must be open.

    *task_status* gets the webhook's bound port (webhook mode only).

    Raises:
        StartupError: The listen address cannot be bound, or (polling) a webhook is set.
        ConfigurationError: (polling) Telegram rejected the token.
    """
    config = container.settings()
    metrics = container.metrics()
    wire_update_metrics(container.dispatch_stats(), metrics)
    if config.transport == "telethon" and not polling:
        from voicecoder.entrypoints.telethon_serve import serve_telethon  # noqa: PLC0415 - the telethon extra

        await serve_telethon(container, stop=stop, handle_signals=handle_signals, task_status=task_status)
        return
    async with anyio.create_task_group() as tg:
        # The command menu is cosmetic: never let an unreachable Telegram delay taking updates.
        tg.start_soon(announce_commands, container)
        # Telegram's own backlog, as a gauge: deliveries failing or a dead poller show up as a growing number.
        tg.start_soon(
            functools.partial(poll_pending_updates, container.bot_api(), metrics.telegram_pending.set, every_s=60.0)
        )
        # Idle warm agent processes are closed after CLAUDE_KEEP_WARM seconds.
        await tg.start(container.claude().keep_warm)
        if polling or config.transport == "polling":
            # /healthz must mean "alive" in both modes: health checks outlive a rollback to polling, so
            # polling serves /healthz, /readyz (with a Telegram check) and /metrics on LISTEN_PORT too.
            await run_polling(
                container.bot_api(),
                inbox=container.inbox(),
                dispatcher=container.dispatcher(),
                lane_of=lane_of,
                delete_webhook=delete_webhook,
                drop_pending=drop_pending,
                stop=stop,
                handle_signals=handle_signals,
                stats=ingress_stats(metrics),
                health=(config.listen_host, config.listen_port),
                configure_app=metrics_route(metrics, container.inbox()),
            )
        else:
            await serve_webhook(
                webhook_settings(container),
                inbox=container.inbox(),
                dispatcher=container.dispatcher(),
                lane_of=lane_of,
                host=config.listen_host,
                port=config.listen_port,
                stop=stop,
                handle_signals=handle_signals,
                configure_app=metrics_route(metrics, container.inbox()),
                stats=ingress_stats(metrics),
                task_status=task_status,
            )
        tg.cancel_scope.cancel()
