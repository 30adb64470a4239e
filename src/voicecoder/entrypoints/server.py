"""`voicecoder serve`: the webhook server (or polling) wired from the container, with /metrics."""

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
from voicecoder.entrypoints.health import serve_health
from voicecoder.entrypoints.polling import run_polling
from voicecoder.entrypoints.webhook import INGRESS, TELEGRAM_NETWORKS, WebhookSettings, serve_webhook

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


def metrics_route(metrics: Metrics, inbox: SqliteInbox) -> Callable[[web.Application], None]:
    """Adds ``/metrics`` to the webhook app (or polling's health app) and counts the webhook's outcomes."""

    async def handle(_request: web.Request) -> web.Response:
        metrics.inbox_depth.set(await inbox.depth())
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def count(outcome: str) -> None:
        metrics.updates.labels(outcome).inc()

    def configure(app: web.Application) -> None:
        if INGRESS in app:
            app[INGRESS].stats.on_outcome = count
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
    try:
        await container.bot_api().set_my_commands(BOT_COMMANDS)
    except TelegramApiError as exc:
        logging.getLogger(__name__).warning("setMyCommands failed: %s", exc)


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
    """Run until SIGTERM/SIGINT (or *stop*); the container's runtime must be open."""
    config = container.settings()
    metrics = container.metrics()
    wire_update_metrics(container.dispatch_stats(), metrics)
    async with anyio.create_task_group() as tg:
        # The command menu is cosmetic: never let an unreachable Telegram delay taking updates.
        tg.start_soon(announce_commands, container)
        # Telegram's own backlog, as a gauge: deliveries failing or a dead poller show up as a growing number.
        tg.start_soon(
            functools.partial(poll_pending_updates, container.bot_api(), metrics.telegram_pending.set, every_s=60.0)
        )
        if polling or config.transport == "polling":
            # /healthz must mean "alive" in both modes: health checks outlive a rollback to polling.
            bound = await tg.start(
                functools.partial(
                    serve_health,
                    container.inbox(),
                    container.dispatcher(),
                    host=config.listen_host,
                    port=config.listen_port,
                    configure_app=metrics_route(metrics, container.inbox()),
                )
            )
            task_status.started(bound)
            await run_polling(
                container.bot_api(),
                inbox=container.inbox(),
                dispatcher=container.dispatcher(),
                lane_of=lane_of,
                delete_webhook=delete_webhook,
                drop_pending=drop_pending,
                stop=stop,
                handle_signals=handle_signals,
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
                task_status=task_status,
            )
        tg.cancel_scope.cancel()
