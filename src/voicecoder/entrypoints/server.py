"""`voicecoder serve`: the webhook server (or polling, or MTProto via Telethon) wired from the container."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import anyio.abc
from aiohttp import web

from voicecoder.adapters.prometheus_metrics import CONTENT_TYPE, Metrics
from voicecoder.adapters.sqlite_inbox import InboxItem, SqliteInbox
from voicecoder.adapters.telegram_bot_api import TelegramApiError
from voicecoder.adapters.telegram_updates import BOT_COMMANDS, lane_of
from voicecoder.adapters.update_dispatcher import DispatchStats
from voicecoder.bootstrap import Container
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
    async def handle(_request: web.Request) -> web.Response:
        metrics.inbox_depth.set(await inbox.depth())
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def count(outcome: str) -> None:
        metrics.updates.labels(outcome).inc()

    def configure(app: web.Application) -> None:
        app[INGRESS].stats.on_outcome = count
        app.router.add_get("/metrics", handle)

    return configure


def webhook_settings(container: Container) -> WebhookSettings:
    config = container.settings()
    return WebhookSettings(
        secret_token=config.webhook_secret,
        path=config.webhook_path,
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
    wire_update_metrics(container.dispatch_stats(), container.metrics())
    if config.transport == "telethon" and not polling:
        from voicecoder.entrypoints.telethon_serve import serve_telethon  # noqa: PLC0415 - the telethon extra

        await serve_telethon(container, stop=stop, handle_signals=handle_signals, task_status=task_status)
        return
    async with anyio.create_task_group() as tg:
        # The command menu is cosmetic: never let an unreachable Telegram delay taking updates.
        tg.start_soon(announce_commands, container)
        if polling or config.transport == "polling":
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
                configure_app=metrics_route(container.metrics(), container.inbox()),
                task_status=task_status,
            )
        tg.cancel_scope.cancel()
