"""
The Telegram webhook: an aiohttp app that stores each update durably, answers 200, and nothing else.

``POST /<path>`` checks, in this order: source network (optional allow-list, with X-Forwarded-For
trusted only from configured proxies) → 403; the ``X-Telegram-Bot-Api-Secret-Token`` header
(constant-time) → 401; body size → 413; JSON and Update shape → 400. Update types other than
``message`` and ``callback_query`` are answered 200 and dropped. Everything else is written to the
:class:`SqliteInbox` (a duplicate ``update_id`` is acknowledged, not stored again) and handed to the
:class:`UpdateDispatcher`; the 200 goes out only after the commit. If the inbox cannot be written
the answer is 503, so Telegram delivers the update again later.

``GET /healthz`` answers while the process lives; ``GET /readyz`` checks the inbox is writable and the
dispatcher is running. :func:`serve_webhook` runs the site and the dispatcher in one anyio task group
and shuts both down gracefully on SIGTERM/SIGINT.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import anyio.abc
import attrs
from aiohttp import web

from voicecoder.adapters.sqlite_inbox import InboxItem, SqliteInbox
from voicecoder.adapters.update_dispatcher import UpdateDispatcher, lane_key
from voicecoder.domain.errors import ConfigurationError, MalformedUpdateError, StateStoreError
from voicecoder.entrypoints.health import healthz, readiness
from voicecoder.entrypoints.signals import stop_on_signal

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
TELEGRAM_NETWORKS: tuple[str, ...] = ("149.154.160.0/20", "91.108.4.0/22")
"""Where Telegram's webhook requests come from (core.telegram.org/bots/webhooks); the ranges may change."""
PROCESSED_TYPES = frozenset({"message", "callback_query"})
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_RETENTION_S = 7 * 86400.0
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_MAX_UPDATE_ID = (1 << 63) - 1

LaneOf = Callable[[dict[str, Any]], "tuple[int, str] | None"]
"""Routes a raw update to (chat id, "message" | "callback"); None or MalformedUpdateError if it cannot."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    return tuple(v if not isinstance(v, str) else ipaddress.ip_network(v, strict=False) for v in values)


def random_path() -> str:
    """A hard-to-guess webhook path such as ``/tg-3q2…``."""
    return "/tg-" + secrets.token_urlsafe(24)


def new_secret_token() -> str:
    """A fresh secret for setWebhook's ``secret_token``: 43 characters of ``[A-Za-z0-9_-]``."""
    return secrets.token_urlsafe(32)


def _check_secret(value: str) -> str:
    if not _SECRET_RE.fullmatch(value):
        raise ConfigurationError(
            "WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and - (Telegram's rule); "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return value


def _check_path(value: str) -> str:
    if not value.startswith("/") or len(value) < 2 or "{" in value or "}" in value:
        raise ConfigurationError("The webhook path must start with '/' and have at least one more character.")
    return value


@attrs.frozen
class WebhookSettings:
    """
    How the webhook endpoint checks requests.

    ``path`` defaults to a random one; :meth:`token_path` builds the ``/<TOKEN>`` form. ``allowed_networks``
    empty means no source check. ``trusted_proxies``: peers whose ``X-Forwarded-For`` is believed.
    """

    secret_token: str = attrs.field(converter=_check_secret, repr=False)
    path: str = attrs.field(factory=random_path, converter=_check_path, repr=False)
    allowed_networks: tuple[Network, ...] = attrs.field(default=(), converter=_networks)
    trusted_proxies: tuple[Network, ...] = attrs.field(default=(), converter=_networks)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @staticmethod
    def token_path(bot_token: str) -> str:
        """The ``/<TOKEN>`` path form (the token is then part of the URL: never log it)."""
        return "/" + bot_token


@attrs.define
class IngressStats:
    """
    Counters per outcome, readable by the metrics layer.

    ``on_outcome(name)`` is called once per request with ``"acked"`` (stored, 200), ``"duplicate"`` (200, not
    stored again), ``"ignored"`` (200, a type voicecoder does not handle) or ``"rejected"`` (any 4xx/5xx).
    """

    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: dict[int, int] = attrs.field(factory=dict)
    on_outcome: Callable[[str], None] | None = None

    def count(self, outcome: str) -> None:
        if outcome == "acked":
            self.accepted += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "ignored":
            self.ignored += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def reject(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1
        if self.on_outcome is not None:
            self.on_outcome("rejected")


@attrs.define
class WebhookIngress:
    """The request handlers; one instance per app, stored under :data:`INGRESS`."""

    settings: WebhookSettings
    inbox: SqliteInbox
    dispatcher: UpdateDispatcher
    lane_of: LaneOf
    stats: IngressStats = attrs.field(factory=IngressStats)

    # --- checks ----------------------------------------------------------------------------

    def client_address(self, request: web.Request) -> Address | None:
        """The sender's address: the peer, or the right-most untrusted X-Forwarded-For hop behind trusted proxies."""
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if not peer:
            return None
        try:
            address: Address = ipaddress.ip_address(peer[0])
        except ValueError:
            return None
        if not self.settings.trusted_proxies or not _within(address, self.settings.trusted_proxies):
            return address
        hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
        for hop in reversed(hops):
            try:
                candidate: Address = ipaddress.ip_address(hop)
            except ValueError:
                return None  # a garbled chain cannot be trusted
            if not _within(candidate, self.settings.trusted_proxies):
                return candidate
        return address

    def source_allowed(self, request: web.Request) -> bool:
        if not self.settings.allowed_networks:
            return True
        address = self.client_address(request)
        return address is not None and _within(address, self.settings.allowed_networks)

    def secret_ok(self, request: web.Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode(), self.settings.secret_token.encode())

    # --- handlers --------------------------------------------------------------------------

    async def on_update(self, request: web.Request) -> web.StreamResponse:
        if not self.source_allowed(request):
            return self._reject(403, "Forbidden")
        if not self.secret_ok(request):
            return self._reject(401, "Unauthorized")
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            return self._reject(413, "Payload Too Large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, "Payload Too Large")
        if len(body) > self.settings.max_body_bytes:
            return self._reject(413, "Payload Too Large")
        try:
            parsed = self._parse(body)
        except MalformedUpdateError as exc:
            log.info("webhook: rejected a malformed update: %s", exc.detail)
            return self._reject(400, "Bad Request")
        if parsed is None:
            self.stats.count("ignored")
            return web.Response(status=200)
        update_id, lane, update = parsed
        # Shielded: once the commit starts, the item must reach the dispatcher even if the client goes away.
        with anyio.CancelScope(shield=True):
            try:
                fresh = await self.inbox.put(update_id, lane, body)
            except StateStoreError:
                log.exception("webhook: the inbox cannot be written; asking Telegram to retry")
                return self._reject(503, "Service Unavailable", retry_after=5)
            if fresh:
                self.stats.count("acked")
                self.dispatcher.submit(
                    InboxItem(update_id=update_id, lane=lane, body=body, received_at=time.time(), parsed=update)
                )
            else:
                self.stats.count("duplicate")
        return web.Response(status=200)

    def _parse(self, body: bytes) -> tuple[int, str, dict[str, Any]] | None:
        """(update_id, lane, update) for an update to process; None for a valid update of a type we ignore."""
        try:
            update = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedUpdateError("body is not JSON") from exc
        routed = route_update(update, self.lane_of)
        return None if routed is None else (*routed, update)

    def _reject(self, status: int, text: str, *, retry_after: int | None = None) -> web.Response:
        self.stats.reject(status)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.Response(status=status, text=text, headers=headers)

    async def healthz(self, request: web.Request) -> web.Response:
        return await healthz(request)

    async def readyz(self, _request: web.Request) -> web.Response:
        return await readiness(self.inbox, self.dispatcher)


def route_update(update: Any, lane_of: LaneOf) -> tuple[int, str] | None:
    """
    Validate a decoded Update and route it: (update_id, lane) to process it, None for a type voicecoder ignores.

    Raises:
        MalformedUpdateError: It is not an Update, or a message/callback_query that cannot be routed.
    """
    if not isinstance(update, dict):
        raise MalformedUpdateError("body is not a JSON object")
    update_id = update.get("update_id")
    if type(update_id) is not int or not 0 <= update_id <= _MAX_UPDATE_ID:
        raise MalformedUpdateError("update_id is missing or not a non-negative integer")
    kinds = PROCESSED_TYPES.intersection(update)
    if not kinds:
        return None
    if len(kinds) > 1 or not isinstance(update[next(iter(kinds))], dict):
        raise MalformedUpdateError("an Update carries exactly one object")
    try:
        lane = lane_of(update)
    except MalformedUpdateError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedUpdateError(f"cannot route the update: {type(exc).__name__}") from exc
    if lane is None:
        raise MalformedUpdateError("the update has no chat to route it to")
    return update_id, lane_key(*lane)


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


INGRESS = web.AppKey("ingress", WebhookIngress)


def create_webhook_app(
    settings: WebhookSettings,
    *,
    inbox: SqliteInbox,
    dispatcher: UpdateDispatcher,
    lane_of: LaneOf,
    stats: IngressStats | None = None,
) -> web.Application:
    """The webhook app: ``POST settings.path``, ``GET /healthz``, ``GET /readyz``. No globals, no work at import."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1)
    ingress = WebhookIngress(
        settings=settings, inbox=inbox, dispatcher=dispatcher, lane_of=lane_of, stats=stats or IngressStats()
    )
    app[INGRESS] = ingress
    app.router.add_post(settings.path, ingress.on_update)
    app.router.add_get("/healthz", ingress.healthz)
    app.router.add_get("/readyz", ingress.readyz)
    return app


async def serve_webhook(
    settings: WebhookSettings,
    *,
    inbox: SqliteInbox,
    dispatcher: UpdateDispatcher,
    lane_of: LaneOf,
    host: str = "127.0.0.1",
    port: int = 8080,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    shutdown_timeout_s: float = 10.0,
    configure_app: Callable[[web.Application], None] | None = None,
    stats: IngressStats | None = None,
    retention_s: float | None = DEFAULT_RETENTION_S,
    housekeeping_every_s: float = 3600.0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Run the webhook site and the dispatcher until *stop* is set or SIGTERM/SIGINT arrives.

    The dispatcher starts first (it resumes what the inbox left pending), then the site accepts requests;
    ``task_status.started()`` reports the bound port. On stop the site closes first (in-flight requests finish,
    so nothing acked is lost), then the dispatcher finishes its in-flight updates within its grace period and
    leaves the rest pending. *configure_app* may add routes (e.g. /metrics) before the site starts. Every
    *housekeeping_every_s*, finished items older than *retention_s* are purged (None keeps them all); the
    retention must stay well above Telegram's redelivery window (24 h) so late duplicates are still recognised.
    """
    stop = stop if stop is not None else anyio.Event()
    app = create_webhook_app(settings, inbox=inbox, dispatcher=dispatcher, lane_of=lane_of, stats=stats)
    if configure_app is not None:
        configure_app(app)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        if handle_signals:
            tg.start_soon(functools.partial(stop_on_signal, stop, label="webhook"))
        if retention_s is not None:
            tg.start_soon(housekeeping, inbox, retention_s, housekeeping_every_s)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout_s)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=1024)
            await site.start()
            bound = int(runner.addresses[0][1])
            log.info("webhook: listening on %s:%d", host, bound)  # the path is a secret: never logged
            task_status.started(bound)
            await stop.wait()
            log.info("webhook: stopping")
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
                await dispatcher.stop()
        tg.cancel_scope.cancel()


async def housekeeping(inbox: SqliteInbox, retention_s: float, every_s: float) -> None:
    """Purge finished inbox items older than *retention_s*, every *every_s*, until cancelled."""
    while True:
        try:
            purged = await inbox.purge_finished(older_than_s=retention_s)
        except StateStoreError:
            log.exception("inbox housekeeping failed; will retry")
        else:
            if purged:
                log.info("inbox housekeeping: purged %d finished update(s)", purged)
        await anyio.sleep(every_s)


__all__ = [
    "INGRESS",
    "PROCESSED_TYPES",
    "SECRET_HEADER",
    "TELEGRAM_NETWORKS",
    "IngressStats",
    "LaneOf",
    "WebhookIngress",
    "WebhookSettings",
    "create_webhook_app",
    "housekeeping",
    "new_secret_token",
    "random_path",
    "route_update",
    "serve_webhook",
]
