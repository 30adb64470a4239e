"""
`voicecoder serve` over the Bot API: one runner, with the webhook or long polling as its update source.

Beside either source it publishes the command menu (cosmetic: one try), samples Telegram's own backlog into a
gauge every minute, keeps idle agent processes reaped, and serves ``/metrics`` next to ``/healthz`` and
``/readyz``. The container builds it (`voicecoder.bootstrap.Container.telegram_ingress`); the entrypoint only
starts it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
import attrs
from aiohttp import web

from voicecoder.adapters.prometheus_metrics import CONTENT_TYPE, Metrics
from voicecoder.adapters.telegram.api import BotCommand, TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.http_server import Routes
from voicecoder.adapters.telegram.polling import run_polling
from voicecoder.adapters.telegram.routing import lane_of
from voicecoder.adapters.telegram.updates import BOT_COMMANDS
from voicecoder.adapters.telegram.webhook import IngressStats, WebhookSettings, serve_webhook
from voicecoder.adapters.telegram.webhook_health import poll_pending_updates
from voicecoder.domain.ports import Inbox

log = logging.getLogger(__name__)

KeepWarm = Callable[..., Coroutine[Any, Any, Any]]
"""Started with ``task_group.start``: reaps idle agent processes until cancelled, then closes them all."""


def metrics_route(metrics: Metrics, inbox: Inbox) -> Callable[[Routes], None]:
    """Adds ``/metrics`` to the webhook app (or polling's health app); the inbox depth is read per scrape."""

    async def handle(_request: web.BaseRequest) -> web.Response:
        metrics.inbox_depth.set(await inbox.depth())
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def configure(routes: Routes) -> None:
        routes.add_get("/metrics", handle)

    return configure


async def announce_commands(api: TelegramBotApi, commands: tuple[BotCommand, ...] = BOT_COMMANDS) -> None:
    """Publish the command menu: cosmetic, so one try, and a failure is one warning (the bot works without it)."""
    try:
        await api.set_my_commands(commands, attempts=1)
    except TelegramApiError as exc:
        log.warning("setMyCommands failed (the command menu stays as it was): %s", exc)


@attrs.define
class TelegramIngress:
    """
    Takes updates from Telegram into the durable inbox and runs them, until stopped.

    *webhook* builds the webhook's settings when the webhook is served (polling needs no webhook identity).
    """

    api: TelegramBotApi
    inbox: Inbox
    dispatcher: UpdateDispatcher
    metrics: Metrics
    stats: IngressStats
    webhook: Callable[[], WebhookSettings]
    host: str
    port: int
    polling: bool = False
    keep_warm: KeepWarm | None = None
    commands: tuple[BotCommand, ...] = BOT_COMMANDS
    """The command menu (with /project where the bot serves several projects)."""

    async def run(
        self,
        *,
        polling: bool | None = None,
        delete_webhook: bool = False,
        drop_pending: bool = False,
        stop: anyio.Event | None = None,
        handle_signals: bool = True,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """
        Serve until *stop* is set (or SIGTERM/SIGINT with *handle_signals*); *polling* overrides the transport.

        *task_status* gets the webhook's bound port (webhook mode only).

        Raises:
            StartupError: The listen address cannot be bound, or (polling) a webhook is set.
            ConfigurationError: (polling) Telegram rejected the token; (webhook) the webhook identity is missing.
        """
        use_polling = self.polling if polling is None else polling
        webhook = None if use_polling else self.webhook()  # a missing identity fails before anything starts
        async with anyio.create_task_group() as tg:
            # The command menu is cosmetic: never let an unreachable Telegram delay taking updates.
            tg.start_soon(announce_commands, self.api, self.commands)
            # Telegram's own backlog, as a gauge: deliveries failing or a dead poller show up as a growing number.
            tg.start_soon(
                functools.partial(poll_pending_updates, self.api, self.metrics.telegram_pending.set, every_s=60.0)
            )
            if self.keep_warm is not None:
                await tg.start(self.keep_warm)
            configure_app = metrics_route(self.metrics, self.inbox)
            if webhook is None:
                # /healthz must mean "alive" in both modes: health checks outlive a rollback to polling, so
                # polling serves /healthz, /readyz (with a Telegram check) and /metrics on LISTEN_PORT too.
                await run_polling(
                    self.api,
                    inbox=self.inbox,
                    dispatcher=self.dispatcher,
                    lane_of=lane_of,
                    delete_webhook=delete_webhook,
                    drop_pending=drop_pending,
                    stop=stop,
                    handle_signals=handle_signals,
                    stats=self.stats,
                    health=(self.host, self.port),
                    configure_app=configure_app,
                )
            else:
                await serve_webhook(
                    webhook,
                    inbox=self.inbox,
                    dispatcher=self.dispatcher,
                    lane_of=lane_of,
                    host=self.host,
                    port=self.port,
                    stop=stop,
                    handle_signals=handle_signals,
                    configure_app=configure_app,
                    stats=self.stats,
                    task_status=task_status,
                )
            tg.cancel_scope.cancel()


@attrs.define
class StatelessIngress:
    """
    A replica of the cluster's front door (``voicecoder serve --role ingress``): authenticate, validate, store, answer.

    It runs no update and needs neither the bot token nor a workspace: every stored update is claimed by the
    worker that owns its chat's workspace. Several replicas share one *inbox* (PostgreSQL), so any of them may take
    any request; a redelivery to another replica is a duplicate there too. When the inbox cannot be written the
    answer is 503 + Retry-After, never a 200 without a commit and never a 500.
    """

    inbox: Inbox
    metrics: Metrics
    stats: IngressStats
    webhook: Callable[[], WebhookSettings]
    host: str
    port: int

    async def run(
        self,
        *,
        stop: anyio.Event | None = None,
        handle_signals: bool = True,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """
        Serve until *stop* is set (or SIGTERM/SIGINT with *handle_signals*); *task_status* gets the bound port.

        Raises:
            StartupError: The listen address cannot be bound.
            ConfigurationError: The webhook identity is missing.
        """
        await serve_webhook(
            self.webhook(),
            inbox=self.inbox,
            dispatcher=None,
            lane_of=lane_of,
            host=self.host,
            port=self.port,
            stop=stop,
            handle_signals=handle_signals,
            configure_app=metrics_route(self.metrics, self.inbox),
            stats=self.stats,
            task_status=task_status,
        )


__all__ = ["KeepWarm", "StatelessIngress", "TelegramIngress", "announce_commands", "metrics_route"]
