"""
`voicecoder serve --transport telethon`: the bot on MTProto through its own Telethon client, as durable as the webhook.

Start-up: the runtime is open (state, workspace, inbox); the dispatcher starts and resumes what a previous run
left pending; voicecoder's handlers are registered; only then does the client connect and log in with the bot
token, so nothing Telethon catches up on (``updates.getDifference`` from the update state saved in the session
file) arrives before it can be stored. Every update is written to the durable inbox before anything runs (keyed
by message id, so a message delivered twice is stored once) and the dispatcher runs it in order per chat lane,
button presses in their own lane, with retries — as for the webhook (ADR 0008, ADR 0016).

Shutdown (SIGTERM/SIGINT, or *stop*): the dispatcher takes no new work and lets running turns finish within its
grace period, leaving the rest pending for the next start, while updates still arriving are stored; then the
client disconnects, which saves the update state in the session file; then the handlers go. A connection Telegram
drops for good (Telethon's reconnects exhausted) ends `serve` with an error, so a supervisor restarts it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc
import attrs
from telethon import errors
from telethon.tl import functions, types

from voicecoder.adapters.telegram.dispatcher import UpdateDispatcher
from voicecoder.adapters.telegram.intake import DEFAULT_RETENTION_S, housekeeping
from voicecoder.adapters.telethon import TelethonUpdates
from voicecoder.adapters.telethon.records import CALLBACK, TelethonUpdate
from voicecoder.adapters.telethon.updates import Intake
from voicecoder.config import MTPROTO_APP
from voicecoder.domain.app import COMMANDS
from voicecoder.domain.errors import ConfigurationError, DeliveryError, StateStoreError, VoicecoderError
from voicecoder.domain.inbox import InboxItem
from voicecoder.domain.ports import Inbox, Messenger
from voicecoder.domain.services import VoiceCoder
from voicecoder.signals import stop_on_signal

__all__ = ["TelethonIngress", "announce_commands", "durable_intake", "login_bot"]

log = logging.getLogger(__name__)

_MAX_ID_BUMPS = 1000


def durable_intake(inbox: Inbox, dispatcher: UpdateDispatcher) -> Intake:
    """Store each update in *inbox* (durably) and hand it to *dispatcher*; a message seen before is skipped."""

    async def take(update: TelethonUpdate) -> None:
        update_id, body, received = update.update_id, update.body(), time.time()
        try:
            fresh = await inbox.put(update_id, update.lane, body)
            # Telegram never delivers a button press twice: an id already taken belongs to an old press (the
            # clock went back since), so this one takes the next free id.
            bumps = 0
            while not fresh and update.kind == CALLBACK and bumps < _MAX_ID_BUMPS:
                update_id, bumps = update_id + 1, bumps + 1
                fresh = await inbox.put(update_id, update.lane, body)
        except StateStoreError:
            log.exception("telethon: update %d (lane %s) could not be stored and is lost", update_id, update.lane)
            return
        if not fresh:
            log.info("telethon: message %d arrived again (after a restart); it is handled once", update_id)
            return
        dispatcher.submit(
            InboxItem(update_id=update_id, lane=update.lane, body=body, received_at=received, parsed=update.record)
        )

    return take


async def login_bot(client: Any, token: str, *, session: str = "the session file") -> Any:
    """
    Connect *client* and log it in as the bot of *token* (unless its session already is); returns the bot's user.

    Raises:
        ConfigurationError: Telegram refused API_ID/API_HASH or the token, or the session belongs to someone else.
        DeliveryError: Telegram could not be reached or failed.
    """
    try:
        await client.connect()
        if not await client.is_user_authorized():
            await client.sign_in(bot_token=token)
        me = await client.get_me()
    except (errors.ApiIdInvalidError, errors.ApiIdPublishedFloodError) as exc:
        raise ConfigurationError(f"Telegram refused API_ID/API_HASH ({type(exc).__name__}). {MTPROTO_APP}") from None
    except (errors.AccessTokenInvalidError, errors.AccessTokenExpiredError) as exc:
        raise ConfigurationError(
            f"Telegram refused TELEGRAM_TOKEN ({type(exc).__name__}): copy the bot token from @BotFather again."
        ) from None
    except (errors.UnauthorizedError, errors.AuthKeyError) as exc:
        raise ConfigurationError(
            f"Telegram no longer accepts {session} ({type(exc).__name__}): delete it (and unset "
            "TELETHON_SESSION_STRING) to log in again with TELEGRAM_TOKEN."
        ) from None
    except errors.RPCError as exc:
        raise DeliveryError(f"Telegram refused the MTProto login: {type(exc).__name__}") from exc
    except (ConnectionError, OSError) as exc:
        raise DeliveryError(f"Could not reach Telegram over MTProto: {str(exc) or type(exc).__name__}") from exc
    if me is None or not getattr(me, "bot", False):
        raise ConfigurationError(
            f"{session} is logged in as a user account, not a bot: delete it (and unset TELETHON_SESSION_STRING) "
            "so voicecoder logs in with TELEGRAM_TOKEN."
        )
    if str(me.id) != token.split(":", 1)[0]:
        raise ConfigurationError(
            f"{session} belongs to the bot @{me.username} (id {me.id}), TELEGRAM_TOKEN to another bot: use the "
            "matching token, or delete the session (and unset TELETHON_SESSION_STRING) to log in with this one."
        )
    return me


async def announce_commands(client: Any) -> None:
    """Register `COMMANDS` as the bot's command menu; cosmetic, so a failure is only logged."""
    request = functions.bots.SetBotCommandsRequest(
        scope=types.BotCommandScopeDefault(),
        lang_code="",
        commands=[types.BotCommand(command=name, description=text) for name, text in COMMANDS],
    )
    try:
        await client(request)
    except (errors.RPCError, ConnectionError) as exc:
        log.warning("telethon: setting the command menu failed: %s", type(exc).__name__)


async def _watch_connection(client: Any, stop: anyio.Event, lost: list[bool]) -> None:
    try:
        await client.disconnected
    except Exception as exc:  # Telethon sets the future's exception to why the connection went
        log.warning("telethon: disconnected: %s", type(exc).__name__)
    if not stop.is_set():
        lost.append(True)
        stop.set()


async def _cancel_on(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()


@attrs.define
class TelethonIngress:
    """
    `voicecoder serve` over MTProto: the bot's Telethon client, its updates into the durable inbox.

    The container builds it (with the runtime's inbox and dispatcher); the entrypoint only starts it.
    """

    app: VoiceCoder
    client: Any
    messenger: Messenger
    inbox: Inbox
    dispatcher: UpdateDispatcher
    token: str = attrs.field(repr=False)
    session: str
    max_bytes: int
    keep_warm: Callable[..., Coroutine[Any, Any, Any]] | None = None
    retention_s: float | None = DEFAULT_RETENTION_S
    housekeeping_every_s: float = 3600.0

    async def run(
        self,
        *,
        stop: anyio.Event | None = None,
        handle_signals: bool = True,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """
        Serve on MTProto until *stop* is set or SIGTERM/SIGINT arrives; reports the bot's user id once logged in.

        The runtime must be open (with its inbox).

        Raises:
            ConfigurationError: TELEGRAM_TOKEN, API_ID/API_HASH or the session are refused.
            DeliveryError: Telegram could not be reached, or the connection was lost for good.
        """
        await _serve(self, stop=stop, handle_signals=handle_signals, task_status=task_status)


async def _serve(
    ingress: TelethonIngress,
    *,
    stop: anyio.Event | None,
    handle_signals: bool,
    task_status: anyio.abc.TaskStatus[int],
) -> None:
    client, inbox, dispatcher = ingress.client, ingress.inbox, ingress.dispatcher
    updates = TelethonUpdates(
        ingress.app,
        client,
        messenger=ingress.messenger,
        max_bytes=ingress.max_bytes,
        intake=durable_intake(inbox, dispatcher),
    )
    stop = stop if stop is not None else anyio.Event()
    lost: list[bool] = []
    refused: VoicecoderError | None = None
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.run)
        if ingress.keep_warm is not None:
            await tg.start(ingress.keep_warm)  # reaps idle CLI processes; closes them all on the way out
        if handle_signals:
            tg.start_soon(functools.partial(stop_on_signal, stop, label="telethon"))
        if ingress.retention_s is not None:
            tg.start_soon(housekeeping, inbox, ingress.retention_s, ingress.housekeeping_every_s)
        updates.register()
        try:
            with anyio.CancelScope() as login:  # a stop during a slow (re)connect ends it
                tg.start_soon(_cancel_on, stop, login)
                me = await login_bot(client, ingress.token, session=ingress.session)
            if not login.cancelled_caught:
                log.info("telethon: logged in as @%s (id %s); taking updates", me.username, me.id)
                tg.start_soon(announce_commands, client)
                tg.start_soon(_watch_connection, client, stop, lost)
                task_status.started(int(me.id))
                await stop.wait()
        except (ConfigurationError, DeliveryError) as exc:
            refused = exc  # raised once everything is shut down, not wrapped in the task group's ExceptionGroup
        finally:
            with anyio.CancelScope(shield=True):
                await dispatcher.stop()
                await client.disconnect()
                await updates.drain()
                updates.unregister()
        tg.cancel_scope.cancel()
    if refused is not None:
        raise refused
    if lost:
        raise DeliveryError("Lost the MTProto connection to Telegram and could not reconnect; start again.")
