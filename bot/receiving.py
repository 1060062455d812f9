"""Receiving through a durable inbox, exactly once (docs/architecture.md, Receiving).

ptb's Updater confirms a batch to Telegram with its next getUpdates, before handlers have run;
its webhook server answers Telegram once the update is queued. So `CocreateBot.get_updates`
records each batch it fetches in the inbox table, in one transaction, before the Updater
queues it; and `DurableUpdateQueue.put` records an update that came another way (a webhook's
POST) before accepting it. Updates from different people are handled concurrently, each
person's strictly in order (`ChatOrder`).
`CocreateApplication.process_update` then hands it to the one door (conversations/door.py),
which handles it as one unit of work: its effects, the person's place in a flow and the
update's id commit together before each message the bot sends (`CommitFirst`), and the
inbox's done-mark with the last commit. A call that tells no one what the update did
(`QUIET_CALLS`: a button's answer, a chat action, getFile) is no commit point: were it one,
it would mark the update applied before the handler's writes that follow it, and a kill
just then would lose them (the replay only asks again). Without it, a replay runs the
handler again, and Telegram refusing a second answer to a button is harmless.
ptb's persistence is not used: nothing waits for its 60-second flush. At start,
`replay_unfinished` queues what was recorded but never finished, in order; the door
recognises an update that was applied before the crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseRateLimiter, BaseUpdateProcessor, ExtBot

from bot.budget import ANSWERING_SINCE, acted_at
from bot.channels import Channel, channel_of
from conversations import routes
from conversations.context import (
    CocreateContext,
    Delivery,
    NotDelivering,
    NotScheduling,
    Resources,
    Scheduling,
)
from conversations.door import Dispatch, Door
from storage.db import commit_point, uncommitted
from storage.inbox import Inbox

logger = logging.getLogger(__name__)


def _payload(update: Update) -> str:
    return json.dumps(update.to_dict(recursive=True))


class DurableUpdateQueue(asyncio.Queue[object]):
    """An update queue that records each update on disk before accepting it.

    It also knows which updates are queued or in hand but not finished (`unfinished`), and
    the highest update id it ever took from each channel (`highest`: Telegram's ids and an
    SMS member's, bot/channels.py, are separate ranges), for
    `CocreateApplication.wait_handled`.
    """

    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self._inbox = inbox
        # Updates a getUpdates batch recorded (True: new; False: a redelivery), until queued.
        self._decided: dict[int, bool] = {}
        self.unfinished: set[int] = set()
        self.highest: dict[Channel, int] = {}

    async def record_batch(self, updates: tuple[Update, ...]) -> None:
        """Records a fetched batch in one transaction (`CocreateBot.get_updates`)."""
        fresh = await self._inbox.record_batch(
            [(u.update_id, _payload(u), person_of(u)) for u in updates]
        )
        for update in updates:
            self._decided[update.update_id] = update.update_id in fresh

    async def put(self, item: object) -> None:
        """Records an Update, then queues it; drops one already recorded (a redelivery)."""
        if isinstance(item, Update):
            fresh = self._decided.pop(item.update_id, None)
            if fresh is None:  # not from a batch: a webhook's POST
                fresh = await self._inbox.record(item.update_id, _payload(item), person_of(item))
            if not fresh:
                logger.debug("Update %s was seen before; not handling it twice", item.update_id)
                return
            self._taking(item)
        await super().put(item)

    async def requeue(self, item: Update) -> None:
        """Queues an update that is already in the inbox (a replay at start)."""
        self._taking(item)
        await super().put(item)

    def _taking(self, update: Update) -> None:
        self.unfinished.add(update.update_id)
        channel = channel_of(update.update_id)
        self.highest[channel] = max(self.highest.get(channel, 0), update.update_id)

    def taken(self, update_id: int) -> bool:
        """Whether this update (or a later one of its channel) has been taken."""
        return self.highest.get(channel_of(update_id), 0) >= update_id


class CocreateBot(ExtBot[None]):
    """ptb's bot, recording each batch getUpdates fetches in the inbox before ptb's Updater
    queues it (and, with its next getUpdates, confirms it to Telegram)."""

    def __init__(self, *args: Any, update_queue: DurableUpdateQueue, **kwargs: Any) -> None:
        self._update_queue = update_queue  # set before ptb freezes the bot's attributes
        super().__init__(*args, **kwargs)

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        """Fetches updates, then records the whole batch in one transaction."""
        updates = await super().get_updates(*args, **kwargs)
        if updates:
            await self._update_queue.record_batch(updates)
        return updates


def person_of(update: object) -> int | None:
    """Whose update this is (the user, else the chat); None for an update from no one."""
    if not isinstance(update, Update):
        return None
    if update.effective_user is not None:
        return update.effective_user.id
    return update.effective_chat.id if update.effective_chat is not None else None


class ChatOrder(BaseUpdateProcessor):
    """Handles updates from different people concurrently (at most `at_once` at a time), and
    each person's strictly in the order they came: each waits for that person's update
    before it.

    The order is fixed when ptb starts an update's task (tasks start in the order updates were
    queued), before anything waits: ptb's own limit is set out of reach, so that its
    semaphore never makes a task wait, and ours is taken only once it is this person's turn
    (a flood from one person waits in line without taking everyone's places).
    `behind(person)` says how many of their updates wait behind the one in hand: the door's
    measure of a flood.
    """

    def __init__(self, at_once: int) -> None:
        super().__init__(max_concurrent_updates=2**31 - 1)
        self._at_once = asyncio.Semaphore(at_once)
        self._last: dict[int, asyncio.Future[None]] = {}
        self._count: Counter[int] = Counter()

    def behind(self, person: int) -> int:
        """How many of this person's updates wait behind the one being handled."""
        return max(self._count[person] - 1, 0)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Waits for this person's previous update and a free place, then handles this one."""
        person = person_of(update)
        if person is None:
            async with self._at_once:
                await coroutine
            return
        previous = self._last.get(person)
        mine = asyncio.get_running_loop().create_future()
        self._last[person] = mine
        self._count[person] += 1
        try:
            if previous is not None:
                await asyncio.wait((previous,))  # not cancelled with this task
            async with self._at_once:
                await coroutine
        finally:
            self._count[person] -= 1
            if not self._count[person]:
                del self._count[person]
            mine.set_result(None)
            if self._last.get(person) is mine:
                del self._last[person]
            if asyncio.iscoroutine(coroutine):
                coroutine.close()  # never started if this task was cancelled while waiting

    async def initialize(self) -> None:
        """Nothing to open."""

    async def shutdown(self) -> None:
        """Nothing to close."""


class CocreateApplication(Application):  # type: ignore[type-arg]
    """ptb's Application, handing resources to handlers and finishing updates durably."""

    def __init__(self, *, resources: Resources, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resources = resources
        # The outbox's sender; `running()` puts the real one here once the bot has started.
        self.delivery: Delivery = NotDelivering()
        self.scheduler: Scheduling = NotScheduling()
        self.closing = False  # set by bot/app.py `running` as it stops taking updates
        self._handled = asyncio.Condition()
        processor = self.update_processor
        behind = processor.behind if isinstance(processor, ChatOrder) else (lambda _: 0)
        self.door = Door(resources, lambda: self.delivery.wake(), behind)

    async def process_update(self, update: object) -> None:
        """Handles an update through the one door, which marks it done in the inbox."""
        if not isinstance(update, Update):
            await super().process_update(update)
            return
        # The budget paces a late reply as it paces a broadcast (bot/budget.py).
        answering = ANSWERING_SINCE.set(acted_at(update))
        try:
            person = person_of(update)
            coordination = self.resources.store.coordination
            if coordination.shared and person is not None:
                async with coordination.person(person):
                    await self._in_turn(update, person, super().process_update)
            else:
                await self.door.handle(update, super().process_update, self.reask)
        finally:
            ANSWERING_SINCE.reset(answering)
            async with self._handled:
                self._durable_queue.unfinished.discard(update.update_id)
                self._handled.notify_all()

    async def _in_turn(self, update: Update, person: int, dispatch: Dispatch) -> None:
        """Handles a person's update while this process alone handles them (several
        processes share the database): first their older updates still waiting, whichever
        process recorded them, then this one, unless another process has handled it."""
        waiting = await self.resources.store.inbox.take_waiting(person, update.update_id)
        for update_id, payload in waiting:
            if update_id == update.update_id:
                await self.door.handle(update, dispatch, self.reask)
                return
            logger.info("Handling update %s first: it came before this one", update_id)
            older = Update.de_json(json.loads(payload), self.bot)
            await self.door.handle(older, dispatch, self.reask)
        logger.debug("Update %s was handled by another process", update.update_id)

    async def reask(self, update: Update) -> bool:
        """Asks the person again where they are in a flow (conversations/routes.py)."""
        context = CocreateContext.from_update(update, self)
        return await routes.reask(update, context)

    @property
    def _durable_queue(self) -> DurableUpdateQueue:
        queue = self.update_queue
        assert isinstance(queue, DurableUpdateQueue)
        return queue

    async def replay_unfinished(self) -> int:
        """Queues every update recorded but never finished; returns how many."""
        queue = self._durable_queue
        pending = await self.resources.store.inbox.unfinished()
        for update_id, payload in pending:
            update = Update.de_json(json.loads(payload), self.bot)
            logger.info("Handling update %s, left unfinished before the restart", update_id)
            await queue.requeue(update)
        return len(pending)

    async def wait_handled(self, update_id: int, timeout: float = 10.0) -> None:
        """Waits until the update has been taken and handled (by its id)."""
        queue = self._durable_queue
        async with asyncio.timeout(timeout), self._handled:
            await self._handled.wait_for(
                lambda: queue.taken(update_id) and update_id not in queue.unfinished
            )


# Calls that tell no one what an update did, and are harmless to make again: no commit points.
QUIET_CALLS = frozenset(
    {"answerCallbackQuery", "sendChatAction", "getFile", "setMyCommands", "deleteMyCommands"}
)


class CommitFirst(BaseRateLimiter[Any]):
    """Commits the current update's writes before any request leaves for Telegram, except
    `QUIET_CALLS`.

    Every Bot API call passes ptb's rate limiter, so wrapping it is the one place where "an
    answer is on disk before the bot says saved" holds for every reply. Then it defers to the
    real limiter (`inner`). A quiet call made while the update has writes not yet committed
    (rare: the door's, a language chosen) keeps them uncommitted meanwhile, in the update's
    transaction; and it does not wait for a turn in the real limiter: a broadcast's turn
    there may be waiting for its own commit, which (SQLite has one writer) would wait for
    this update's.
    """

    def __init__(self, inner: BaseRateLimiter[Any]) -> None:
        self.inner = inner

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Any,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Commits (unless the call is quiet), then lets the real limiter send the request."""
        if endpoint in QUIET_CALLS:
            if uncommitted():
                return await callback(*args, **kwargs)
        else:
            await commit_point()
        return await self.inner.process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )
