"""
The Telegram webhook: an HTTP endpoint that stores each update durably, answers 200, and nothing else.

``POST /<path>`` checks, in this order: source network (optional allow-list, with X-Forwarded-For
trusted only from configured proxies) → 403; the ``X-Telegram-Bot-Api-Secret-Token`` header
(constant-time, on the raw bytes: a header that is not UTF-8 is just a wrong secret) → 401; body size → 413.
Then the body must be an Update at all: UTF-8 JSON nested at most :data:`MAX_JSON_DEPTH` deep (checked before
parsing, so no depth reaches the parser's recursion limit), an object with an integer ``update_id``; anything
else is 400. Every Update is acknowledged with 200, because Telegram retries anything else for a day: what
the injected *lane_of* cannot route (other update types, a message without a sender, missing or mistyped
fields at any level) is classified here as ignored (one log line, the ``ignored`` outcome) and never stored.
The rest is written to the :class:`Inbox` (a duplicate ``update_id`` is acknowledged, not stored again)
and handed to the :class:`UpdateDispatcher` as soon as its row is inserted, so processing overlaps the commit's
fsync; the 200 goes out only after the commit is on disk. If the inbox cannot be written the answer is 503, so
Telegram delivers the update again later (should processing have started already, it runs again: at least once).

``GET /healthz`` answers while the process lives; ``GET /readyz`` checks the inbox is writable and the
dispatcher is running (:mod:`voicecoder.adapters.telegram.health`). The routes are served by aiohttp's low-level
server with an exact-path table (:mod:`voicecoder.adapters.telegram.http_server`, ADR 0033), not ``web.Application``.
:func:`serve_webhook` runs the site and the dispatcher in one anyio task group and shuts both down gracefully on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import anyio.abc
import attrs
from aiohttp import web

from voicecoder.adapters.telegram.api_types import ParsedUpdate
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher, UpdateObserver
from voicecoder.adapters.telegram.health import Readiness, add_health_routes
from voicecoder.adapters.telegram.http_server import Routes, listen
from voicecoder.adapters.telegram.identity import check_path, check_secret, new_path
from voicecoder.adapters.telegram.intake import DEFAULT_RETENTION_S, Fail, nothing_to_prepare, run_intake
from voicecoder.adapters.telegram.routing import LaneOf, route
from voicecoder.domain.errors import MalformedUpdateError, StateStoreError
from voicecoder.domain.inbox import InboxItem
from voicecoder.domain.ports import Inbox

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
TELEGRAM_NETWORKS: tuple[str, ...] = ("149.154.160.0/20", "91.108.4.0/22")
"""Where Telegram's webhook requests come from (core.telegram.org/bots/webhooks); the ranges may change."""
DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted; real Updates stay far below (Telegram nests about 10 levels)."""
_JSON_SPECIALS = re.compile(rb'[\\"\[\]{}]')

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    return tuple(v if not isinstance(v, str) else ipaddress.ip_network(v, strict=False) for v in values)


@attrs.frozen
class WebhookSettings:
    """
    How the webhook endpoint checks requests.

    ``path`` defaults to a random one; :meth:`token_path` builds the ``/<TOKEN>`` form. ``allowed_networks``
    empty means no source check. ``trusted_proxies``: peers whose ``X-Forwarded-For`` is believed.
    """

    secret_token: str = attrs.field(converter=check_secret, repr=False)
    path: str = attrs.field(factory=new_path, converter=check_path, repr=False)
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
    Counters per outcome, readable by the health checks and tests; *observer* is told each outcome as well.

    An outcome is ``"acked"`` (stored, 200), ``"duplicate"`` (200, not stored again), ``"ignored"`` (200, a type
    voicecoder does not handle) or ``"rejected"`` (any 4xx/5xx).
    """

    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: dict[int, int] = attrs.field(factory=dict)
    observer: UpdateObserver | None = None

    def count(self, outcome: str) -> None:
        if outcome == "acked":
            self.accepted += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        elif outcome == "ignored":
            self.ignored += 1
        if self.observer is not None:
            self.observer.outcome(outcome)

    def reject(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1
        if self.observer is not None:
            self.observer.outcome("rejected")


@attrs.define
class WebhookIngress:
    """The request handlers; one instance per app (:attr:`WebhookApp.ingress`)."""

    settings: WebhookSettings
    inbox: Inbox
    dispatcher: UpdateDispatcher | None
    """None in a stateless replica (``--role ingress``): stored updates are claimed by the workers."""
    lane_of: LaneOf
    stats: IngressStats = attrs.field(factory=IngressStats)
    _secret: bytes = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._secret = self.settings.secret_token.encode()

    # --- checks ----------------------------------------------------------------------------

    def client_address(self, request: web.BaseRequest) -> Address | None:
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

    def source_allowed(self, request: web.BaseRequest) -> bool:
        if not self.settings.allowed_networks:
            return True
        address = self.client_address(request)
        return address is not None and _within(address, self.settings.allowed_networks)

    def secret_ok(self, request: web.BaseRequest) -> bool:
        # aiohttp decodes header bytes as UTF-8 with surrogateescape; encoding back the same way gives the bytes
        # that were sent, whatever they are (a non-UTF-8 value must be a wrong secret, not an exception).
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, self._secret)

    # --- handlers --------------------------------------------------------------------------

    async def on_update(self, request: web.BaseRequest) -> web.StreamResponse:
        if not self.source_allowed(request):
            return self._reject(403, "Forbidden")
        if not self.secret_ok(request):
            return self._reject(401, "Unauthorized")
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            return self._reject(413, "Payload Too Large")
        try:
            content = request.content
            if length is not None and content.is_eof():
                # The whole body came with the head (as an update nearly always does): taken as it is, without
                # read()'s loop of awaits over the stream. Its size is checked below, as read()'s would be.
                body = content.read_nowait(-1)
            else:
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, "Payload Too Large")
        except web.RequestPayloadError as exc:  # e.g. a Content-Encoding whose data does not decode
            log.info("webhook: rejected an unreadable body: %s", " ".join(str(exc.__cause__ or exc).split()))
            return self._reject(400, "Bad Request")
        if len(body) > self.settings.max_body_bytes:
            return self._reject(413, "Payload Too Large")
        received_at = time.time()
        try:
            update = parse_update(body)
        except MalformedUpdateError as exc:
            log.info("webhook: rejected a body that is not an Update: %s", exc.detail)
            return self._reject(400, "Bad Request")
        routed = route(update, self.lane_of)
        if routed.lane is None:
            log.info("webhook: ignored update %d: %s", routed.update_id, routed.reason)
            self.stats.count("ignored")
            return web.Response(status=200)
        item = InboxItem(
            update_id=routed.update_id, lane=routed.lane, body=body, received_at=received_at, parsed=update
        )

        def inserted(fresh: bool) -> None:
            # Processing starts while the commit is still on its way to the disk; the 200 waits for it below.
            if fresh and self.dispatcher is not None:
                self.dispatcher.submit(item)

        # Once the commit starts, the answer reflects it even if the client goes away: the server never cancels a
        # handler when its client disconnects (`http_server.listen`). An anyio shield here would not help: aiohttp
        # cancels with Task.cancel(), which no anyio scope stops, and it cost ~10 µs per update.
        try:
            fresh = await self.inbox.put(routed.update_id, routed.lane, body, on_inserted=inserted)
        except StateStoreError:
            log.exception("webhook: the inbox cannot be written; asking Telegram to retry")
            return self._reject(503, "Service Unavailable", retry_after=5)
        self.stats.count("acked" if fresh else "duplicate")
        return web.Response(status=200)

    def _reject(self, status: int, text: str, *, retry_after: int | None = None) -> web.Response:
        self.stats.reject(status)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return web.Response(status=status, text=text, headers=headers)


def parse_update(body: bytes) -> dict[str, Any]:
    """
    Decode a webhook body into an Update object, without ever recursing deeper than :data:`MAX_JSON_DEPTH`.

    Raises:
        MalformedUpdateError: It is not an Update at all: not UTF-8, not JSON, nested too deeply, not an object,
            or without an integer ``update_id``.
    """
    if json_too_deep(body, MAX_JSON_DEPTH):
        raise MalformedUpdateError(f"body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        update = json.loads(body.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors, so is int digit overflow
        raise MalformedUpdateError(f"body is not UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(update, dict):
        raise MalformedUpdateError("body is not a JSON object")
    update_id = update.get("update_id")
    if type(update_id) is not int:
        raise MalformedUpdateError("update_id is missing or not an integer")
    return ParsedUpdate(update)  # routing and the handler then share one typed parse


def json_too_deep(body: bytes, limit: int) -> bool:
    r"""
    True when arrays/objects in the JSON text *body* nest deeper than *limit* (brackets inside strings don't count).

    Linear and without recursion; a body with few brackets is answered by counting them. In UTF-8 the bytes of
    ``[]{}"\`` never occur inside a multi-byte character, so scanning bytes is exact.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    in_string = False
    escaped_until = -1
    for match in _JSON_SPECIALS.finditer(body):
        at = match.start()
        if at < escaped_until:
            continue
        char = body[at]
        if in_string:
            if char == 0x5C:  # backslash: the next byte is escaped
                escaped_until = at + 2
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in {0x5B, 0x7B}:
            depth += 1
            if depth > limit:
                return True
        elif char in {0x5D, 0x7D}:
            depth -= 1
    return False


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


@attrs.define
class WebhookApp:
    """The webhook's routes (``POST settings.path``, ``GET /healthz``, ``GET /readyz``) and its request handlers."""

    routes: Routes
    ingress: WebhookIngress

    @property
    def max_body_bytes(self) -> int:
        return self.ingress.settings.max_body_bytes


def create_webhook_app(
    settings: WebhookSettings,
    *,
    inbox: Inbox,
    dispatcher: UpdateDispatcher | None,
    lane_of: LaneOf,
    stats: IngressStats | None = None,
) -> WebhookApp:
    """The webhook app: ``POST settings.path``, ``GET /healthz``, ``GET /readyz``. No globals, no work at import."""
    ingress = WebhookIngress(
        settings=settings, inbox=inbox, dispatcher=dispatcher, lane_of=lane_of, stats=stats or IngressStats()
    )
    routes = Routes()
    routes.add_post(settings.path, ingress.on_update)
    add_health_routes(routes, Readiness(inbox, dispatcher))
    return WebhookApp(routes, ingress)


@attrs.define
class WebhookSource:
    """The webhook as an update source: ``POST settings.path`` on host:port, with /healthz and /readyz."""

    app: WebhookApp
    host: str
    port: int
    shutdown_timeout_s: float = 10.0
    label: str = "webhook"

    def ready(self) -> AbstractAsyncContextManager[None]:
        return nothing_to_prepare()

    @contextlib.asynccontextmanager
    async def taking(self, stop: anyio.Event, fail: Fail) -> AsyncIterator[int]:
        """
        Serve the app; yields the bound port. On exit in-flight requests finish, so nothing acked is lost.

        Raises:
            StartupError: The address cannot be bound.
        """
        runner = await listen(
            self.app.routes,
            self.host,
            self.port,
            # one byte more than allowed, so a body of exactly the limit is read and a larger one is refused
            client_max_size=self.app.max_body_bytes + 1,
            shutdown_timeout_s=self.shutdown_timeout_s,
        )
        try:
            bound = int(runner.addresses[0][1])
            log.info("webhook: listening on %s:%d", self.host, bound)  # the path is a secret: never logged
            yield bound
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()


async def serve_webhook(
    settings: WebhookSettings,
    *,
    inbox: Inbox,
    dispatcher: UpdateDispatcher | None,
    lane_of: LaneOf,
    host: str = "127.0.0.1",
    port: int = 8080,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    shutdown_timeout_s: float = 10.0,
    configure_app: Callable[[Routes], None] | None = None,
    stats: IngressStats | None = None,
    retention_s: float | None = DEFAULT_RETENTION_S,
    housekeeping_every_s: float = 3600.0,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Run the webhook site and the dispatcher until *stop* is set or SIGTERM/SIGINT arrives (`run_intake`).

    Without a *dispatcher* (a stateless replica, ``--role ingress``) it only stores: the workers claim the updates.

    ``task_status.started()`` reports the bound port. *configure_app* may add routes (e.g. /metrics) before the
    site starts. Every *housekeeping_every_s*, finished items older than *retention_s* are purged (None keeps them
    all); the retention must stay well above Telegram's redelivery window (24 h) so late duplicates are still
    recognised.

    Raises:
        StartupError: The address cannot be bound (the dispatcher is stopped again first).
    """
    app = create_webhook_app(settings, inbox=inbox, dispatcher=dispatcher, lane_of=lane_of, stats=stats)
    if configure_app is not None:
        configure_app(app.routes)
    await run_intake(
        WebhookSource(app, host, port, shutdown_timeout_s=shutdown_timeout_s),
        inbox=inbox,
        dispatcher=dispatcher,
        stop=stop,
        handle_signals=handle_signals,
        retention_s=retention_s,
        housekeeping_every_s=housekeeping_every_s,
        task_status=task_status,
    )


__all__ = [
    "MAX_JSON_DEPTH",
    "SECRET_HEADER",
    "TELEGRAM_NETWORKS",
    "IngressStats",
    "WebhookApp",
    "WebhookIngress",
    "WebhookSettings",
    "WebhookSource",
    "create_webhook_app",
    "json_too_deep",
    "parse_update",
    "serve_webhook",
]
