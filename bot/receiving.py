"""Receiving through a durable inbox, exactly once (docs/architecture.md, Receiving).

ptb's Updater confirms a batch to Telegram with its next getUpdates, before handlers have run;
its webhook server answers Telegram once the update is queued. Both go through
`update_queue.put`, so `DurableUpdateQueue.put` writes the update to the inbox table first.
`CocreateApplication.process_update` then hands it to the one door (conversations/door.py),
which handles it as one unit of work: its effects, the person's place in a flow and the
update's id commit together before each message the bot sends (`CommitFirst`), and the
inbox's done-mark with the last commit. ptb's persistence is not used: nothing waits for its
60-second flush. At start, `replay_unfinished` queues what was recorded but never finished,
in order; the door recognises an update that was applied before the crash.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseRateLimiter

from conversations import routes
from conversations.context import (
    CocreateContext,
    Delivery,
    NotDelivering,
    NotScheduling,
    Resources,
    Scheduling,
)
from conversations.door import Door
from storage.db import commit_point
from storage.inbox import Inbox

logger = logging.getLogger(__name__)


class DurableUpdateQueue(asyncio.Queue[object]):
    """An update queue that records each update on disk before accepting it."""

    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self._inbox = inbox

    async def put(self, item: object) -> None:
        """Records an Update, then queues it; drops one already recorded (a redelivery)."""
        if isinstance(item, Update):
            payload = json.dumps(item.to_dict(recursive=True))
            if not await self._inbox.record(item.update_id, payload):
                logger.debug("Update %s was seen before; not handling it twice", item.update_id)
                return
        await super().put(item)

    async def requeue(self, item: Update) -> None:
        """Queues an update that is already in the inbox (a replay at start)."""
        await super().put(item)


class CocreateApplication(Application):  # type: ignore[type-arg]
    """ptb's Application, handing resources to handlers and finishing updates durably."""

    def __init__(self, *, resources: Resources, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.resources = resources
        # The outbox's sender; `running()` puts the real one here once the bot has started.
        self.delivery: Delivery = NotDelivering()
        self.scheduler: Scheduling = NotScheduling()
        self._last_handled = 0
        self._handled = asyncio.Condition()
        self.door = Door(resources, lambda: self.delivery.wake())

    async def process_update(self, update: object) -> None:
        """Handles an update through the one door, which marks it done in the inbox."""
        if not isinstance(update, Update):
            await super().process_update(update)
            return
        await self.door.handle(update, super().process_update, self.reask)
        async with self._handled:
            self._last_handled = max(self._last_handled, update.update_id)
            self._handled.notify_all()

    async def reask(self, update: Update) -> bool:
        """Asks the person again where they are in a flow (conversations/routes.py)."""
        context = CocreateContext.from_update(update, self)
        return await routes.reask(update, context)

    async def replay_unfinished(self) -> int:
        """Queues every update recorded but never finished; returns how many."""
        queue = self.update_queue
        assert isinstance(queue, DurableUpdateQueue)
        pending = await self.resources.store.inbox.unfinished()
        for update_id, payload in pending:
            update = Update.de_json(json.loads(payload), self.bot)
            logger.info("Handling update %s, left unfinished before the restart", update_id)
            await queue.requeue(update)
        return len(pending)

    async def wait_handled(self, update_id: int, timeout: float = 10.0) -> None:
        """Waits until the update (and those before it) has been handled."""
        async with asyncio.timeout(timeout), self._handled:
            await self._handled.wait_for(lambda: self._last_handled >= update_id)


class CommitFirst(BaseRateLimiter[Any]):
    """Commits the current update's writes before any request leaves for Telegram.

    Every Bot API call passes ptb's rate limiter, so wrapping it is the one place where "an
    answer is on disk before the bot says saved" holds for every reply. Then it defers to the
    real limiter (`inner`).
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
        """Commits, then lets the real limiter send the request."""
        await commit_point()
        return await self.inner.process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )
