"""The callback context every handler gets: `context.store`, `context.settings`, `context.clock`,
and `context.delivery` (wake the outbox's sender after queuing messages for many members).

Handlers reach storage through it, never through globals (see contexttypesbot.py in ptb).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

from telegram.ext import CallbackContext, ExtBot

from bot.clock import Clock
from bot.settings import Settings
from storage.store import Store


@dataclass(frozen=True)
class Resources:
    """What the application was started with; handed in, never created at import."""

    settings: Settings
    store: Store
    clock: Clock


class Delivery(Protocol):
    """The outbox's sender (bot/delivery.py): `wake()` sends what was just queued at once."""

    def wake(self) -> None: ...


class NotDelivering:
    """Stands in until the sender runs: queued rows wait in the outbox, nothing is lost."""

    def wake(self) -> None:
        """Does nothing; the sender sends what is queued when it starts."""


class Scheduling(Protocol):
    """The scheduler (bot/scheduler.py): sends what is due now and plans the next wake-up."""

    async def run_due(self) -> None: ...


class NotScheduling:
    """Stands in until the scheduler runs: what is due waits in the database."""

    async def run_due(self) -> None:
        """Does nothing; the scheduler sends what is due when it starts."""


class _HasResources(Protocol):
    resources: Resources


class _HasDelivery(Protocol):
    delivery: Delivery
    scheduler: Scheduling


Data = dict[Any, Any]


class CocreateContext(CallbackContext[ExtBot[None], Data, Data, Data]):
    """A CallbackContext with typed access to the store, the settings and the clock."""

    @property
    def resources(self) -> Resources:
        return cast(_HasResources, self.application).resources

    @property
    def store(self) -> Store:
        return self.resources.store

    @property
    def settings(self) -> Settings:
        return self.resources.settings

    @property
    def clock(self) -> Clock:
        return self.resources.clock

    @property
    def delivery(self) -> Delivery:
        """Queue with `store.outbox.enqueue_batch(...)`, then call `delivery.wake()`."""
        return cast(_HasDelivery, self.application).delivery

    @property
    def scheduler(self) -> Scheduling:
        """Call `await scheduler.run_due()` after storing something due now."""
        return cast(_HasDelivery, self.application).scheduler

    @property
    def data(self) -> Data:
        """user_data, never None inside a handler for a person's update."""
        return self.user_data if self.user_data is not None else {}
