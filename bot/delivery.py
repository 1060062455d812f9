"""The one sender of the outbox (../shared/DESIGN.md, Delivery): `DeliveryWorker`.

RetryAfter, backoff, blocked members and quiet hours live here; the pace (the overall rate,
one a second per chat, replies ahead of bulk) is the one budget every Bot API call passes,
bot/budget.py, which this worker shares with the handlers' replies through the bot.
Flows only queue, then wake the sender:

    await context.store.outbox.enqueue_batch("broadcast", broadcast_id, messages,
                                             author_chat_id=chat_id, author_language=lang)
    context.delivery.wake()

One pass (`run_once`), at the clock's "now":
- inside quiet hours, rows to members that come due are moved to the end of the window;
- the due rows (at most one per chat per pass, oldest first; a chat that had a message less
  than a second ago waits for a later pass) are handed to the budget as bulk calls, up to
  `concurrency` at once, and wait there for their turn, still 'queued'; above BROADCAST_RATE
  30 each goes as a paid broadcast (allow_paid_broadcast: README, "Paid broadcasts");
- a row is marked 'sending' only when its turn has come, just before its request leaves
  (`Bulk.leaving`), in one committed transaction with the calls that turned at the same
  moment, which also records the outcomes of the calls answered since ('sent' with
  Telegram's message id, or a failure) and reads the members' /stop and blocked state. Every
  outcome is recorded before the pass returns;
- a batch whose rows are all final gets its author a report, queued in the outbox too; rows
  left unconfirmed are named (by pseudonym), with a button to send them again.

So a crash (SIGKILL, power cut) leaves 'sending' only rows whose request had left: calls in
flight, or answered but not yet recorded. At the next start they become 'unconfirmed', are
never sent again silently, and are reported; rows that never left are still 'queued' and go
out as usual. No member ever gets two copies unless the author asks for it.

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
import functools
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any, Literal

import aiohttp
import httpx
from telegram import (
    ForceReply,
    InlineKeyboardMarkup,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import ExtBot

from bot.budget import Budget, Bulk, NotSent
from bot.catalogue import t
from bot.channels import OUTBOX_ROW
from bot.clock import Clock
from bot.settings import QuietHours, Settings
from bot.sms_cost import SMS_CHATS, report_line, sent_segments
from bot.transport import PoolTimeout
from conversations.unconfirmed import send_again_button
from storage.outbox import (
    BatchCounts,
    Claim,
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
NAMES_SHOWN = 50  # a report names at most this many unconfirmed members

DEFAULT_CONCURRENCY = 16  # rows handed to the budget at once (waiting for their turn or in flight)


def concurrency_for(rate: int) -> int:
    """Rows handed to the budget at once at BROADCAST_RATE `rate`: 16, or at a paid rate
    enough for 100 ms of calls (the claim's commit, and a round trip to Telegram) to be in
    flight together."""
    return max(DEFAULT_CONCURRENCY, rate // 10)


def pass_size_for(rate: int) -> int:
    """Rows one pass reads at BROADCAST_RATE `rate`: about 10 seconds' worth. A pass ends by
    waiting for its last answers, a round trip in which nothing new leaves; in 10 seconds
    that costs under 1% of the rate."""
    return max(100, 10 * rate)


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
        # TimedOut stands for every timeout of the transport (httpx, or aiohttp in
        # bot/transport.py); only some of them mean "never sent".
        if isinstance(cause, httpx.ConnectTimeout | aiohttp.ConnectionTimeoutError):
            return Verdict("retry", "connect_timeout")
        if isinstance(cause, httpx.PoolTimeout | PoolTimeout):
            return Verdict("retry", "pool_timeout")
        if isinstance(cause, httpx.WriteTimeout):
            return Verdict("unconfirmed", "write_timeout")
        if isinstance(cause, httpx.ReadTimeout | aiohttp.SocketTimeoutError):
            return Verdict("unconfirmed", "read_timeout")
        return Verdict("unconfirmed", "timeout")
    if isinstance(exc, NetworkError):
        if isinstance(cause, httpx.ConnectError | aiohttp.ClientConnectorError):
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


def report_text(
    counts: BatchCounts, language: str, unconfirmed: Sequence[str] = (), sms: int = 0
) -> str:
    """The delivery report an author gets: what reached people, and what did not, and why;
    `unconfirmed` names (pseudonyms) the members nobody is sure got it; `sms`: the SMS
    segments what reached SMS members took (no line when none)."""
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
        if count and key == "delivery.report.unconfirmed" and unconfirmed:
            names = ", ".join(unconfirmed[:NAMES_SHOWN])
            if len(unconfirmed) > NAMES_SHOWN:
                more = len(unconfirmed) - NAMES_SHOWN
                names = f"{names} {t(language, 'delivery.report.unconfirmed_more', count=more)}"
            lines.append(t(language, "delivery.report.unconfirmed_names", names=names))
    if sms:
        lines.append(report_line(sms, language))
    return "\n".join(lines)


class DeliveryWorker:
    """Sends what the outbox holds, several calls at once, within the bot's budget."""

    def __init__(
        self,
        bot: ExtBot[Any],
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        concurrency: int | None = None,
        poll_interval: float = 1.0,
        max_attempts: int = 10,
        max_backoff: float = 600.0,
        pass_size: int | None = None,
    ) -> None:
        budget = getattr(bot, "rate_limiter", None)
        budget = getattr(budget, "inner", budget)  # behind CommitFirst (bot/receiving.py)
        if not isinstance(budget, Budget):
            raise TypeError("the bot must pass every call through a Budget (bot/budget.py)")
        if concurrency is None:
            concurrency = concurrency_for(settings.broadcast_rate)
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._bot = bot
        self._budget = budget
        self._outbox = store.outbox
        self._pseudonyms = store.pseudonyms
        self._quiet = settings.quiet
        # Above Telegram's free 30 a second, each message is a paid broadcast (README).
        self._paid: bool | None = True if settings.paid_broadcasts else None
        self._tz = settings.tz
        self._clock = clock
        self._concurrency = concurrency
        # Without an overall rate, hand rows to the budget in groups of at least this many
        # (when that many wait): their turns then come together, unpaced, and one transaction
        # claims them all. With a rate, the budget itself chooses together the rows whose
        # slots come close (bot/budget.py): each row goes as soon as there is room.
        self._group = max(1, concurrency // 2) if budget.rate is None else 1
        self._poll = poll_interval
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._pass_size = pass_size or pass_size_for(settings.broadcast_rate)
        self._unrecorded: list[Outcome] = []  # answers not yet in the database
        self._claiming: list[int] = []  # rows whose turn came, for the next claim
        self._claimed: asyncio.Future[dict[int, Claim]] | None = None  # that claim's verdicts
        self._leaving: set[int] = set()  # rows being claimed or sent: not to be cancelled
        self._tasks: dict[asyncio.Task[int | Exception | None], OutboxRow] = {}  # this pass's
        self._committing: asyncio.Task[None] | None = None
        self._halted = False  # this pass starts no more calls
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
        """Stops once the calls in flight are answered and recorded (cancels after `timeout`).
        Rows still waiting for their turn stay queued."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        self._halt()
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
                    await self._outbox.recover_after_restart(mine=True)
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
            wait = min(wait, self._chat_free_at - self._budget.monotonic())
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
        rows = await self._outbox.due(now, self._pass_size)
        calls, halted = await self._send_all(self._chats_free_now(rows))
        if not halted and calls > 0 and len(rows) == self._pass_size:
            self._more_now = True  # a full pass may have left due rows behind: go again now
        await self._report_finished_batches()
        return calls

    async def _recover(self) -> None:
        interrupted = await self._outbox.recover_after_restart(mine=True)
        counts = await self._outbox.status_counts()
        self._recovered = True
        logger.info(
            "Delivery starting: %s queued; %s in flight before a restart marked unconfirmed",
            counts.get("queued", 0),
            interrupted,
        )

    async def _send_all(self, rows: list[OutboxRow]) -> tuple[int, bool]:
        """Hands `rows` (distinct chats) to the budget, up to `concurrency` at a time; returns
        the calls made and whether the pass stopped early (a pause, a transient failure, quiet
        hours, stop).

        Invariant: rows 'sending' in the database = rows whose request left (or is leaving)
        and whose answer is not recorded yet.
        """
        waiting = deque(rows)
        self._halted = self._stopping
        tasks = self._tasks
        calls = 0
        try:
            while True:
                room = self._concurrency - len(tasks)
                if self._halted or room < min(self._group, len(waiting)):
                    room = 0
                while waiting and room > 0:
                    room -= 1
                    row = waiting.popleft()
                    try:
                        markup = self._markup(row.reply_markup)
                    except (ValueError, KeyError, TypeError):
                        logger.warning("Outbox row %s has a markup Telegram would refuse", row.id)
                        self._unrecorded.append(Failed(row.id, "bad_markup"))
                        continue
                    tasks[asyncio.create_task(self._call(row, markup))] = row
                if not tasks:
                    break
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in [task for task in tasks if task in done]:  # in call order
                    row = tasks.pop(task)
                    self._leaving.discard(row.id)
                    result = None if task.cancelled() else task.result()
                    if result is None:
                        continue  # never left: still queued (or skipped by its claim)
                    calls += 1
                    outcomes, stop = self._judge_call(row, result)
                    self._unrecorded.extend(outcomes)
                    if stop:
                        self._halt()
            if self._unrecorded:
                outcomes, self._unrecorded = self._unrecorded, []
                await self._outbox.settle(outcomes)
        finally:
            # Normally nothing is left; after an error or a cancel, end the calls: a row that
            # was claimed stays 'sending' and becomes 'unconfirmed', since it may have arrived.
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            tasks.clear()
            self._leaving.clear()
        return calls, self._halted

    def _halt(self) -> None:
        """Starts no more calls this pass: those still waiting for their turn are withdrawn
        (their rows stay queued); those leaving or in flight finish."""
        self._halted = True
        for task, row in self._tasks.items():
            if row.id not in self._leaving:
                task.cancel()

    async def _call(self, row: OutboxRow, markup: Markup | None) -> int | Exception | None:
        """One Telegram call, after its turn in the budget: the message id, what went wrong,
        or None if it never left (every outcome is recorded, so nothing is lost by catching)."""
        token = OUTBOX_ROW.set(row.id)  # an SMS records the row its text came from
        try:
            message = await self._bot.send_message(
                chat_id=row.chat_id,
                text=row.text,
                reply_markup=markup,
                allow_paid_broadcast=self._paid,
                rate_limit_args=Bulk(functools.partial(self._turn_came, row)),
            )
        except NotSent:
            return None
        except Exception as exc:
            return exc
        finally:
            OUTBOX_ROW.reset(token)
        return message.message_id

    async def _turn_came(self, row: OutboxRow) -> bool:
        """The budget chose this row: claim it ('sending') unless the pass halted, quiet hours
        began, or the member used /stop or blocked the bot since. True: send it now."""
        if self._halted:
            return False
        if row.member_id is not None and self._in_quiet_hours():
            self._more_now = True  # the next pass holds it until the window ends
            self._halt()
            return False
        self._leaving.add(row.id)
        claim = (await self._claim(row.id))[row.id]
        if claim != "sending":
            logger.debug("Outbox row %s not sent: %s", row.id, claim)
        return claim == "sending"

    async def _claim(self, row_id: int) -> dict[int, Claim]:
        """Claims a row in the next claiming transaction (one for the rows whose turn came at
        the same moment), which also records the answers that came since."""
        claimed = self._claimed
        if claimed is None:
            claimed = self._claimed = asyncio.get_running_loop().create_future()
            self._claiming = []
            self._committing = asyncio.create_task(self._commit_claims(claimed))
        self._claiming.append(row_id)
        return await asyncio.shield(claimed)

    async def _commit_claims(self, claimed: asyncio.Future[dict[int, Claim]]) -> None:
        await asyncio.sleep(0)  # let every row whose turn came at this moment join
        ids, self._claiming, self._claimed = self._claiming, [], None
        outcomes, self._unrecorded = self._unrecorded, []
        try:
            claimed.set_result(await self._outbox.settle(outcomes, ids))
        except Exception as exc:
            self._unrecorded = outcomes + self._unrecorded
            claimed.set_exception(exc)

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
        """The rows whose chat had no message in the last second (the budget says); the
        others wait for a later pass (the pass's own calls are all to other chats)."""
        now = self._budget.monotonic()
        free = []
        for row in rows:
            free_at = self._budget.bulk_free_at(row.chat_id)
            if free_at > now:
                self._chat_free_at = min(self._chat_free_at or free_at, free_at)
            else:
                free.append(row)
        return free

    def _in_quiet_hours(self) -> bool:
        return quiet_hours_end(self._clock.now(), self._quiet, self._tz) is not None

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
            language = batch.author_language
            names = [
                await self._pseudonyms.of(member_id)
                for member_id in await self._outbox.unconfirmed_members(batch.id)
            ]
            sent_by_sms = await self._outbox.sent_texts(batch.id, SMS_CHATS)
            sms = sent_segments((s.text, s.reply_markup, s.language) for s in sent_by_sms)
            text = report_text(counts, language, names, sms)
            markup = None
            if counts.unconfirmed:
                markup = send_again_button(batch.id, counts.unconfirmed, language).to_dict()
            report = Outgoing(None, batch.author_chat_id, text, markup)
            await self._outbox.mark_reported(batch.id, report)
            self._more_now = True  # send the report at once
