"""The composition root: builds the Application with its resources, registers every flow
(in the order conversations/routes.py lists them), and runs it (polling or webhook) with the
outbox's sender and the scheduler alongside.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Protocol
from urllib.parse import urlsplit

from telegram import Update
from telegram.error import RetryAfter, TelegramError
from telegram.ext import (
    ApplicationBuilder,
    ContextTypes,
    Defaults,
)
from telegram.request import BaseRequest

from bot.budget import Budget
from bot.catalogue import LANGUAGES
from bot.clock import Clock
from bot.delivery import DeliveryWorker
from bot.receiving import (
    ChatOrder,
    CocreateApplication,
    CocreateBot,
    CommitFirst,
    DurableUpdateQueue,
)
from bot.scheduler import Scheduler
from bot.settings import Settings
from bot.sms import ChannelRequest, SmsAdapter
from bot.transport import AiohttpRequest
from conversations import prompts
from conversations.commands import member_commands, register_staff_menus
from conversations.context import CocreateContext, Resources
from conversations.replies import say
from conversations.routes import build_routes
from storage.coordination import Coordination
from storage.store import Store

logger = logging.getLogger(__name__)

# Telegram redelivers an unconfirmed update for 24 hours at most: handled updates older than
# this are forgotten, once a day from a minute after start.
INBOX_MEMORY = timedelta(days=2)
PRUNE_JOB, PRUNE_EVERY, PRUNE_FIRST = "inbox:prune", timedelta(days=1), timedelta(minutes=1)
TAKE_OVER_JOB = "processes:take-over"
# Updates handled at once (from different people).
CONCURRENT_UPDATES = 64


def budget(settings: Settings, shared: Coordination | None = None) -> Budget:
    """The one budget every call passes (bot/budget.py), paced as the settings say (and, with
    several processes, by the pace they share)."""
    return Budget(
        settings.broadcast_rate,
        burst=settings.chat_burst,
        per_chat=settings.chat_interval,
        shared=shared,
    )


def build_application(settings: Settings, store: Store, clock: Clock) -> CocreateApplication:
    """Builds the bot with every handler; resources come in, nothing is opened here."""
    resources = Resources(settings=settings, store=store, clock=clock)
    queue = DurableUpdateQueue(store.inbox)
    # SMS members' calls go to the SMS adapter, the rest to Telegram (bot/sms.py).
    request: BaseRequest = AiohttpRequest()
    if settings.sms_on:
        request = ChannelRequest(request, SmsAdapter(settings, store, clock))
    bot = CocreateBot(
        settings.token(),
        update_queue=queue,  # each fetched batch is recorded before it is queued
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        # HTTP over aiohttp, not ptb's httpx: a sixth of the CPU a call (bot/transport.py).
        request=request,
        get_updates_request=AiohttpRequest(connection_pool_size=1),
        defaults=Defaults(tzinfo=settings.tz),
        # One budget for every call, behind a commit of the update's work (see CommitFirst);
        # no retries: a 429 reaches bot/delivery.py, which pauses.
        rate_limiter=CommitFirst(
            budget(settings, store.coordination if store.coordination.shared else None)
        ),
    )
    application = (
        ApplicationBuilder()
        .application_class(CocreateApplication, kwargs={"resources": resources})
        .bot(bot)
        .update_queue(queue)
        .context_types(ContextTypes(context=CocreateContext))
        # Different people at once; each person's updates in order.
        .concurrent_updates(ChatOrder(CONCURRENT_UPDATES))
        .build()
    )
    assert isinstance(application, CocreateApplication)
    # Every flow, in order (conversations/routes.py); each update passes the door first.
    application.add_handlers(build_routes())
    application.add_error_handler(on_error)
    return application


async def prune_inbox(context: CocreateContext) -> int:
    """Forgets handled updates older than INBOX_MEMORY (the daily job); returns how many."""
    pruned = await context.store.inbox.prune(before=context.clock.now() - INBOX_MEMORY)
    await context.store.sms.prune_inbound(before=context.clock.now() - INBOX_MEMORY)
    # Numbers of people who texted but never joined (or said "Not now" as the bot stopped).
    await context.store.sms.forget_unjoined(before=context.clock.now() - INBOX_MEMORY)
    if pruned:
        logger.info("Forgot %s handled updates", pruned)
    return pruned


async def take_over(context: CocreateContext, *, poll_timeout: int = 30) -> None:
    """With several processes (storage/coordination.py), every LEADER_RETRY seconds: leads
    polling or the scheduler if their leader died, and takes up what a dead process left:
    the updates it had recorded but not handled, and its sends left 'sending'."""
    application = context.application
    assert isinstance(application, CocreateApplication)
    if application.closing:  # `running` is stopping polling: never start it again
        return
    store, settings = application.resources.store, application.resources.settings
    coordination = store.coordination
    updater = application.updater
    if (
        not settings.webhook_mode
        and updater is not None
        and not updater.running
        and await coordination.lead("poller")
        and not application.closing
    ):
        await updater.start_polling(timeout=poll_timeout)
        logger.info("This process polls Telegram now")
    if await coordination.lead("scheduler"):
        # What fell due while no one led, and what another process scheduled since (its
        # timers are the leader's alone): due within LEADER_RETRY seconds, not the next tick.
        await application.scheduler.run_due()
    taken = await application.replay_unfinished()
    if taken:
        logger.info("Took up %s updates left by a process that stopped", taken)
    interrupted = await store.outbox.recover_after_restart()
    if interrupted:
        logger.warning("%s messages a stopped process was sending are unconfirmed", interrupted)


async def on_error(update: object, context: CocreateContext) -> None:
    """Logs the failure (never the message itself) and tells the person something went wrong.

    A 429 is Telegram asking us to slow down, not a fault in the code: a warning, no traceback.
    """
    if isinstance(context.error, RetryAfter):
        logger.warning("Telegram asked us to wait (429); a reply was not sent")
    else:
        logger.error("A handler failed: %s", type(context.error).__name__, exc_info=context.error)
    if isinstance(update, Update) and update.effective_user is not None:
        try:
            await say(update, context, "error.generic")
        except TelegramError:
            logger.warning("Could not tell the member about the failure")


async def register_commands(application: CocreateApplication) -> None:
    """Publishes the command menu shown in Telegram, in each language."""
    for language in LANGUAGES:
        commands = member_commands(language)
        await application.bot.set_my_commands(
            commands, language_code=None if language == "en" else language
        )


class ServedWebhook(Protocol):
    """A webhook served by another server (bot/web/webhook.py: a route of the workbench)."""

    async def open(self) -> None: ...

    def close(self) -> None: ...


@asynccontextmanager
async def running(
    application: CocreateApplication,
    *,
    poll_timeout: int = 30,
    webhook: ServedWebhook | None = None,
    sms: ServedWebhook | None = None,
) -> AsyncIterator[CocreateApplication]:
    """Runs the bot (polling, or a webhook when WEBHOOK_URL is set) until the block exits.

    In webhook mode, updates come to `webhook` when given (a route of the workbench's app,
    opened once the bot has started); else to ptb's own webhook server on WEBHOOK_LISTEN:PORT.
    SMS members' texts come to `sms` (bot/web/sms.py), opened once the bot has started too.

    Unfinished updates from before a restart are handled first; on exit, in-flight work
    finishes and whatever was fetched but not handled stays in the inbox for next time.
    The outbox's sender runs alongside, from start to exit.
    """
    settings = application.resources.settings
    secret = settings.webhook_token()  # webhook mode without a secret stops here
    async with application:
        try:
            await register_commands(application)
        except TelegramError as exc:
            logger.warning("Could not register the command menu: %s", exc)
        await application.start()
        # Organisers from ORGANISER_IDS; each staff chat's menu gets its staff commands.
        await application.resources.store.roles.sync_organisers(settings.organiser_ids)
        await register_staff_menus(application.bot, application.resources.store)
        # The outbox's one sender (bot/delivery.py); handlers wake it via context.delivery.
        resources = application.resources
        delivery = DeliveryWorker(application.bot, resources.store, settings, resources.clock)
        application.delivery = delivery
        delivery.start()
        # Questions and broadcasts due now, and the jobs that wake it, rebuilt from the db.
        scheduler = Scheduler(application, prompts.render)
        application.scheduler = scheduler
        scheduler.start()
        try:
            replayed = await application.replay_unfinished()
            if replayed:
                logger.info("Re-queued %s unfinished updates", replayed)
            # Handled updates are forgotten once a day (not at start: a long-running bot's
            # inbox could make the start slow).
            if application.job_queue is not None:
                application.job_queue.run_repeating(
                    prune_inbox, interval=PRUNE_EVERY, first=PRUNE_FIRST, name=PRUNE_JOB
                )
            assert application.updater is not None
            coordination = resources.store.coordination
            if coordination.shared and application.job_queue is not None:
                # Several processes: take over what a dead one led or left, from time to time.
                application.job_queue.run_repeating(
                    partial(take_over, poll_timeout=poll_timeout),
                    interval=settings.leader_retry,
                    first=settings.leader_retry,
                    name=TAKE_OVER_JOB,
                )
            if sms is not None:
                await sms.open()
            if settings.webhook_mode and webhook is not None:
                await webhook.open()
            elif settings.webhook_mode:
                await application.updater.start_webhook(
                    # Loopback by default: a reverse proxy in front takes Telegram's HTTPS.
                    listen=settings.webhook_listen,
                    port=settings.port or 8443,
                    url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
                    webhook_url=settings.webhook_url,
                    secret_token=secret,
                )
            elif await coordination.lead("poller"):  # one process polls Telegram
                await application.updater.start_polling(timeout=poll_timeout)
            else:
                logger.info("Another process polls Telegram; this one stands by")
            logger.info(
                "cocreate is running (%s)", "webhook" if settings.webhook_mode else "polling"
            )
            try:
                yield application
            finally:
                application.closing = True  # a take-over now must not start polling again
                if sms is not None:
                    sms.close()
                if webhook is not None:
                    webhook.close()
                if application.updater.running:
                    await application.updater.stop()
        finally:
            # New updates have stopped; the message in hand is sent, then handlers finish.
            await delivery.stop()
            await application.stop()
            await application.resources.store.inbox.flush()  # done-marks left for later
