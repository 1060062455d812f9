"""The scheduler: sends what is due (question rounds, reminders, broadcasts) at a given now.

The database says what is due; ptb's JobQueue (APScheduler, kept in memory) only wakes
`run_due` — once at start, every minute, and exactly at the next due time — so nothing is
lost when the process dies: at start the jobs are rebuilt from the database, and a round due
while the bot was down is sent at once if it is at most QUESTION_GRACE_HOURS late (older
ones are reported to their author instead). Tests move a FakeClock and call `run_due`
directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from telegram import InlineKeyboardMarkup
from telegram.ext import ContextTypes

from bot.catalogue import DEFAULT_LANGUAGE, LANGUAGES, t
from storage.broadcasts import Broadcast
from storage.db import commit_point, current_unit
from storage.outbox import Outgoing
from storage.questions import Question, Round, audience_query, reminder_query

if TYPE_CHECKING:
    from bot.receiving import CocreateApplication

logger = logging.getLogger(__name__)
TICK_SECONDS = 60
NEXT_JOB = "scheduler:next"
Render = Callable[[Question, int, str], tuple[str, InlineKeyboardMarkup]]


def next_due(question: Question, due_at: datetime, tz: tzinfo) -> datetime | None:
    """When a repeating question's next round is due: same wall-clock time, 1 or 7 days on."""
    days = {"daily": 1, "weekly": 7}.get(question.repeat)
    if days is None:
        return None
    local = due_at.astimezone(tz)
    # Add days to the wall-clock time, so 18:00 stays 18:00 across a clock change.
    return (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=tz)


class Scheduler:
    """Sends due rounds, reminders and broadcasts through the outbox."""

    def __init__(self, application: CocreateApplication, render: Render) -> None:
        self.app = application
        # How a question looks to a member (conversations/prompts.render), handed in by
        # bot/app.py so the scheduler needs no member flow of its own.
        self.render = render
        resources = application.resources
        self.store = resources.store
        self.settings = resources.settings
        self.clock = resources.clock
        self.grace = timedelta(hours=self.settings.question_grace_hours)
        self.open_for = timedelta(days=self.settings.question_open_days)
        self._lock = asyncio.Lock()
        self._first: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sends what is due now, then wakes every minute, and plans the exact next wake-up
        from the database."""
        # What fell due while the bot was down goes now: run_repeating(first=0) would first
        # fire one interval later (APScheduler counts from when the job was added).
        self._first = asyncio.create_task(self._run_at_start(), name="scheduler:start")
        job_queue = self.app.job_queue
        if job_queue is None:
            logger.warning("No job queue: install python-telegram-bot[job-queue]")
            return
        job_queue.run_repeating(
            self._tick, interval=TICK_SECONDS, first=TICK_SECONDS, name="scheduler:tick"
        )
        # Retention (RETENTION_DAYS) has a daily job of its own.
        from bot import retention

        retention.schedule(job_queue, self.settings)

    async def _tick(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.run_due()

    async def _run_at_start(self) -> None:
        try:
            await self.run_due()
        except Exception:
            logger.exception("Sending what was due at start failed; the next tick tries again")

    async def run_due(self) -> None:
        """Sends everything due at the clock's now, then plans the next wake-up."""
        # Called from a handler, commit its work first: never wait for the scheduler's lock
        # while holding the database's (the scheduler's tick may hold one, waiting for the other).
        await commit_point()
        if current_unit() is not None:
            # Called from a handler ("send now"): the due work is not the update's. In the
            # update's unit its reads are cached (storage/db.py), so `due_rounds` kept giving
            # the round each pass had just marked sent, queuing it again and again (up to
            # 1000 times). A task of its own works outside the update's unit.
            await asyncio.create_task(self._run_due(), name="scheduler:due-now")
            return
        await self._run_due()

    async def _run_due(self) -> None:
        coordination = self.store.coordination
        # With several processes, one leads the schedule (its timers); whoever runs due work
        # (the leader, or a handler's "send now" anywhere) does it alone, and each round is
        # queued and marked sent in one transaction: no round goes twice.
        async with self._lock, coordination.exclusive("due-work"):
            now = self.clock.now()
            db = self.store.db
            for _ in range(1000):  # catching up after downtime can open new due rounds
                due = await self.store.questions.due_rounds(now)
                if not due:
                    break
                for round_, question in due:
                    async with db.unit():
                        await self._round(round_, question, now)
            for round_, question in await self.store.questions.due_reminders(now):
                async with db.unit():
                    await self._reminder(round_, question, now)
            for broadcast in await self.store.broadcasts.due(now):
                async with db.unit():
                    await self._broadcast(broadcast, now)
            self.app.delivery.wake()
            if await coordination.lead("scheduler"):
                await self._plan_next(now)

    async def _plan_next(self, now: datetime) -> None:
        job_queue = self.app.job_queue
        wakes = [await self.store.questions.next_wake(), await self.store.broadcasts.next_wake()]
        when = min((w for w in wakes if w is not None), default=None)
        if job_queue is None or when is None:
            return
        for job in job_queue.get_jobs_by_name(NEXT_JOB):
            job.schedule_removal()
        delay = max((when - now).total_seconds(), 0.0)
        job_queue.run_once(self._tick, when=delay, name=NEXT_JOB)

    async def _round(self, round_: Round, question: Question, now: datetime) -> None:
        upcoming = next_due(question, round_.due_at, self.settings.tz)
        due_at = round_.due_at
        if now - due_at > self.grace:
            await self.store.questions.mark_round_missed(round_.id, upcoming)
            when = due_at.astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M")
            await self._tell_author(
                question.author_id,
                t(question.author_language, "staff.missed", question=question.text, when=when),
            )
            await self.store.audit.add("scheduler", "question_missed", question=question.id)
            return
        texts = {}
        for language in LANGUAGES:
            text, markup = self.render(question, round_.id, language)
            texts[language] = (text, markup.to_dict())
        batch_id, queued = await self.store.outbox.enqueue_query(
            "question",
            round_.id,
            audience_query(question.audience),
            texts,
            DEFAULT_LANGUAGE,
            author_chat_id=await self.store.roles.staff_chat(question.author_id),
            author_language=question.author_language,
        )
        closes_at = min(upcoming, now + self.open_for) if upcoming else now + self.open_for
        reminder = (
            now + timedelta(hours=question.reminder_hours) if question.reminder_hours else None
        )
        await self.store.questions.mark_round_sent(
            round_.id,
            batch_id=batch_id,
            sent_at=now,
            closes_at=closes_at,
            reminder_due_at=reminder,
            next_due_at=upcoming,
        )
        await self.store.audit.add(
            "scheduler", "question_sent", question=question.id, round=round_.id, to=queued
        )
        logger.info("Question %s round %s queued for %s members", question.id, round_.id, queued)

    async def _reminder(self, round_: Round, question: Question, now: datetime) -> None:
        texts = {}
        for language in LANGUAGES:
            text, markup = self.render(question, round_.id, language)
            texts[language] = (f"{t(language, 'questions.reminder')}\n\n{text}", markup.to_dict())
        _, queued = await self.store.outbox.enqueue_query(
            "reminder",
            round_.id,
            reminder_query(round_.id, question.audience),
            texts,
            DEFAULT_LANGUAGE,
            keep_empty=False,
        )
        await self.store.questions.mark_reminder_sent(round_.id, now)
        logger.info("Reminder for round %s queued for %s members", round_.id, queued)

    async def _broadcast(self, broadcast: Broadcast, now: datetime) -> None:
        send_at = broadcast.send_at
        if now - send_at > self.grace:
            await self.store.broadcasts.mark(broadcast.id, "missed", None)
            when = send_at.astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M")
            await self._tell_author(
                broadcast.author_id,
                t(broadcast.author_language, "staff.missed_broadcast", when=when),
            )
            return
        # One row per member, written by the database (one INSERT … SELECT), not by a loop.
        texts = {
            language: (f"{t(language, 'broadcast.header')}\n\n{broadcast.text}", None)
            for language in LANGUAGES
        }
        batch_id, queued = await self.store.outbox.enqueue_query(
            "broadcast",
            broadcast.id,
            audience_query(broadcast.audience),
            texts,
            DEFAULT_LANGUAGE,
            author_chat_id=await self.store.roles.staff_chat(broadcast.author_id),
            author_language=broadcast.author_language,
        )
        await self.store.broadcasts.mark(broadcast.id, "sent", batch_id)
        await self.store.audit.add("scheduler", "broadcast_sent", broadcast=broadcast.id, to=queued)

    async def _tell_author(self, author_id: int, text: str) -> None:
        chat_id = await self.store.roles.staff_chat(author_id)  # None: no longer on the team
        if chat_id is not None:
            await self.store.outbox.enqueue_batch("notice", None, [Outgoing(None, chat_id, text)])
