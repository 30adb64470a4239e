"""
``GET /healthz`` and ``GET /readyz`` for both transports.

``/healthz`` answers while the process lives. ``/readyz`` is 200 only when the inbox is writable, the dispatcher
runs and, in polling mode, the last getUpdates reached Telegram; otherwise 503 with each check's state, e.g.
``{"telegram": "unreachable: ..."}`` while polling retries.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import attrs
from aiohttp import web

from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.http_server import Routes
from voicecoder.domain.errors import StateStoreError
from voicecoder.domain.ports import Inbox

__all__ = ["Readiness", "add_health_routes"]

READY = "ok"


@attrs.frozen
class Readiness:
    """What /readyz checks. *telegram* (polling) returns ``"ok"`` or why Telegram cannot be reached right now."""

    inbox: Inbox
    dispatcher: UpdateDispatcher | None
    """None in a stateless ingress replica (``--role ingress``): workers run the updates."""
    telegram: Callable[[], str] | None = None

    async def checks(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            with anyio.fail_after(2):
                await self.inbox.check_writable()
            checks["inbox"] = READY
        except (StateStoreError, TimeoutError) as exc:
            checks["inbox"] = f"not writable: {type(exc).__name__}"
        if self.dispatcher is not None:
            checks["dispatcher"] = READY if self.dispatcher.running else "not running"
        if self.telegram is not None:
            checks["telegram"] = self.telegram()
        return checks

    def _backlog(self) -> int | None:
        return self.dispatcher.backlog if self.dispatcher is not None else None

    async def healthz(self, _request: web.BaseRequest) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, _request: web.BaseRequest) -> web.Response:
        checks = await self.checks()
        ready = all(v == READY for v in checks.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": checks, "backlog": self._backlog()},
            status=200 if ready else 503,
        )


def add_health_routes(routes: Routes, readiness: Readiness) -> None:
    routes.add_get("/healthz", readiness.healthz)
    routes.add_get("/readyz", readiness.readyz)
