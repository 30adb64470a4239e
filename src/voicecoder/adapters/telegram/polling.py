"""
Long polling: getUpdates into the same durable inbox and dispatcher as the webhook.

The offset lives in the inbox and is written in the same transaction as the updates of a batch, so
the next getUpdates (which confirms them to Telegram) is only sent once they are on disk: a crash
never loses an update and never skips one. Only the processed update types are requested, and each
update is routed exactly as the webhook routes it (what cannot be processed is ignored and confirmed).

Polling never gives up on the network: a failed getUpdates (no connection, timeout, 5xx, 429, an answer
that is not the Bot API's) is retried forever with capped exponential backoff and jitter; the log gets one
line when Telegram becomes unreachable and one when it is back, not one per try, and :meth:`UpdatePoller.state`
(shown by ``/readyz``) says "telegram unreachable" meanwhile. Two empty answers are never less than
:data:`MIN_EMPTY_INTERVAL_S` apart, even from a server that ignores the long-poll ``timeout``.

Entries below the offset already confirmed (a server that ignores ``offset``) and an ``update_id`` repeated in one
answer are dropped as duplicates; entries out of order are stored, and the offset moves to the highest id + 1.
Another process polling with the same token (409 "terminated by other getUpdates request") is retried with
backoff, with one error line that says to stop the other one.

What retrying cannot fix stops polling with a clear error: a webhook is set (Telegram answers 409 to every
getUpdates) unless polling was told to delete it, or Telegram rejects the token. Whether a webhook is set is
also asked once before the first poll, but only as a diagnostic: if that call fails, polling starts anyway.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import attrs
from aiohttp import web

from voicecoder.adapters.telegram.api import TelegramApiError, TelegramBotApi
from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.health import READY, Readiness, add_health_routes
from voicecoder.adapters.telegram.http_server import Routes, listen
from voicecoder.adapters.telegram.intake import DEFAULT_RETENTION_S, Fail, run_intake
from voicecoder.adapters.telegram.routing import ALLOWED_UPDATES, LaneOf, route
from voicecoder.adapters.telegram.webhook import IngressStats, parse_update
from voicecoder.domain.errors import ConfigurationError, MalformedUpdateError, StartupError
from voicecoder.domain.inbox import InboxItem, NewUpdate
from voicecoder.domain.ports import Inbox

log = logging.getLogger(__name__)

DEFAULT_POLL_TIMEOUT_S = 30
MIN_EMPTY_INTERVAL_S = 1.0
"""Least time between two empty getUpdates answers, whatever the server does with ``timeout``."""

WEBHOOK_IS_SET = (
    "A webhook is set for this bot, so polling would fail with 409 Conflict. Run "
    "`voicecoder webhook delete` (pending updates are kept) or start polling with --delete-webhook; "
    "or serve the webhook instead."
)
ANOTHER_POLLER = (
    "polling: another process is polling this bot with the same token (Telegram: {detail}). Stop it, or give "
    "this one its own bot token (TELEGRAM_TOKEN); retrying with backoff (at most {cap:g} s apart) until it stops"
)
TOKEN_REJECTED = (
    "Telegram rejected the bot token ({detail}). Copy TELEGRAM_TOKEN again from @BotFather "  # noqa: S105 - a message
    "(and check TELEGRAM_API_BASE_URL if you set it)."
)


@attrs.frozen
class Backoff:
    """Delays between failed polls: *first* × 2ⁿ, capped at *cap*, each scaled by a random factor in 1 ± *jitter*."""

    first: float = 1.0
    cap: float = 60.0
    jitter: float = 0.2

    def delay(self, failures: int) -> float:
        """The wait after the *failures*-th failure in a row (1 for the first)."""
        base = min(self.cap, self.first * 2.0 ** max(0, failures - 1))
        return base * (1.0 + self.jitter * (2.0 * random.random() - 1.0))  # noqa: S311 - jitter, not crypto


def _webhook_conflict(exc: TelegramApiError) -> bool:
    return exc.code == 409 and "webhook" in exc.description.lower()


def _token_rejected(exc: TelegramApiError) -> bool:
    # 401 is a rejected token; the official server answers a malformed one with a Bot API 404 "Not Found".
    return exc.code == 401 or (exc.code == 404 and exc.description.startswith("Not Found"))


async def prepare_polling(api: TelegramBotApi, *, delete_webhook: bool = False, drop_pending: bool = False) -> None:
    """
    Make sure getUpdates can work: no webhook, or delete it when allowed.

    Asking whether a webhook is set is a diagnostic: when Telegram cannot be asked, this logs a warning and
    returns (polling itself then finds out, and retries until Telegram answers).

    Raises:
        StartupError: A webhook is set and *delete_webhook* is False, or it could not be deleted or the pending
            updates could not be dropped as asked.
        ConfigurationError: Telegram rejected the token.
    """
    try:
        info = await api.get_webhook_info(attempts=1)
    except TelegramApiError as exc:
        if _token_rejected(exc):
            raise ConfigurationError(TOKEN_REJECTED.format(detail=exc.description)) from None
        log.warning("polling: could not check whether a webhook is set (%s); polling anyway", exc)
        if drop_pending:
            await _delete_webhook(api, drop_pending=True)
        return
    if info.url:
        if not delete_webhook:
            raise StartupError(WEBHOOK_IS_SET)
        await _delete_webhook(api, drop_pending=drop_pending)
    elif drop_pending:
        await _delete_webhook(api, drop_pending=True)


async def _delete_webhook(api: TelegramBotApi, *, drop_pending: bool) -> None:
    try:
        await api.delete_webhook(drop_pending_updates=drop_pending)
    except TelegramApiError as exc:
        what = "drop the pending updates" if drop_pending else "delete the webhook"
        raise StartupError(
            f"Could not {what}: {exc}. Try again when Telegram answers, or run `voicecoder webhook delete`."
        ) from None
    log.info("polling: deleted the webhook (pending updates %s)", "dropped" if drop_pending else "kept")


class UpdatePoller:
    """Fetches updates with getUpdates and stores them; one instance per bot (a second poller gets 409)."""

    def __init__(
        self,
        api: TelegramBotApi,
        inbox: Inbox,
        dispatcher: UpdateDispatcher,
        lane_of: LaneOf,
        *,
        poll_timeout_s: int = DEFAULT_POLL_TIMEOUT_S,
        backoff: Backoff | None = None,
        min_empty_interval_s: float = MIN_EMPTY_INTERVAL_S,
        delete_webhook: bool = False,
        stats: IngressStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._inbox = inbox
        self._dispatcher = dispatcher
        self._lane_of = lane_of
        self._poll_timeout_s = poll_timeout_s
        self._backoff = backoff or Backoff()
        self._min_empty_interval_s = min_empty_interval_s
        self._delete_webhook = delete_webhook
        self._clock = clock
        self.stats = stats if stats is not None else IngressStats()
        self.polls = 0
        self.stored = 0
        self.skipped = 0
        self.failures = 0
        """Failed getUpdates in a row (0 while Telegram answers)."""
        self._state = "waiting for the first getUpdates answer"

    def state(self) -> str:
        """``"ok"`` while getUpdates works, else what /readyz shows (``"telegram unreachable: …"``)."""
        return self._state

    async def poll_once(self, *, timeout_s: int | None = None) -> int:
        """
        One getUpdates round: store the batch and the next offset durably, hand new items to the dispatcher.

        *timeout_s* is the long-poll wait (default: the poller's); 0 asks Telegram to answer at once.

        Returns how many entries of the answer moved the offset on (0 for an empty answer, or one that brought
        nothing new).

        Raises:
            TelegramApiError: getUpdates failed (one attempt: the caller decides about retrying).
        """
        offset = await self._inbox.offset()
        timeout = self._poll_timeout_s if timeout_s is None else timeout_s
        raw = await self._api.call(
            "getUpdates",
            {"offset": offset, "timeout": timeout, "allowed_updates": list(ALLOWED_UPDATES)},
            request_timeout=timeout + 15,
            attempts=1,
        )
        self.polls += 1
        if not isinstance(raw, list):
            raise TelegramApiError(0, "getUpdates returned no list", "getUpdates")
        return await self._store(raw, offset)

    async def _store(self, raw: list[Any], offset: int | None) -> int:
        received_at = time.time()
        new: list[tuple[NewUpdate, dict[str, Any]]] = []
        highest = (offset or 0) - 1
        moved = 0
        taken: set[int] = set()
        for entry in raw:
            update_id = entry.get("update_id") if isinstance(entry, dict) else None
            if type(update_id) is int:
                if (offset is not None and update_id < offset) or update_id in taken:
                    # Confirmed by an earlier getUpdates, or twice in this answer: a server that ignores the
                    # offset. Once its inbox row is purged it would run again, so it is dropped here.
                    self.stats.count("duplicate")
                    continue
                taken.add(update_id)
                if update_id > highest:
                    highest = update_id  # confirmed even when it is ignored below, so it never comes back
                    moved += 1
            try:
                # The same checks as a webhook body; the re-encoding is what the inbox stores.
                body = json.dumps(entry).encode()
                update = parse_update(body)
            except (MalformedUpdateError, ValueError, RecursionError) as exc:
                self.skipped += 1
                self.stats.count("ignored")
                log.info("polling: ignored an entry that is not an Update: %s", getattr(exc, "detail", exc))
                continue
            routed = route(update, self._lane_of)
            if routed.lane is None:
                self.skipped += 1
                self.stats.count("ignored")
                log.info("polling: ignored update %d: %s", routed.update_id, routed.reason)
                continue
            new.append((NewUpdate(routed.update_id, routed.lane, body), update))
        if not moved:
            return 0
        next_offset = highest + 1 if highest >= 0 else None
        fresh = await self._inbox.put_many([n for n, _ in new], offset=next_offset)
        for (item, update), is_new in zip(new, fresh, strict=True):
            if is_new:
                self.stored += 1
                self.stats.count("acked")
                self._dispatcher.submit(
                    InboxItem(
                        update_id=item.update_id, lane=item.lane, body=item.body, received_at=received_at, parsed=update
                    )
                )
            else:
                self.stats.count("duplicate")
        return moved

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """
        Poll until cancelled.

        Raises:
            StartupError: A webhook is set (and may not be deleted), or deleting it failed.
            ConfigurationError: Telegram rejected the token.
        """
        task_status.started()
        down_since = 0.0
        while True:
            sent = self._clock()
            try:
                # Until Telegram has answered once (at start, and after it was unreachable), ask without a
                # long poll: /readyz then knows within a round trip, not after a long poll's timeout.
                received = await self.poll_once(timeout_s=0 if self._state != READY else None)
            except TelegramApiError as exc:
                await self._on_failure(exc)
                if self.failures == 1:
                    down_since = sent
                delay = self._backoff.delay(self.failures)
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                log.debug("polling: getUpdates failed (%s); next try in %.1f s", exc, delay)
                await anyio.sleep(delay)
                continue
            if self.failures:
                log.info(
                    "polling: Telegram answers again after %d failed attempt(s) over %.1f s",
                    self.failures,
                    self._clock() - down_since,
                )
            self.failures = 0
            self._state = READY
            answered = self._clock()
            if received == 0 and answered - sent < self._min_empty_interval_s:
                # An empty answer that came back early: the server did not hold the long poll. Waiting a full
                # interval from the answer keeps two empty answers that far apart, whatever the server does.
                await anyio.sleep(self._min_empty_interval_s)

    async def _on_failure(self, exc: TelegramApiError) -> None:
        if _token_rejected(exc):
            raise ConfigurationError(TOKEN_REJECTED.format(detail=exc.description))
        if _webhook_conflict(exc):
            if not self._delete_webhook:
                raise StartupError(WEBHOOK_IS_SET)
            await _delete_webhook(self._api, drop_pending=False)
        self.failures += 1
        reason = f"{exc.description} ({exc.code})" if exc.code else exc.description
        if exc.code == 409:
            self._state = f"another process polls with this token: {reason}"
            if self.failures == 1:
                log.error(ANOTHER_POLLER.format(detail=reason, cap=self._backoff.cap))
            return
        self._state = f"telegram unreachable: {reason}"
        if self.failures == 1:
            log.warning(
                "polling: telegram unreachable: %s; retrying with backoff (at most %g s apart) until it answers",
                reason,
                self._backoff.cap,
            )


@attrs.define
class PollingSource:
    """Long polling as an update source; *health* = (host, port) serves /healthz, /readyz and /metrics there."""

    api: TelegramBotApi
    poller: UpdatePoller
    readiness: Readiness
    delete_webhook: bool = False
    drop_pending: bool = False
    health: tuple[str, int] | None = None
    configure_app: Callable[[Routes], None] | None = None
    label: str = "polling"

    @contextlib.asynccontextmanager
    async def ready(self) -> AsyncIterator[None]:
        """
        The health server first (it answers while Telegram does not), then the webhook check.

        Raises:
            StartupError: The health port cannot be bound, or a webhook is set and may not be deleted.
            ConfigurationError: Telegram rejected the token.
        """
        runner: web.BaseRunner | None = None
        if self.health is not None:
            routes = Routes()
            add_health_routes(routes, self.readiness)
            if self.configure_app is not None:
                self.configure_app(routes)
            runner = await listen(routes, *self.health)
        try:
            await prepare_polling(self.api, delete_webhook=self.delete_webhook, drop_pending=self.drop_pending)
            yield
        finally:
            if runner is not None:
                with anyio.CancelScope(shield=True):
                    await runner.cleanup()

    @contextlib.asynccontextmanager
    async def taking(self, stop: anyio.Event, fail: Fail) -> AsyncIterator[UpdatePoller]:
        """Poll while entered (yields the poller); an error retrying cannot fix ends the service through *fail*."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(_poll_until, self.poller, fail)
            try:
                yield self.poller
            finally:
                tg.cancel_scope.cancel()


async def run_polling(
    api: TelegramBotApi,
    *,
    inbox: Inbox,
    dispatcher: UpdateDispatcher,
    lane_of: LaneOf,
    delete_webhook: bool = False,
    drop_pending: bool = False,
    poll_timeout_s: int = DEFAULT_POLL_TIMEOUT_S,
    backoff: Backoff | None = None,
    min_empty_interval_s: float = MIN_EMPTY_INTERVAL_S,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    retention_s: float | None = DEFAULT_RETENTION_S,
    housekeeping_every_s: float = 3600.0,
    stats: IngressStats | None = None,
    health: tuple[str, int] | None = None,
    configure_app: Callable[[Routes], None] | None = None,
    task_status: anyio.abc.TaskStatus[UpdatePoller] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Poll and dispatch until *stop* is set or SIGTERM/SIGINT arrives; then stop the dispatcher gracefully.

    With *health* = (host, port), ``/healthz``, ``/readyz`` (with the Telegram check) and whatever
    *configure_app* adds (``/metrics``) are served there first, so they answer while Telegram does not. Finished
    inbox items older than *retention_s* are purged every *housekeeping_every_s* (None: never).

    Raises:
        StartupError: The health port cannot be bound, or a webhook is set and *delete_webhook* is False (the
            latter before any getUpdates when Telegram says so at start, else as soon as getUpdates meets it).
        ConfigurationError: Telegram rejected the token.
    """
    poller = UpdatePoller(
        api,
        inbox,
        dispatcher,
        lane_of,
        poll_timeout_s=poll_timeout_s,
        backoff=backoff,
        min_empty_interval_s=min_empty_interval_s,
        delete_webhook=delete_webhook,
        stats=stats,
    )
    source = PollingSource(
        api,
        poller,
        Readiness(inbox, dispatcher, telegram=poller.state),
        delete_webhook=delete_webhook,
        drop_pending=drop_pending,
        health=health,
        configure_app=configure_app,
    )
    await run_intake(
        source,
        inbox=inbox,
        dispatcher=dispatcher,
        stop=stop,
        handle_signals=handle_signals,
        retention_s=retention_s,
        housekeeping_every_s=housekeeping_every_s,
        task_status=task_status,
    )


async def _poll_until(poller: UpdatePoller, fail: Fail) -> None:
    """Poll until cancelled; an error retrying cannot fix ends the service gracefully, then is raised."""
    try:
        await poller.run()
    except (StartupError, ConfigurationError) as exc:
        fail(exc)


__all__ = [
    "ANOTHER_POLLER",
    "MIN_EMPTY_INTERVAL_S",
    "TOKEN_REJECTED",
    "WEBHOOK_IS_SET",
    "Backoff",
    "PollingSource",
    "UpdatePoller",
    "prepare_polling",
    "run_polling",
]
