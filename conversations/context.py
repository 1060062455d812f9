"""The callback context every handler gets: `context.store`, `context.settings`, `context.clock`,
`context.delivery` (wake the outbox's sender after queuing messages for many members), and
`context.session` / `context.data`: where the person is in a flow and their draft, read from
the database by the one door (conversations/door.py) and saved with the update's effects.

Handlers reach storage through it, never through globals (see contexttypesbot.py in ptb).
`SessionData` is the one registry of what a flow may keep in `context.data`.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, cast

from telegram import Update
from telegram.ext import CallbackContext, ExtBot

from bot.clock import Clock
from bot.settings import Settings
from storage.sessions import Session
from storage.store import Store

# The session of the person whose update is being handled (set by the door).
CURRENT_SESSION: ContextVar[Session | None] = ContextVar("cocreate_session", default=None)


@dataclass(frozen=True)
class Risk:
    """This update's words suggested a risk: help was sent; `flag_id` if a flag was raised."""

    flag_id: int | None


# Set by the door when the update's words suggested a risk (conversations/safeguarding.py).
RISK_NOTED: ContextVar[Risk | None] = ContextVar("cocreate_risk", default=None)


# Set by the door while someone is flooding: their flows' replies are not sent (replies.say),
# as they will get one calm "we got your messages" and then an answer to their last one.
QUIET: ContextVar[bool] = ContextVar("cocreate_quiet", default=False)


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


class _HasReask(Protocol):
    async def reask(self, update: Update) -> bool: ...


class _HasDelivery(Protocol):
    delivery: Delivery
    scheduler: Scheduling


Data = dict[Any, Any]


class SessionData(TypedDict, total=False):
    """Everything a flow may keep about a person between their messages (`context.data`).

    Saved as JSON with the session, so values are plain strings, numbers, lists and dicts.
    """

    language: str  # the language picked before consent (onboarding)
    project: str  # a project code from a /start link, kept until consent (onboarding)
    project_unknown: bool  # the /start link named no project we know (onboarding)
    return_to: str  # the onboarding step to go back to after changing language
    prompt_message: int  # the newest message that asked something other than a question
    answering: int  # the question round /questions put first
    listed: int  # the message id of the last message /questions sent (a newer question wins)
    answer: int  # the answer a facilitator is writing back to (reply relay)
    reply: int  # the reply a member is answering back to (reply relay)
    draft: int  # the story or idea being told (sharing)
    shared: int  # the idea whose author is choosing who may see it (sharing)
    statement: int  # the idea a facilitator is editing or summarising; 0: a new statement
    ask: dict[str, Any]  # the question a facilitator is writing (/ask)
    broadcast: dict[str, Any]  # the update a facilitator is writing (/broadcast)
    export: dict[str, Any]  # the export an organiser is choosing (/export)
    track: dict[str, Any]  # the status a facilitator is setting (/ideas, conversations/tracking)
    vote: int  # the idea being weighed, or whose vote is being changed (voting)
    myvotes: int  # where the page of /myvotes starts (voting)


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

    async def ask_again(self, update: Update) -> bool:
        """Asks again the question of the step the person is at in a flow (the flows are
        known to conversations/routes.py only); False if they are in none."""
        return await cast(_HasReask, self.application).reask(update)

    @property
    def session(self) -> Session:
        """The person's session (flow, state, draft), read by the door for this update."""
        session = CURRENT_SESSION.get()
        if session is None:  # outside the door (a job, a test calling a handler directly)
            session = Session(user_id=0)
            CURRENT_SESSION.set(session)
        return session

    @property
    def data(self) -> SessionData:
        """What flows keep about this person between messages (see `SessionData`)."""
        return cast(SessionData, self.session.data)
