"""The one sender of the outbox (../shared/DESIGN.md, Delivery): `DeliveryWorker`.

Rate limits, RetryAfter, backoff, blocked members and quiet hours live here and nowhere else.
Flows only queue, then wake the sender:

    await context.store.outbox.enqueue_batch("broadcast", broadcast_id, messages,
                                             author_chat_id=chat_id, author_language=lang)
    context.delivery.wake()

One pass (`run_once`), at the clock's "now":
- inside quiet hours, rows to members that come due are moved to the end of the window;
- the due rows (at most one per chat per pass, oldest first) go out with up to `concurrency`
  Telegram calls in flight at once, all to different chats. A row is left for a later pass
  if its chat had a message less than `per_chat_interval` ago; a call starts only while
  fewer than `rate_per_second` calls started in the last second (None or 0: no limit, for
  benchmarks);
- rows are claimed in groups: the group is marked 'sending' in one committed transaction
  (which also reads the members' /stop and blocked state for the whole group) before any of
  its calls starts. Outcomes are recorded ('sent' with Telegram's message id, or a failure)
  in the next group's claiming transaction, or in one of their own before a wait for the
  rate of LONG_WAIT or more, and before the pass returns. So every row a pass sent is 'sent'
  in the database before the pass returns, and so before any later message to the same chat;
- a batch whose rows are all final gets its author a report, queued in the outbox too.

The price of sending several at once: a crash (SIGKILL, power cut) can leave up to
`concurrency` rows 'sending' (calls in flight, including any ptb's own rate limiter holds, or
answered but not yet recorded). At the next start they become 'unconfirmed': reported to the
author as "not sure it arrived" and never sent again, so no member ever gets two copies. (One
at a time, a crash left at most one; the bot's process test now typically sees 2 to 6.)

What an answer from Telegram does to the row:

    ok                                        sent
    429 RetryAfter                            queued again (not a failed attempt); ALL
                                              sending pauses for as long as Telegram asked
                                              (calls already in flight finish)
    403 Forbidden (blocked, deactivated)      skipped 'unreachable'; the member is marked
                                              unreachable, their other waiting rows skipped
    400 Bad Request, other refusals           failed, no retry
    5xx, connection refused, connect or pool  queued again after 2, 4, 8 … s (capped);
    timeout (the request never left)          failed after `max_attempts`; no new call
                                              starts in this pass
    read or write timeout, connection lost    unconfirmed: it may have arrived, so it is
    (the request may have reached Telegram)   never sent again (no member gets two copies)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

import httpx
from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.catalogue import t
from bot.clock import Clock
from bot.settings import QuietHours, Settings
from storage.outbox import (
    BatchCounts,
    Deferred,
    Failed,
    OutboxRow,
    Outcome,
    Outgoing,
    Sent,
    Skipped,
    Unconfirmed,
    Unreachable,
)
from storage.store import Store

logger = logging.getLogger(__name__)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply
Action = Literal["pause", "retry", "unconfirmed", "unreachable", "failed"]

DEFAULT_CONCURRENCY = 16  # calls in flight at once; also the most a crash leaves unconfirmed
LONG_WAIT = 0.05  # seconds: answers are recorded before a wait for the rate this long


@dataclass(frozen=True)
class Verdict:
    """What a failed call means for its row: an action, a short code for the log and the
    row's last_error, and (for 'pause') how many seconds Telegram asked us to wait."""

    action: Action
    code: str
    wait: float = 0.0


def judge(exc: Exception) -> Verdict:
    """Reads a failed send: may we try again, and could the message have arrived anyway?"""
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        return Verdict("pause", "flood_wait", _seconds(wait))
    if isinstance(exc, Forbidden):
        return Verdict("unreachable", "blocked")
    if isinstance(exc, BadRequest):
        return Verdict("failed", "bad_request")
    cause = exc.__cause__
    if isinstance(exc, TimedOut):
        # ptb raises TimedOut for every httpx timeout; only some of them mean "never sent".
        if isinstance(cause, httpx.ConnectTimeout):
            return Verdict("retry", "connect_timeout")
        if isinstance(cause, httpx.PoolTimeout):
            return Verdict("retry", "pool_timeout")
        if isinstance(cause, httpx.WriteTimeout):
            return Verdict("unconfirmed", "write_timeout")
        if isinstance(cause, httpx.ReadTimeout):
            return Verdict("unconfirmed", "read_timeout")
        return Verdict("unconfirmed", "timeout")
    if isinstance(exc, NetworkError):
        if isinstance(cause, httpx.ConnectError):
            return Verdict("retry", "connect_error")
        if cause is None or isinstance(cause, TelegramError):
            # Telegram answered, with a status ptb has no better name for (5xx): not sent.
            return Verdict("retry", "server_error")
        # The connection broke after the request went out: it may have been delivered.
        return Verdict("unconfirmed", "connection_lost")
    if isinstance(exc, TelegramError):
        return Verdict("failed", type(exc).__name__.lower())  # InvalidToken, ChatMigrated…
    return Verdict("unconfirmed", "unexpected")


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def quiet_hours_end(now: datetime, quiet: QuietHours | None, tz: tzinfo) -> datetime | None:
    """When the quiet hours that `now` falls in end (aware, in `tz`); None outside them.

    The window may cross midnight (21:00-08:00); a window that starts where it ends is none.
    """
    if quiet is None:
        return None
    start, end = quiet
    if start == end:
        return None
    local = now.astimezone(tz)
    clock_time, today = local.time(), local.date()
    if start < end:
        inside = start <= clock_time < end
        return datetime.combine(today, end, tzinfo=tz) if inside else None
    if clock_time >= start:
        return datetime.combine(today + timedelta(days=1), end, tzinfo=tz)
    if clock_time < end:
        return datetime.combine(today, end, tzinfo=tz)
    return None


def report_text(counts: BatchCounts, language: str) -> str:
    """The delivery report an author gets: what reached people, and what did not, and why."""
    lines = [
        t(language, "delivery.report.done"),
        t(language, "delivery.report.reached", sent=counts.sent, total=counts.total),
    ]
    for count, key in (
        (counts.stopped, "delivery.report.stopped"),
        (counts.unreachable, "delivery.report.blocked"),
        (counts.failed, "delivery.report.failed"),
        (counts.unconfirmed, "delivery.report.unconfirmed"),
        (counts.held_for_quiet_hours, "delivery.report.quiet"),
    ):
        if count:
            lines.append(t(language, key, count=count))
    return "\n".join(lines)


class DeliveryWorker:
    """Sends what the outbox holds, several calls at once, within Telegram's limits."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        rate_per_second: int | None = 30,
        concurrency: int = DEFAULT_CONCURRENCY,
        per_chat_interval: float = 1.0,
        poll_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_attempts: int = 10,
        max_backoff: float = 600.0,
        pass_size: int = 100,
    ) -> None:
        if rate_per_second is not None and rate_per_second < 0:
            raise ValueError("rate_per_second must be positive, or 0 or None for no limit")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._bot = bot
        self._outbox = store.outbox
        self._quiet = settings.quiet
        self._tz = settings.tz
        self._clock = clock
        self._rate = rate_per_second or None  # None: no overall limit
        self._concurrency = concurrency
        # Start calls in groups of at least this many (when that many are waiting and free):
        # one transaction claims a group and records what finished since the last one.
        self._group = max(1, concurrency // 2)
        self._per_chat = per_chat_interval
        self._poll = poll_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._pass_size = pass_size
        self._recent: deque[float] = deque()  # monotonic times of the calls in the last second
        self._starting = 0  # calls handed to tasks that have not started yet (rate slots held)
        self._last_call_to: dict[int, float] = {}  # chat id → monotonic time of its last call
        self._paused_until: datetime | None = None  # Telegram's RetryAfter, in clock time
        self._chat_free_at: float | None = None  # when a chat held back this pass is free
        self._more_now = False  # the last pass left due rows behind
        self._recovered = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- running in the background

    def start(self) -> None:
        """Starts sending in the background: at once when woken, else every poll_interval."""
        if self._task is not None:
            raise RuntimeError("the delivery worker is already running")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="cocreate-delivery")

    def wake(self) -> None:
        """Something was queued: send it now rather than at the next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 30.0) -> None:
        """Stops once the calls in flight are answered and recorded (cancels after `timeout`)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            logger.warning("Delivery did not stop within %s s; cancelling it", timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled() and task.exception() is not None:
            logger.error("Delivery had stopped on an error", exc_info=task.exception())
        logger.info("Delivery stopped")

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            wait: float | None = None
            try:
                await self.run_once()
            except Exception:
                logger.exception("A delivery pass failed; trying again shortly")
                wait = self._poll
                # The pass ended its calls, so a row left 'sending' will never be confirmed.
                with contextlib.suppress(Exception):
                    await self._outbox.recover_after_restart()
            if self._stopping:
                break
            wait = self._next_wait() if wait is None else wait
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()

    def _next_wait(self) -> float:
        if self._more_now:
            return 0.0
        wait = self._poll
        if self._chat_free_at is not None:
            wait = min(wait, self._chat_free_at - self._monotonic())
        if self._paused_until is not None:
            wait = min(wait, (self._paused_until - self._clock.now()).total_seconds())
        return max(wait, 0.0)

    # ---- one pass

    async def run_once(self) -> int:
        """Sends what is due now (by the clock); returns how many Telegram calls it made.

        Every call it made is answered (or timed out) and recorded when it returns.
        """
        if not self._recovered:
            await self._recover()
        now = self._clock.now()
        self._chat_free_at = None
        self._more_now = False
        if self._paused_until is not None:
            if now < self._paused_until:
                return 0
            self._paused_until = None
        end = quiet_hours_end(now, self._quiet, self._tz)
        if end is not None:
            held = await self._outbox.hold_for_quiet_hours(now, end)
            if held:
                logger.info("Quiet hours: %s messages wait until %s", held, end.isoformat())
        self._forget_old_chats()
        rows = await self._outbox.due(now, self._pass_size)
        calls, halted = await self._send_all(self._chats_free_now(rows))
        if not halted and calls > 0 and len(rows) == self._pass_size:
            self._more_now = True  # a full pass may have left due rows behind: go again now
        await self._report_finished_batches()
        return calls

    async def _recover(self) -> None:
        interrupted = await self._outbox.recover_after_restart()
        counts = await self._outbox.status_counts()
        self._recovered = True
        logger.info(
            "Delivery starting: %s queued; %s left in hand before a restart marked unconfirmed",
            counts.get("queued", 0),
            interrupted,
        )

    async def _send_all(self, rows: list[OutboxRow]) -> tuple[int, bool]:
        """Sends `rows` (distinct chats) up to `concurrency` at a time; returns the calls made
        and whether the pass stopped early (a pause, a transient failure, quiet hours, stop).

        Invariant: rows 'sending' in the database = calls in flight + answered calls not yet
        recorded ≤ concurrency, as a group is only claimed together with recording the rest.
        """
        waiting = deque(rows)
        self._starting = 0
        in_flight: dict[asyncio.Task[int | Exception], OutboxRow] = {}
        unrecorded: list[Outcome] = []
        sleeper: asyncio.Future[None] | None = None
        calls = 0
        halted = False
        try:
            while True:
                halted = halted or self._stopping
                rate_wait: float | None = None
                if waiting and not halted:
                    # Start calls in groups (one transaction each) of at least `want`: half
                    # of `concurrency`, or all that wait, or all the rate lets go now (under
                    # the rate limit slots free one by one: waiting to batch them would lose
                    # a little of the rate every second).
                    free = self._free_slots()
                    want = min(self._group, len(waiting), max(free, 1))
                    room = min(self._concurrency - len(in_flight), free)
                    if room >= want:
                        started, stop = await self._start_group(
                            waiting, room, unrecorded, in_flight
                        )
                        unrecorded = []
                        calls += started
                        halted = halted or stop
                        continue
                    if free < want:
                        rate_wait = self._slot_wait(want - free)
                # Wait for a call to end (to record it and start another), or for the rate.
                waits: set[asyncio.Future[Any]] = set(in_flight)
                if rate_wait is not None:
                    if sleeper is None:
                        sleeper = asyncio.ensure_future(self._sleep(rate_wait))
                    waits.add(sleeper)
                if not waits:
                    break
                if unrecorded and not in_flight and (rate_wait or 0) >= LONG_WAIT:
                    # Only the rate to wait for, and not briefly: record what we have first.
                    await self._outbox.settle(unrecorded)
                    unrecorded = []
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if sleeper is not None and sleeper in done:
                    sleeper = None
                for task in [task for task in in_flight if task in done]:  # in call order
                    outcomes, stop = self._judge_call(in_flight.pop(task), task.result())
                    unrecorded.extend(outcomes)
                    halted = halted or stop
            if unrecorded:
                await self._outbox.settle(unrecorded)
        finally:
            # Normally nothing is left; after an error or a cancel, end the calls: their rows
            # stay 'sending' and become 'unconfirmed', since they may have arrived.
            leftovers: list[asyncio.Future[Any]] = [*in_flight]
            if sleeper is not None:
                leftovers.append(sleeper)
            for leftover in leftovers:
                leftover.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
        return calls, halted

    async def _start_group(
        self,
        waiting: deque[OutboxRow],
        room: int,
        unrecorded: list[Outcome],
        in_flight: dict[asyncio.Task[int | Exception], OutboxRow],
    ) -> tuple[int, bool]:
        """Takes up to `room` rows from `waiting`, records `unrecorded` and claims the rows in
        one transaction, then starts their calls. Returns the calls started, and whether the
        pass must stop (quiet hours began)."""
        quiet = self._in_quiet_hours()
        stop = False
        picked: list[tuple[OutboxRow, Markup | None]] = []
        outcomes = list(unrecorded)
        while waiting and len(picked) < room:
            row = waiting[0]
            if quiet and row.member_id is not None:
                self._more_now = True  # the next pass holds it until the window ends
                stop = True
                break
            waiting.popleft()
            try:
                markup = self._markup(row.reply_markup)
            except (ValueError, KeyError, TypeError):
                logger.warning("Outbox row %s has a reply_markup Telegram would refuse", row.id)
                outcomes.append(Failed(row.id, "bad_markup"))
                continue
            picked.append((row, markup))
        claims = await self._outbox.settle(outcomes, [row.id for row, _ in picked])
        started = 0
        for row, markup in picked:
            claim = claims[row.id]
            if claim != "sending":
                logger.debug("Outbox row %s not sent: %s", row.id, claim)
                continue
            self._starting += 1
            in_flight[asyncio.create_task(self._call(row, markup))] = row
            started += 1
        return started, stop

    async def _call(self, row: OutboxRow, markup: Markup | None) -> int | Exception:
        """One Telegram call: the message id, or what went wrong (every outcome is recorded,
        so nothing is lost by catching)."""
        # The call's time for the rate and per-chat limits is when it really starts, in order.
        self._starting -= 1
        called_at = self._monotonic()
        if self._rate is not None:
            self._recent.append(called_at)
        self._last_call_to[row.chat_id] = called_at
        try:
            message = await self._bot.send_message(
                chat_id=row.chat_id, text=row.text, reply_markup=markup
            )
        except Exception as exc:
            return exc
        return message.message_id

    def _judge_call(self, row: OutboxRow, result: int | Exception) -> tuple[list[Outcome], bool]:
        """What a call's answer means for its row; and whether the pass must stop starting
        calls (Telegram asked us to wait, or it or the network is struggling)."""
        if not isinstance(result, Exception):
            return [Sent(row.id, result)], False
        verdict = judge(result)
        now = self._clock.now()
        if verdict.action == "pause":
            until = now + timedelta(seconds=verdict.wait)
            if self._paused_until is None or until > self._paused_until:
                self._paused_until = until
            logger.warning("Telegram asked us to wait %.0f s: all sending pauses", verdict.wait)
            return [Deferred(row.id, until, row.attempts, verdict.code)], True
        if verdict.action == "retry":
            attempts = row.attempts + 1
            if attempts >= self._max_attempts:
                logger.warning("Outbox row %s failed %s times (%s)", row.id, attempts, verdict.code)
                return [Failed(row.id, verdict.code, attempts)], True
            backoff = min(2.0**attempts, self._max_backoff)
            logger.info("Outbox row %s: %s; trying again in %.0f s", row.id, verdict.code, backoff)
            return [
                Deferred(row.id, now + timedelta(seconds=backoff), attempts, verdict.code)
            ], True
        if verdict.action == "unreachable":
            if row.member_id is None:
                return [Skipped(row.id, "unreachable")], False
            logger.info("Member %s blocked the bot; their waiting rows are skipped", row.member_id)
            return [Unreachable(row.member_id, now)], False
        if verdict.code == "unexpected":
            logger.error("Sending outbox row %s failed", row.id, exc_info=result)
        if verdict.action == "unconfirmed":
            logger.warning("Outbox row %s may or may not have arrived (%s)", row.id, verdict.code)
            return [Unconfirmed(row.id, verdict.code)], False
        logger.warning("Telegram refused outbox row %s (%s)", row.id, verdict.code)
        return [Failed(row.id, verdict.code)], False

    def _chats_free_now(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """The rows whose chat had no message in the last `per_chat_interval`; the others
        wait for a later pass (the pass's own calls are all to other chats)."""
        now = self._monotonic()
        free = []
        for row in rows:
            last = self._last_call_to.get(row.chat_id)
            if last is not None and now - last < self._per_chat:
                free_at = last + self._per_chat
                self._chat_free_at = min(self._chat_free_at or free_at, free_at)
            else:
                free.append(row)
        return free

    def _in_quiet_hours(self) -> bool:
        return quiet_hours_end(self._clock.now(), self._quiet, self._tz) is not None

    def _free_slots(self) -> int:
        """How many calls may start now within rate_per_second over any one second."""
        if self._rate is None:
            return self._concurrency
        now = self._monotonic()
        recent = self._recent
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        return max(self._rate - len(recent) - self._starting, 0)

    def _slot_wait(self, slots: int) -> float:
        """Seconds until `slots` more calls may start (the oldest calls leave the second)."""
        if slots > len(self._recent):
            return 0.001  # slots held by calls about to start: look again once they have
        return max(1.0 - (self._monotonic() - self._recent[slots - 1]), 0.001)

    def _forget_old_chats(self) -> None:
        """Forgets chats whose interval has passed, so the map stays small (once a pass)."""
        if len(self._last_call_to) > 4 * max(self._pass_size, self._concurrency):
            now = self._monotonic()
            self._last_call_to = {
                chat: at for chat, at in self._last_call_to.items() if now - at < self._per_chat
            }

    def _markup(self, data: Mapping[str, Any] | None) -> Markup | None:
        if data is None:
            return None
        plain = dict(data)
        if "inline_keyboard" in plain:
            return InlineKeyboardMarkup.de_json(plain, self._bot)
        if "keyboard" in plain:
            return ReplyKeyboardMarkup.de_json(plain, self._bot)
        if "remove_keyboard" in plain:
            return ReplyKeyboardRemove.de_json(plain, self._bot)
        if "force_reply" in plain:
            return ForceReply.de_json(plain, self._bot)
        raise ValueError("unknown reply_markup")

    # ---- reports

    async def _report_finished_batches(self) -> None:
        if await self._outbox.has_open_batches():
            await self._outbox.close_finished_batches()
        for batch in await self._outbox.finished_unreported_batches():
            assert batch.author_chat_id is not None
            counts = await self._outbox.batch_counts(batch.id)
            logger.info(
                "Batch %s (%s) finished: %s of %s sent, %s stopped, %s unreachable, "
                "%s failed, %s unconfirmed",
                batch.id,
                batch.kind,
                counts.sent,
                counts.total,
                counts.stopped,
                counts.unreachable,
                counts.failed,
                counts.unconfirmed,
            )
            text = report_text(counts, batch.author_language)
            await self._outbox.mark_reported(batch.id, Outgoing(None, batch.author_chat_id, text))
            self._more_now = True  # send the report at once
