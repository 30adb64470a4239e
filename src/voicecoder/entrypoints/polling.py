"""
Long polling: getUpdates into the same durable inbox and dispatcher as the webhook.

The offset lives in the inbox and is written in the same transaction as the updates of a batch, so
the next getUpdates (which confirms them to Telegram) is only sent once they are on disk: a crash
never loses an update and never skips one. Only ``message`` and ``callback_query`` are requested.

Polling refuses to start while a webhook is set (Telegram would answer 409 to every getUpdates)
unless it is told to delete it; pending updates are kept unless ``drop_pending`` is asked for.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.abc

from voicecoder.adapters.sqlite_inbox import InboxItem, NewUpdate, SqliteInbox
from voicecoder.adapters.telegram_bot_api import TelegramApiError, TelegramBotApi
from voicecoder.adapters.update_dispatcher import UpdateDispatcher
from voicecoder.domain.errors import ConfigurationError, DeliveryError, MalformedUpdateError
from voicecoder.entrypoints.signals import stop_on_signal
from voicecoder.entrypoints.webhook import DEFAULT_RETENTION_S, PROCESSED_TYPES, LaneOf, housekeeping, route_update

log = logging.getLogger(__name__)

ALLOWED_UPDATES: tuple[str, ...] = ("message", "callback_query")
DEFAULT_POLL_TIMEOUT_S = 30
ERROR_DELAYS: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)


WEBHOOK_IS_SET = (
    "A webhook is set for this bot, so polling would fail with 409 Conflict. Run "
    "`voicecoder webhook delete` (pending updates are kept) or start polling with --delete-webhook; "
    "or serve the webhook instead."
)


async def prepare_polling(api: TelegramBotApi, *, delete_webhook: bool = False, drop_pending: bool = False) -> None:
    """
    Make sure getUpdates can work: no webhook, or delete it when allowed.

    Raises:
        ConfigurationError: A webhook is set and *delete_webhook* is False.
        TelegramApiError: Telegram could not be asked.
    """
    info = await api.get_webhook_info()
    if info.url:
        if not delete_webhook:
            raise ConfigurationError(WEBHOOK_IS_SET)
        await api.delete_webhook(drop_pending_updates=drop_pending)
        log.info("polling: deleted the webhook (pending updates %s)", "dropped" if drop_pending else "kept")
    elif drop_pending:
        await api.delete_webhook(drop_pending_updates=True)


class UpdatePoller:
    """Fetches updates with getUpdates and stores them; one instance per bot (a second poller gets 409)."""

    def __init__(
        self,
        api: TelegramBotApi,
        inbox: SqliteInbox,
        dispatcher: UpdateDispatcher,
        lane_of: LaneOf,
        *,
        poll_timeout_s: int = DEFAULT_POLL_TIMEOUT_S,
        error_delays: Sequence[float] = ERROR_DELAYS,
    ) -> None:
        self._api = api
        self._inbox = inbox
        self._dispatcher = dispatcher
        self._lane_of = lane_of
        self._poll_timeout_s = poll_timeout_s
        self._error_delays = tuple(error_delays) or (1.0,)
        self.polls = 0
        self.stored = 0
        self.skipped = 0

    async def poll_once(self) -> int:
        """
        One getUpdates round: store the batch and the next offset durably, hand new items to the dispatcher.

        Returns the number of updates received.

        Raises:
            TelegramApiError: getUpdates failed (after the client's own retries).
        """
        offset = await self._inbox.offset()
        raw = await self._api.call(
            "getUpdates",
            {"offset": offset, "timeout": self._poll_timeout_s, "allowed_updates": list(ALLOWED_UPDATES)},
            request_timeout=self._poll_timeout_s + 15,
        )
        self.polls += 1
        if not isinstance(raw, list):
            raise TelegramApiError(0, "getUpdates returned no list", "getUpdates")
        return await self._store(raw, offset)

    async def _store(self, raw: list[Any], offset: int | None) -> int:
        new: list[tuple[NewUpdate, dict[str, Any]]] = []
        highest = (offset or 0) - 1
        for update in raw:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if type(update_id) is int:
                highest = max(highest, update_id)
            try:
                routed = route_update(update, self._lane_of)
            except MalformedUpdateError as exc:
                self.skipped += 1
                log.warning("polling: skipped a malformed update: %s", exc.detail)
                continue
            if routed is None:
                self.skipped += 1
                continue
            update_id, lane = routed
            new.append((NewUpdate(update_id, lane, json.dumps(update).encode()), update))
        if not raw:
            return 0
        next_offset = highest + 1 if highest >= 0 else None
        fresh = await self._inbox.put_many([n for n, _ in new], offset=next_offset)
        for (item, update), is_new in zip(new, fresh, strict=True):
            if is_new:
                self.stored += 1
                self._dispatcher.submit(
                    InboxItem(update_id=item.update_id, lane=item.lane, body=item.body, parsed=update)
                )
        return len(raw)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Poll until cancelled; transient failures back off and retry, a conflict (409) is logged loudly."""
        failures = 0
        task_status.started()
        while True:
            try:
                await self.poll_once()
                failures = 0
            except DeliveryError as exc:
                delay = self._error_delays[min(failures, len(self._error_delays) - 1)]
                failures += 1
                conflict = isinstance(exc, TelegramApiError) and exc.code == 409
                (log.error if conflict else log.warning)("polling: %s; retrying in %.0f s", exc, delay)
                await anyio.sleep(delay)


async def run_polling(
    api: TelegramBotApi,
    *,
    inbox: SqliteInbox,
    dispatcher: UpdateDispatcher,
    lane_of: LaneOf,
    delete_webhook: bool = False,
    drop_pending: bool = False,
    poll_timeout_s: int = DEFAULT_POLL_TIMEOUT_S,
    error_delays: Sequence[float] = ERROR_DELAYS,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    retention_s: float | None = DEFAULT_RETENTION_S,
    housekeeping_every_s: float = 3600.0,
    task_status: anyio.abc.TaskStatus[UpdatePoller] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Poll and dispatch until *stop* is set or SIGTERM/SIGINT arrives; then stop the dispatcher gracefully.

    Finished inbox items older than *retention_s* are purged every *housekeeping_every_s* (None: never).

    Raises:
        ConfigurationError: A webhook is set and *delete_webhook* is False (nothing was started).
    """
    await prepare_polling(api, delete_webhook=delete_webhook, drop_pending=drop_pending)
    stop = stop if stop is not None else anyio.Event()
    poller = UpdatePoller(api, inbox, dispatcher, lane_of, poll_timeout_s=poll_timeout_s, error_delays=error_delays)
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        if handle_signals:
            tg.start_soon(functools.partial(stop_on_signal, stop, label="polling"))
        if retention_s is not None:
            tg.start_soon(housekeeping, inbox, retention_s, housekeeping_every_s)
        poll_scope = anyio.CancelScope()
        tg.start_soon(_poll_until, poller, poll_scope)
        task_status.started(poller)
        try:
            await stop.wait()
        finally:
            poll_scope.cancel()
            with anyio.CancelScope(shield=True):
                await dispatcher.stop()
        tg.cancel_scope.cancel()


async def _poll_until(poller: UpdatePoller, scope: anyio.CancelScope) -> None:
    with scope:
        await poller.run()


__all__ = [
    "ALLOWED_UPDATES",
    "PROCESSED_TYPES",
    "WEBHOOK_IS_SET",
    "UpdatePoller",
    "prepare_polling",
    "run_polling",
]
