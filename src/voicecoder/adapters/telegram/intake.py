"""
One ingress runner: an update source stores updates in the durable `Inbox`, the dispatcher runs them.

The webhook (`voicecoder.adapters.telegram.webhook.WebhookSource`) and long polling
(`voicecoder.adapters.telegram.polling.PollingSource`) are two `UpdateSource`s; `run_intake` owns the lifecycle
both share, in this order: the source gets ready (polling's health server, its webhook check); the dispatcher
starts and resumes what the inbox left pending; a SIGTERM/SIGINT handler and the inbox housekeeping start; the
source takes updates until *stop*; then it stops taking them (in-flight requests finish, so nothing acknowledged
is lost), the dispatcher finishes its in-flight updates within its grace period and leaves the rest pending. An
error the source cannot retry (a port that cannot be bound, a refused token) ends the service the same graceful
way and is raised afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

import anyio
import anyio.abc

from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.domain.errors import StateStoreError, VoicecoderError
from voicecoder.domain.ports import Inbox
from voicecoder.signals import stop_on_signal

log = logging.getLogger(__name__)

DEFAULT_RETENTION_S = 7 * 86400.0
"""How long finished updates are kept: well above Telegram's redelivery window (24 h), so late duplicates are known."""

T_co = TypeVar("T_co", covariant=True)
Fail = Callable[[VoicecoderError], None]
"""Ends the service with an error the source cannot retry; it is raised once everything has stopped."""


class UpdateSource(Protocol[T_co]):
    """Where updates come from: the webhook, long polling."""

    label: str
    """For the log ("webhook", "polling")."""

    def ready(self) -> AbstractAsyncContextManager[None]:
        """
        What must hold before the dispatcher starts and until everything stopped (polling: its health server).

        Raises:
            StartupError, ConfigurationError: The source cannot start at all.
        """
        ...

    def taking(self, stop: anyio.Event, fail: Fail) -> AbstractAsyncContextManager[T_co]:
        """
        Take updates into the inbox while entered (yields what ``run_intake`` reports as started); *fail* ends it.

        Raises:
            StartupError: The source cannot start taking updates (e.g. the address cannot be bound).
        """
        ...


async def run_intake(
    source: UpdateSource[T_co],
    *,
    inbox: Inbox,
    dispatcher: UpdateDispatcher | None,
    stop: anyio.Event | None = None,
    handle_signals: bool = True,
    retention_s: float | None = DEFAULT_RETENTION_S,
    housekeeping_every_s: float = 3600.0,
    task_status: anyio.abc.TaskStatus[T_co] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Run *source* and the dispatcher until *stop* is set (or SIGTERM/SIGINT, with *handle_signals*); see the module.

    Finished inbox items older than *retention_s* are purged every *housekeeping_every_s* (None: never). Without
    a *dispatcher* (a stateless ingress replica) the source only stores updates; workers elsewhere run them.

    Raises:
        StartupError, ConfigurationError: What the source raised or failed with, after everything stopped.
    """
    stop = stop if stop is not None else anyio.Event()
    failures: list[VoicecoderError] = []

    def fail(error: VoicecoderError) -> None:
        failures.append(error)
        stop.set()

    async with source.ready(), anyio.create_task_group() as tg:
        await start_beside_intake(
            tg,
            dispatcher,
            inbox,
            stop=stop if handle_signals else None,
            label=source.label,
            retention_s=retention_s,
            housekeeping_every_s=housekeeping_every_s,
        )
        try:
            async with source.taking(stop, fail) as started:
                task_status.started(started)
                await stop.wait()
                log.info("%s: stopping", source.label)
        except VoicecoderError as exc:  # StartupError, ConfigurationError: raised below, once all is stopped
            failures.append(exc)
        finally:
            if dispatcher is not None:
                with anyio.CancelScope(shield=True):
                    await dispatcher.stop()
        tg.cancel_scope.cancel()
    if failures:
        raise failures[0]


async def start_beside_intake(
    tg: anyio.abc.TaskGroup,
    dispatcher: UpdateDispatcher | None,
    inbox: Inbox,
    *,
    stop: anyio.Event | None,
    label: str,
    retention_s: float | None,
    housekeeping_every_s: float,
) -> None:
    """
    Start in *tg* what runs beside any source (the Telethon transport's too), in this order.

    The dispatcher comes first, because it resumes what the inbox left pending before new items arrive; then a
    SIGTERM/SIGINT handler that sets *stop* (None: no signal handling); then the inbox housekeeping (None
    *retention_s*: none).
    """
    if dispatcher is not None:
        await tg.start(dispatcher.run)
    if stop is not None:
        tg.start_soon(functools.partial(stop_on_signal, stop, label=label))
    if retention_s is not None:
        tg.start_soon(housekeeping, inbox, retention_s, housekeeping_every_s)


async def housekeeping(inbox: Inbox, retention_s: float, every_s: float) -> None:
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


@contextlib.asynccontextmanager
async def nothing_to_prepare() -> AsyncIterator[None]:
    """The `UpdateSource.ready` of a source that needs nothing before the dispatcher starts."""
    yield


__all__ = [
    "DEFAULT_RETENTION_S",
    "Fail",
    "UpdateSource",
    "housekeeping",
    "nothing_to_prepare",
    "run_intake",
    "start_beside_intake",
]
