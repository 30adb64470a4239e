"""
`voicecoder serve`: starts the ingress the container built (the webhook, polling, or MTProto via Telethon).

The webhook and polling listen on LISTEN_HOST:LISTEN_PORT (polling for /healthz, /readyz and /metrics only), so a
container health check and a scraper work the same way in either mode; the Telethon transport has no HTTP server.
"""

from __future__ import annotations

import functools

import anyio
import anyio.abc

from voicecoder.bootstrap import Container, lifetime, open_runtime
from voicecoder.signals import stop_on_signal


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

    *task_status* gets the webhook's bound port (webhook mode only), or the bot's user id (Telethon).

    Raises:
        StartupError: The listen address cannot be bound, or (polling) a webhook is set.
        ConfigurationError: Telegram rejected the token, or what the transport needs is not configured.
        DeliveryError: (Telethon) Telegram could not be reached, or the connection was lost for good.
    """
    if container.settings().transport == "telethon" and not polling:
        await container.telethon_ingress().run(stop=stop, handle_signals=handle_signals, task_status=task_status)
        return
    await container.telegram_ingress().run(
        polling=True if polling else None,
        delete_webhook=delete_webhook,
        drop_pending=drop_pending,
        stop=stop,
        handle_signals=handle_signals,
        task_status=task_status,
    )


async def serve_ingress(
    container: Container,
    *,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    `serve --role ingress`: open the shared inbox and serve the webhook into it until SIGTERM/SIGINT (or *stop*).

    Raises:
        StateStoreError: The database cannot be reached or prepared at start.
        StartupError: The listen address cannot be bound.
    """
    async with lifetime(container, inbox=True):
        await container.stateless_ingress().run(stop=stop, handle_signals=handle_signals, task_status=task_status)


async def serve_worker(
    container: Container,
    *,
    host: str,
    ttl_s: float,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """
    `serve --role worker`: own this host's workspaces, run their updates, until SIGTERM/SIGINT (or *stop*).

    Raises:
        StateStoreError: The database or the state files cannot be opened at start.
    """
    from voicecoder.bootstrap.cluster import build_worker  # noqa: PLC0415 - the postgres extra

    stop = stop if stop is not None else anyio.Event()
    worker = build_worker(container, host=host, ttl_s=ttl_s)  # before the runtime builds the project router
    async with open_runtime(container), anyio.create_task_group() as tg:
        if handle_signals:
            tg.start_soon(functools.partial(stop_on_signal, stop, label="worker"))
        await tg.start(container.keep_warm())
        await worker.run(stop=stop)
        tg.cancel_scope.cancel()


__all__ = ["serve", "serve_ingress", "serve_worker"]
