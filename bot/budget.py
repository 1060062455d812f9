"""The one budget every Bot API call passes (../shared/DESIGN.md, Delivery): `Budget`.

It is ptb's rate limiter (bot/app.py: `ApplicationBuilder().rate_limiter(Budget(rate))`), so
the handlers' replies, the outbox's sender (bot/delivery.py) and every other call pass it
(ptb never limits getUpdates). Telegram's limits count messages, so only new messages (send*,
copies and forwards) take a turn here; edits, answers to buttons, chat actions and every other
call go at once (they counted against the 30 a second until December 2026, so a member joining
took 21 turns where 10 are messages):

- overall: new messages leave one at a time on an even schedule, `rate` a second (BROADCAST_RATE)
  less a small margin for the network; a delay of up to `CATCH_UP` (a busy machine) is caught
  up by the next calls, which then leave closer together; and never more than `rate` in any
  1-second window (a sliding window over when calls really left). At a high rate, the bulk
  calls whose slots come within the outbox's commit are chosen together (see `_dispatch`);
- per chat: about one a second sustained, with a short burst (`burst` at once, then one a
  second), so a reply and the next question go together. Bulk messages (the outbox's, marked
  with `Bulk`) only take a chat's sustained second: two broadcasts never arrive together;
- replies (any call without `Bulk`: a handler answering someone who just wrote) go ahead of
  bulk; within each, chats are served round-robin. A reply that leaves more than
  `REPLY_BURST_FOR` after the member acted (the update's message date, or when the update's
  handling began: `ANSWERING_SINCE`) no longer comes with its chat's burst: it waits a second
  after the chat's last message, as bulk does (the member is no longer watching for it, and
  to Telegram it is a message out of the blue);
- several processes on one database (`shared`: storage/coordination.py): each call, once this
  budget lets it go, also waits for the pace every process shares, spaced as this budget
  spaces its own calls, and takes its moment there only once it has come (it then leaves at
  once). When its request comes back (Telegram had it by then), the pace is told: a call
  waits a second (and `SHARED_SLACK`) after the request `rate` calls back came back, and a
  paced message to a chat a second after that chat's last one came back. A request reaches
  Telegram some milliseconds after its moment, under load a few hundred: counted from when
  they came back, those delays hold the next calls back instead of bunching with them.

A bulk call's `Bulk.leaving` is awaited once the budget has chosen it, just before its request
leaves; the outbox marks its row 'sending' there, so a row waiting here is still 'queued'. If
`leaving` says no, the request is not made and `NotSent` is raised.

Nothing is retried here: a RetryAfter reaches the caller (the outbox pauses all its sending).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import BaseRateLimiter

from storage.coordination import Coordination

logger = logging.getLogger(__name__)

Chat = int | str | None  # a chat id, a channel's @name, or None (a call to no chat)
JSONResult = bool | dict[str, Any] | list[dict[str, Any]]
EPSILON = 1e-6  # seconds: waits shorter than this are no wait
# New messages one chat may get at once (replies; then about one a second): a reply and the
# next question, or a page of answers, are not slowed; a flood is.
BURST = 20
# Seconds the even schedule leaves spare in each second (`rate` slots span 1 s and this): a
# request reaches the network (and Telegram) a few milliseconds after it leaves the budget,
# and not always the same few; and a call that leaves that much late does not delay the next.
WINDOW_SLACK = 0.01
FORGET_ABOVE = 4096  # chats the budget remembers before it forgets idle ones
# A call that leaves at most this much after its slot (a busy event loop) keeps the schedule:
# the next calls catch up, so the rate is kept; a later one starts the schedule again.
CATCH_UP = 0.1
# The most a bulk call is chosen before its slot, for its `leaving` (the outbox's commit).
MOST_EARLY = 0.025
MOST_TOGETHER = 100  # bulk calls chosen at once (see _dispatch)
# Seconds after the member acted within which a reply still comes with its chat's burst.
# Telegram (and the emulator's counter, emulator/rates.py) take a message more than 5 s after
# the member's last action as unprompted; the update's time is known to a second (a message's
# date) or only from when its handling began (a button), so this leaves a margin.
REPLY_BURST_FOR = 3.0
# With several processes: the shared window's span is a second and this (the database's clock
# is not Telegram's). Measured (tests/test_processes_pg.py, 3 processes, a 2-core machine at a
# load of 4 to 11): a request reaches the emulator 5 ms after its moment at the median, 65 to
# 180 ms at the 99th centile, 600 ms at most; so the moments alone could not keep the rates.
SHARED_SLACK = 0.01

# When the member acted whose update is being handled (time.time()), set for its handling
# (bot/receiving.py); None outside an update (a reply as far as the budget knows).
ANSWERING_SINCE: ContextVar[float | None] = ContextVar("cocreate_answering_since", default=None)


def acted_at(update: Update, now: float | None = None) -> float:
    """When the member did what `update` says, as far as the bot knows: a message's date
    (Telegram's, to the second: the member acted no later), else now (a button press has no
    date; its handling begins about when it arrives)."""
    now = time.time() if now is None else now
    message = update.message or update.edited_message
    if message is not None and message.date is not None:
        date = message.date.timestamp()
        if now - 60 < date <= now:  # a clock far off (a test's) says nothing
            return date
    return now


def _is_new_message(endpoint: str) -> bool:
    if endpoint in ("copyMessage", "copyMessages", "forwardMessage", "forwardMessages"):
        return True
    return endpoint.startswith("send") and endpoint != "sendChatAction"


class NotSent(TelegramError):
    """The request was never made: its `Bulk.leaving` said no, or the budget shut down."""

    def __init__(self, message: str = "not sent") -> None:
        super().__init__(message)


@dataclass(frozen=True, eq=False)
class Bulk:
    """`rate_limit_args` of a bulk message (an outbox row): it goes after replies, at most one
    a second to its chat; `leaving()` is awaited just before the request leaves, and the
    request is made only if it returns True."""

    leaving: Callable[[], Awaitable[bool]]


@dataclass(eq=False)
class _Ticket:
    chat: Chat
    bulk: Bulk | None
    turn: asyncio.Future[None]  # done when the budget has chosen this call
    gone: asyncio.Future[float | None]  # when it left (monotonic), or None: it never did
    at: float = 0.0  # its slot, once chosen: when it may leave; once it left, when it did
    since: float | None = None  # a reply: when the member acted (time.time()), if known

    def paced(self) -> bool:
        """Whether it waits for its chat's second: bulk, or a reply gone late."""
        return self.bulk is not None or (
            self.since is not None and time.time() - self.since > REPLY_BURST_FOR
        )


@dataclass
class _ChatUse:
    tokens: float  # the burst left; one comes back every `per_chat` seconds
    at: float  # when `tokens` was counted
    last: float  # when the last call to this chat left


@dataclass
class _Queues:
    """Calls waiting for their turn, by chat, in the order chats are served (round-robin)."""

    by_chat: OrderedDict[Chat, deque[_Ticket]] = field(default_factory=OrderedDict)

    def add(self, ticket: _Ticket) -> None:
        self.by_chat.setdefault(ticket.chat, deque()).append(ticket)

    def remove(self, ticket: _Ticket) -> None:
        waiting = self.by_chat.get(ticket.chat)
        if waiting is not None and ticket in waiting:
            waiting.remove(ticket)
            if not waiting:
                del self.by_chat[ticket.chat]

    def take(self, chat: Chat) -> _Ticket:
        """The chat's oldest call; the chat goes to the back of the line."""
        waiting = self.by_chat.pop(chat)
        ticket = waiting.popleft()
        if waiting:
            self.by_chat[chat] = waiting
        return ticket


class Budget(BaseRateLimiter[Bulk]):
    """Paces every Bot API call: `rate` a second overall (None: no overall limit), and about
    one a second per chat after a burst of `burst`."""

    def __init__(
        self,
        rate: float | None = 30,
        *,
        burst: int = BURST,
        per_chat: float = 1.0,
        window_slack: float = WINDOW_SLACK,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        shared: Coordination | None = None,
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError("rate must be positive, or 0 or None for no overall limit")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate or None
        # `rate` turns span the 1-second window and its slack (and a hair, for rounding).
        self._interval = (1.0 + window_slack + EPSILON) / rate if rate else 0.0
        self._catch_up = max(self._interval / 4, CATCH_UP)
        self._burst = burst
        self._per_chat = per_chat
        self.monotonic = monotonic
        self._sleep = sleep
        self._replies = _Queues()
        self._bulk = _Queues()
        self._chats: dict[Chat, _ChatUse] = {}
        self._forget_above = FORGET_ABOVE  # chats remembered before idle ones are forgotten
        # When the next call may leave: its slot on an even schedule (kept through small
        # delays, so the rate is reached), and never sooner than a second after the call
        # `rate` calls back really left (so that no 1-second window ever holds more than
        # `rate`, even when calls left late and the next ones catch up).
        self._slot = float("-inf")
        self._recent: deque[_Ticket] = deque(maxlen=int(rate) if rate and rate >= 1 else 1)
        # How long a bulk call's `leaving` takes (the outbox's commit): a bulk call is chosen
        # that much before its slot, so that it still leaves on time.
        self._lead = 0.0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        # Several processes on one database: the pace they share (storage/coordination.py),
        # the window it keeps (`rate` calls; none without a rate), and the tasks telling it
        # that requests came back.
        self._shared = shared
        self._most = int(rate) if rate else 0
        self._telling: set[asyncio.Task[None]] = set()

    # ---- ptb's interface

    async def initialize(self) -> None:
        """Starts choosing calls (also done by the first call)."""
        self._start()

    async def shutdown(self) -> None:
        """Stops; calls still waiting for their turn raise NotSent."""
        task, self._dispatcher = self._dispatcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for queues in (self._replies, self._bulk):
            for waiting in queues.by_chat.values():
                for ticket in waiting:
                    if not ticket.turn.done():
                        ticket.turn.set_exception(NotSent("the bot is stopping"))
            queues.by_chat.clear()
        if self._telling:
            await asyncio.wait(set(self._telling), timeout=5)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Bulk | None,
    ) -> JSONResult:
        """Waits for the call's turn, then makes it (once: nothing is retried here). Only new
        messages take a turn: Telegram's limits count messages, so an edit, an answer to a
        button, a chat action or any other call goes at once."""
        bulk = rate_limit_args if isinstance(rate_limit_args, Bulk) else None
        if bulk is None and not _is_new_message(endpoint):
            return await callback(*args, **kwargs)
        self._start()
        loop = asyncio.get_running_loop()
        chat = data.get("chat_id")
        since = ANSWERING_SINCE.get() if bulk is None else None
        ticket = _Ticket(chat, bulk, loop.create_future(), loop.create_future(), since=since)
        (self._bulk if bulk else self._replies).add(ticket)
        self._wake.set()
        try:
            await ticket.turn
            if bulk is not None:
                started = self.monotonic()
                going = await bulk.leaving()
                self._learn_lead(self.monotonic() - started)
                if not going:
                    raise NotSent
            # Chosen a little early (see _lead): leave on time, not before.
            wait = ticket.at - self.monotonic()
            if wait > EPSILON:
                await self._sleep(wait)
            moment = None
            if self._shared is not None:
                moment = await self._share(chat, ticket.paced())
            ticket.gone.set_result(self.monotonic())
        except BaseException:
            (self._bulk if bulk else self._replies).remove(ticket)
            if not ticket.gone.done():
                ticket.gone.set_result(None)
            raise
        if self._shared is None:
            return await callback(*args, **kwargs)
        try:
            return await callback(*args, **kwargs)
        finally:
            self._came_back(moment, chat)

    async def _share(self, chat: Chat, paced: bool) -> int | None:
        """Waits for this call's moment in the pace every process shares (see the module):
        the overall rate across them all, and for a bulk message or a late reply (`paced`)
        its chat's second. A prompt reply does not wait for its chat, but holds back the next
        paced message to it, whichever process sends that. Returns the moment's ticket."""
        assert self._shared is not None
        wait, moment = await self._shared.pace(
            chat if isinstance(chat, int) else None,
            self._interval,
            self._per_chat,
            waits=paced,
            most=self._most,
            span=1.0 + SHARED_SLACK,
        )
        if wait > EPSILON:
            await self._sleep(wait)
        return moment

    def _came_back(self, moment: int | None, chat: Chat) -> None:
        """Tells the shared pace that this call's request came back (in a task of its own:
        the caller goes on; until it is told, the pace counts the request as in flight)."""
        assert self._shared is not None
        chat_id = chat if isinstance(chat, int) else None
        task = asyncio.create_task(self._shared.sent(moment, self._most, chat_id, self._per_chat))
        self._telling.add(task)
        task.add_done_callback(self._told)

    def _told(self, task: asyncio.Task[None]) -> None:
        self._telling.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("The shared pace was not told a request came back: %r", task.exception())

    # ---- for the outbox's sender

    def bulk_free_at(self, chat_id: int) -> float:
        """When (monotonic) a bulk message to this chat may go: a second after its last."""
        use = self._chats.get(chat_id)
        return float("-inf") if use is None else use.last + self._per_chat

    # ---- choosing the next call

    def _start(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="cocreate-budget")

    async def _dispatch(self) -> None:
        while True:
            now = self.monotonic()
            ticket, chat_wait = self._choose(now)
            if ticket is None:
                self._wake.clear()
                await self._wait_for_wake(chat_wait)
                continue
            lead = self._lead if ticket.bulk is not None else 0.0
            wait = self._turn_at() - lead - now
            if wait > EPSILON:
                await self._sleep(wait)  # then choose again: a reply may have come meanwhile
                continue
            chosen = [self._give_turn(ticket, now)]
            # The outbox claims the rows whose turn came at the same moment in one commit. At
            # a high rate that commit takes longer than a slot: then the bulk calls whose
            # slots come before it is done are chosen together (each leaves at its own slot).
            while ticket.bulk is not None and self._interval and len(chosen) < MOST_TOGETHER:
                ticket, _ = self._choose(now)
                if ticket is None or ticket.bulk is None or self._turn_at() - lead > now:
                    break
                chosen.append(self._give_turn(ticket, now))
            if self._interval:
                # The next turns are counted from when these calls left.
                for given in chosen:
                    if given is not None:
                        self._left(given, await given.gone)
            self._forget_idle_chats(now)

    def _give_turn(self, ticket: _Ticket, now: float) -> _Ticket | None:
        """Gives `ticket` the next slot (None if it was cancelled while waiting)."""
        (self._bulk if ticket.bulk else self._replies).take(ticket.chat)
        if ticket.turn.done():  # cancelled while waiting
            return None
        slot = self._slot
        ticket.at = max(now, self._turn_at())
        self._charge(ticket.chat, ticket.at)
        if self._interval:
            self._recent.append(ticket)
            # A little late (a busy event loop, or the 1-second window held it back): the
            # next slot keeps the schedule, so the rate is kept.
            on_time = ticket.at - slot <= self._catch_up
            self._slot = (slot if on_time else ticket.at) + self._interval
        ticket.turn.set_result(None)
        return ticket

    def _turn_at(self) -> float:
        recent = self._recent
        if self._interval and recent.maxlen and len(recent) == recent.maxlen:
            return max(self._slot, recent[0].at + 1.0)
        return self._slot

    def _left(self, ticket: _Ticket, left: float | None) -> None:
        """The call left at `left` (None: it never did). The schedule keeps its slots if it
        left about on time (within `CATCH_UP`: the next calls catch up, so the rate is kept
        through small delays); after a longer delay (a pause) it starts again from then."""
        if left is None:
            return
        late = left - ticket.at
        ticket.at = left  # the 1-second window counts when calls really left
        if late > self._catch_up:
            self._slot = max(self._slot, left + self._interval)

    def _choose(self, now: float) -> tuple[_Ticket | None, float | None]:
        """The next call that may go (replies first, round-robin), or how long until one may."""
        soonest: float | None = None
        for queues in (self._replies, self._bulk):
            for chat, waiting in queues.by_chat.items():
                free_at = self._free_at(chat, now, waiting[0].paced())
                if free_at <= now + EPSILON:
                    return waiting[0], None
                soonest = free_at if soonest is None else min(soonest, free_at)
        return None, None if soonest is None else soonest - now

    def _free_at(self, chat: Chat, now: float, paced: bool) -> float:
        use = self._chats.get(chat) if chat is not None else None
        if use is None:
            return now
        tokens = min(self._burst, use.tokens + (now - use.at) / self._per_chat)
        token_at = now if tokens >= 1 else now + (1 - tokens) * self._per_chat
        return max(token_at, use.last + self._per_chat) if paced else token_at

    def _charge(self, chat: Chat, at: float) -> None:
        if chat is None:
            return
        use = self._chats.get(chat)
        if use is None:
            self._chats[chat] = _ChatUse(self._burst - 1, at, at)
            return
        tokens = min(self._burst, use.tokens + (at - use.at) / self._per_chat)
        use.tokens, use.at, use.last = max(tokens - 1, 0.0), at, at

    async def _wait_for_wake(self, timeout: float | None) -> None:
        """Waits for a new call, or (if some wait for their chat) until one may go."""
        if timeout is None:
            await self._wake.wait()
            return
        woken = asyncio.ensure_future(self._wake.wait())
        slept = asyncio.ensure_future(self._sleep(timeout))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (woken, slept):
                waiter.cancel()
            await asyncio.gather(woken, slept, return_exceptions=True)

    def _learn_lead(self, took: float) -> None:
        # A running average, at most half a turn or MOST_EARLY: a row marked 'sending' waits
        # no longer.
        most = max(self._interval / 2, MOST_EARLY) if self._interval else 0.0
        self._lead = min(0.8 * self._lead + 0.2 * max(took, 0.0), most)

    def _forget_idle_chats(self, now: float) -> None:
        """Forgets chats whose burst is whole again, so the map stays small: each time it has
        doubled since the last look (a look per call made a broadcast's cost grow with the
        square of its size)."""
        if len(self._chats) > self._forget_above:
            idle = self._burst * self._per_chat
            self._chats = {c: u for c, u in self._chats.items() if now - u.last < idle}
            self._forget_above = max(FORGET_ABOVE, 2 * len(self._chats))
