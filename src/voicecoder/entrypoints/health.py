"""
``/healthz`` and ``/readyz``, the same in webhook and polling mode.

``GET /healthz`` answers 200 while the process lives (a container or systemd watchdog restarts it otherwise);
``GET /readyz`` answers 200 when the inbox is writable and the dispatcher runs, 503 with the failing check
otherwise. The webhook app serves both next to its POST route; in polling mode :func:`serve_health` runs a
small site with just these (and whatever *configure_app* adds, e.g. ``/metrics``), so a health check written
for the webhook keeps working after a rollback to polling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import anyio.abc
from aiohttp import web

from voicecoder.adapters.sqlite_inbox import SqliteInbox
from voicecoder.adapters.update_dispatcher import UpdateDispatcher
from voicecoder.domain.errors import StateStoreError

log = logging.getLogger(__name__)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readiness(inbox: SqliteInbox, dispatcher: UpdateDispatcher) -> web.Response:
    """The /readyz answer: every check by name, 200 only when all are ok."""
    checks: dict[str, str] = {}
    try:
        with anyio.fail_after(2):
            await inbox.check_writable()
        checks["inbox"] = "ok"
    except (StateStoreError, TimeoutError) as exc:
        checks["inbox"] = f"not writable: {type(exc).__name__}"
    checks["dispatcher"] = "ok" if dispatcher.running else "not running"
    ready = all(v == "ok" for v in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": checks, "backlog": dispatcher.backlog},
        status=200 if ready else 503,
    )


def create_health_app(inbox: SqliteInbox, dispatcher: UpdateDispatcher) -> web.Application:
    """An app with only ``/healthz`` and ``/readyz``: what polling mode serves."""

    async def readyz(_request: web.Request) -> web.Response:
        return await readiness(inbox, dispatcher)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_health(
    inbox: SqliteInbox,
    dispatcher: UpdateDispatcher,
    *,
    host: str,
    port: int,
    configure_app: Callable[[web.Application], None] | None = None,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the health app on *host*:*port* until cancelled; ``task_status.started()`` gets the bound port."""
    app = create_health_app(inbox, dispatcher)
    if configure_app is not None:
        configure_app(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])
        log.info("health: /healthz and /readyz on %s:%d", host, bound)
        task_status.started(bound)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


__all__ = ["create_health_app", "healthz", "readiness", "serve_health"]
