"""The one budget every Bot API call passes (../shared/DESIGN.md, Delivery): `Budget`.

It is ptb's rate limiter (bot/app.py: `ApplicationBuilder().rate_limiter(Budget(rate))`), so
the handlers' replies, the outbox's sender (bot/delivery.py) and every other call share it
(ptb never limits getUpdates):

- overall: calls leave one at a time on an even schedule, `rate` a second (BROADCAST_RATE),
  never in a burst; and never more than `rate` in any 1-second window (a sliding window over
  when calls really left, with a small margin for the network);
- per chat: about one a second sustained, with a short burst (`burst` at once, then one a
  second), so a reply and the next question go together. Bulk messages (the outbox's, marked
  with `Bulk`) only take a chat's sustained second: two broadcasts never arrive together;
- replies (any call without `Bulk`: a handler answering someone who just wrote) go ahead of
  bulk; within each, chats are served round-robin.

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
from dataclasses import dataclass, field
from typing import Any

from telegram.error import TelegramError
from telegram.ext import BaseRateLimiter

logger = logging.getLogger(__name__)

Chat = int | str | None  # a chat id, a channel's @name, or None (a call to no chat)
JSONResult = bool | dict[str, Any] | list[dict[str, Any]]
EPSILON = 1e-6  # seconds: waits shorter than this are no wait
# New messages one chat may get at once (replies; then about one a second): a reply and the
# next question, or a page of answers, are not slowed; a flood is.
BURST = 20
# Seconds added to the 1-second window: a request reaches the network (and Telegram) a few
# milliseconds after it leaves the budget, and not always the same few.
WINDOW_SLACK = 0.01


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
    ) -> None:
        if rate is not None and rate < 0:
            raise ValueError("rate must be positive, or 0 or None for no overall limit")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate or None
        # A hair over 1/rate, so that `rate` turns always span a full second, rounding or not.
        self._interval = (1.0 + EPSILON) / rate if rate else 0.0
        self._burst = burst
        self._per_chat = per_chat
        self._slack = window_slack
        self.monotonic = monotonic
        self._sleep = sleep
        self._replies = _Queues()
        self._bulk = _Queues()
        self._chats: dict[Chat, _ChatUse] = {}
        # When the next call may leave: its slot on an even schedule (kept through small
        # delays, so the rate is reached), and never sooner than a second after the call
        # `rate` calls back (so that no 1-second window ever holds more than `rate`).
        self._slot = float("-inf")
        self._recent: deque[float] = deque(maxlen=int(rate) if rate and rate >= 1 else 1)
        # How long a bulk call's `leaving` takes (the outbox's commit): a bulk call is chosen
        # that much before its turn, so that it still leaves on time.
        self._lead = 0.0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None

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

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Bulk | None,
    ) -> JSONResult:
        """Waits for the call's turn, then makes it (once: nothing is retried here)."""
        self._start()
        loop = asyncio.get_running_loop()
        bulk = rate_limit_args if isinstance(rate_limit_args, Bulk) else None
        # Only new messages count against a chat's second (not edits, nor answers to buttons).
        chat = data.get("chat_id") if _is_new_message(endpoint) else None
        ticket = _Ticket(chat, bulk, loop.create_future(), loop.create_future())
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
            wait = self._turn_at() - self.monotonic()
            if wait > EPSILON:
                await self._sleep(wait)
            ticket.gone.set_result(self.monotonic())
        except BaseException:
            (self._bulk if bulk else self._replies).remove(ticket)
            if not ticket.gone.done():
                ticket.gone.set_result(None)
            raise
        return await callback(*args, **kwargs)

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
            (self._bulk if ticket.bulk else self._replies).take(ticket.chat)
            if ticket.turn.done():  # cancelled while waiting
                continue
            self._charge(ticket.chat, max(now, self._turn_at()))
            ticket.turn.set_result(None)
            if self._interval:
                # One call at a time: the next one's turn is counted from when this one left.
                left = await ticket.gone
                if left is not None:
                    self._left(left)
            self._forget_idle_chats(now)

    def _turn_at(self) -> float:
        recent = self._recent
        if self._interval and recent.maxlen and len(recent) == recent.maxlen:
            return max(self._slot, recent[0] + 1.0 + self._slack)
        return self._slot

    def _left(self, at: float) -> None:
        """A call left at `at`: the next slot is one interval after this one's slot if it left
        about on time (within a quarter interval: the schedule keeps the rate through small
        delays), else one interval after it left (after a pause)."""
        self._recent.append(at)
        on_time = at - self._slot <= self._interval / 4
        self._slot = (self._slot if on_time else at) + self._interval

    def _choose(self, now: float) -> tuple[_Ticket | None, float | None]:
        """The next call that may go (replies first, round-robin), or how long until one may."""
        soonest: float | None = None
        for queues, bulk in ((self._replies, False), (self._bulk, True)):
            for chat, waiting in queues.by_chat.items():
                free_at = self._free_at(chat, now, bulk)
                if free_at <= now + EPSILON:
                    return waiting[0], None
                soonest = free_at if soonest is None else min(soonest, free_at)
        return None, None if soonest is None else soonest - now

    def _free_at(self, chat: Chat, now: float, bulk: bool) -> float:
        use = self._chats.get(chat) if chat is not None else None
        if use is None:
            return now
        tokens = min(self._burst, use.tokens + (now - use.at) / self._per_chat)
        token_at = now if tokens >= 1 else now + (1 - tokens) * self._per_chat
        return max(token_at, use.last + self._per_chat) if bulk else token_at

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
        # A running average, at most half a turn: a row marked 'sending' waits no longer.
        self._lead = min(0.8 * self._lead + 0.2 * max(took, 0.0), self._interval / 2)

    def _forget_idle_chats(self, now: float) -> None:
        """Forgets chats whose burst is whole again, so the map stays small."""
        if len(self._chats) > 4096:
            idle = self._burst * self._per_chat
            self._chats = {c: u for c, u in self._chats.items() if now - u.last < idle}
