"""The one sender of the outbox (../shared/DESIGN.md, Delivery): `DeliveryWorker`.

Rate limits, RetryAfter, backoff, blocked members and quiet hours live here and nowhere else.
Flows only queue, then wake the sender:

    await context.store.outbox.enqueue_batch("broadcast", broadcast_id, messages,
                                             author_chat_id=chat_id, author_language=lang)
    context.delivery.wake()

One pass (`run_once`), at the clock's "now":
- inside quiet hours, rows to members that come due are moved to the end of the window;
- each due row (at most one per chat per pass, oldest first), one at a time: left for a later
  pass if its chat had a message less than `per_chat_interval` ago; else wait for a slot under
  `rate_per_second`, claim it ('sending', committed), call Telegram, record what happened
  (committed) before the next one;
- a batch whose rows are all final gets its author a report, queued in the outbox too.

What an answer from Telegram does to the row:

    ok                                        sent
    429 RetryAfter                            queued again (not a failed attempt); ALL
                                              sending pauses for as long as Telegram asked
    403 Forbidden (blocked, deactivated)      skipped 'unreachable'; the member is marked
                                              unreachable, their other waiting rows skipped
    400 Bad Request, other refusals           failed, no retry
    5xx, connection refused, connect or pool  queued again after 2, 4, 8 … s (capped);
    timeout (the request never left)          failed after `max_attempts`
    read or write timeout, connection lost    unconfirmed: it may have arrived, so it is
    (the request may have reached Telegram)   never sent again (no member gets two copies)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
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
from storage.outbox import BatchCounts, OutboxRow, Outgoing
from storage.store import Store

logger = logging.getLogger(__name__)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply
Action = Literal["pause", "retry", "unconfirmed", "unreachable", "failed"]


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


class _Step(enum.Enum):
    """How one row went, for the pass: did we call Telegram, and may the pass go on?"""

    CALLED = enum.auto()
    CALLED_STOP = enum.auto()  # a call, and the pass stops (a pause or a transient failure)
    NO_CALL = enum.auto()
    STOP = enum.auto()


class DeliveryWorker:
    """Sends what the outbox holds, one message at a time, within Telegram's limits."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        rate_per_second: int = 30,
        per_chat_interval: float = 1.0,
        poll_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_attempts: int = 10,
        max_backoff: float = 600.0,
        pass_size: int = 100,
    ) -> None:
        if rate_per_second < 1:
            raise ValueError("rate_per_second must be at least 1")
        self._bot = bot
        self._outbox = store.outbox
        self._quiet = settings.quiet
        self._tz = settings.tz
        self._clock = clock
        self._rate = rate_per_second
        self._per_chat = per_chat_interval
        self._poll = poll_interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._pass_size = pass_size
        self._recent: deque[float] = deque()  # monotonic times of the calls in the last second
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
        """Stops after the message in hand is sent and recorded (cancels after `timeout`)."""
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
                # Nothing is in flight now, so a row left 'sending' will never be confirmed.
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
        """Sends what is due now (by the clock); returns how many Telegram calls it made."""
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
        rows = await self._outbox.due(now, self._pass_size)
        calls = 0
        for row in rows:
            step = await self._send(row)
            if step in (_Step.CALLED, _Step.CALLED_STOP):
                calls += 1
            if step in (_Step.CALLED_STOP, _Step.STOP):
                break
        else:
            # A full pass that sent something may have left due rows behind: go again now.
            self._more_now = len(rows) == self._pass_size and calls > 0
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

    async def _send(self, row: OutboxRow) -> _Step:
        """Sends one row, or leaves it for later; records the outcome before returning."""
        if self._stopping:
            return _Step.STOP
        if row.member_id is not None and self._in_quiet_hours():
            self._more_now = True  # the next pass holds it until the window ends
            return _Step.STOP
        last = self._last_call_to.get(row.chat_id)
        if last is not None and self._monotonic() - last < self._per_chat:
            free_at = last + self._per_chat
            self._chat_free_at = min(self._chat_free_at or free_at, free_at)
            return _Step.NO_CALL
        try:
            markup = self._markup(row.reply_markup)
        except (ValueError, KeyError, TypeError):
            logger.warning("Outbox row %s has a reply_markup Telegram would refuse", row.id)
            await self._outbox.mark_failed(row.id, "bad_markup")
            return _Step.NO_CALL
        await self._take_slot()
        if self._stopping:
            return _Step.STOP
        claim = await self._outbox.mark_sending(row.id)
        if claim != "sending":
            logger.debug("Outbox row %s not sent: %s", row.id, claim)
            return _Step.NO_CALL
        called_at = self._monotonic()
        self._recent.append(called_at)
        self._last_call_to[row.chat_id] = called_at
        try:
            message = await self._bot.send_message(
                chat_id=row.chat_id, text=row.text, reply_markup=markup
            )
        except Exception as exc:  # every outcome is recorded; nothing is lost by catching
            return await self._after_failure(row, exc)
        await self._outbox.mark_sent(row.id, message.message_id)
        logger.debug("Sent outbox row %s (batch %s)", row.id, row.batch_id)
        return _Step.CALLED

    async def _after_failure(self, row: OutboxRow, exc: Exception) -> _Step:
        verdict = judge(exc)
        now = self._clock.now()
        if verdict.action == "pause":
            until = now + timedelta(seconds=verdict.wait)
            self._paused_until = until
            await self._outbox.defer(row.id, until, row.attempts, error=verdict.code)
            logger.warning("Telegram asked us to wait %.0f s: all sending pauses", verdict.wait)
            return _Step.CALLED_STOP
        if verdict.action == "retry":
            attempts = row.attempts + 1
            if attempts >= self._max_attempts:
                await self._outbox.mark_failed(row.id, verdict.code, attempts=attempts)
                logger.warning("Outbox row %s failed %s times (%s)", row.id, attempts, verdict.code)
            else:
                backoff = min(2.0**attempts, self._max_backoff)
                await self._outbox.defer(
                    row.id, now + timedelta(seconds=backoff), attempts, error=verdict.code
                )
                logger.info(
                    "Outbox row %s: %s; trying again in %.0f s", row.id, verdict.code, backoff
                )
            # Telegram or the network is struggling: leave the rest of this pass for later.
            return _Step.CALLED_STOP
        if verdict.action == "unreachable":
            if row.member_id is not None:
                skipped = await self._outbox.mark_member_unreachable(row.member_id, now)
                logger.info("Member %s blocked the bot; %s rows skipped", row.member_id, skipped)
            else:
                await self._outbox.mark_skipped(row.id, "unreachable")
            return _Step.CALLED
        if verdict.action == "unconfirmed":
            await self._outbox.mark_unconfirmed(row.id, verdict.code)
            logger.warning("Outbox row %s may or may not have arrived (%s)", row.id, verdict.code)
        else:
            await self._outbox.mark_failed(row.id, verdict.code)
            logger.warning("Telegram refused outbox row %s (%s)", row.id, verdict.code)
        if verdict.code == "unexpected":
            logger.error("Sending outbox row %s failed", row.id, exc_info=exc)
        return _Step.CALLED

    def _in_quiet_hours(self) -> bool:
        return quiet_hours_end(self._clock.now(), self._quiet, self._tz) is not None

    async def _take_slot(self) -> None:
        """Waits until one more call keeps us within rate_per_second over any one second."""
        while True:
            now = self._monotonic()
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) < self._rate:
                break
            await self._sleep(max(1.0 - (now - self._recent[0]), 0.001))
        if len(self._last_call_to) > 4 * self._rate:
            # Forget chats whose interval has passed, so the map stays small.
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
