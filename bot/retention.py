"""Retention: with RETENTION_DAYS set, responses older than that many days (submitted stories
and ideas, answers) are deleted once a day, with their files in MEDIA_DIR, and so are votes
and facilitators' statements that old (storage/retention.py says which), the text of sent
messages that old is emptied, and the audit log says how many (counts only).

The database says what is old at the clock's "now" (storage/retention.py, `Retention`);
ptb's JobQueue only wakes `run_retention`, once a day from a minute after start, so a
restart never skips a day. Tests move a FakeClock and call `run_retention` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from telegram.ext import JobQueue

from bot.clock import Clock
from bot.settings import Settings
from conversations.context import CocreateContext
from storage.retention import Deleted
from storage.store import Store

logger = logging.getLogger(__name__)
JOB = "retention"
EVERY = timedelta(days=1)
FIRST = timedelta(minutes=1)
BATCH = 500


def remove_files(media_dir: Path, names: Iterable[str]) -> None:
    """Deletes files from MEDIA_DIR (names only: never a path from the database)."""
    for name in names:
        (media_dir / Path(name).name).unlink(missing_ok=True)


async def run_retention(store: Store, settings: Settings, clock: Clock) -> Deleted | None:
    """Deletes every response older than RETENTION_DAYS and its files, and empties old sent
    messages in the outbox; None when it is off.

    A batch at a time, each in its own unit of work (the bot keeps answering in between),
    until a batch finds nothing left; a batch's files are removed once its rows are gone, so
    a crash leaves at most files nothing points to, never a response without its file. Then
    the WAL file is emptied, so the deleted words are gone from the disk too.
    """
    days = settings.retention_days
    if days is None:
        return None
    cutoff = clock.now() - timedelta(days=days)
    total = Deleted()
    while True:
        deleted = await store.retention.delete_older_than(cutoff, BATCH)
        if not deleted.anything:
            break
        remove_files(settings.media_dir, deleted.files)
        total += deleted
    if total.anything:
        await store.retention.checkpoint()
    shared = ", ".join(f"{n} {plural}" for plural, n in total.shared.items())
    logger.info(
        "Retention (%s days): deleted %s, %s answers, %s files, %s votes, %s statements;"
        " emptied %s sent messages",
        days,
        shared or "no stories or ideas",
        total.answers,
        len(total.files),
        total.votes,
        total.statements,
        total.messages,
    )
    if total.responses or total.messages or total.votes or total.statements:
        # Votes and facilitators' statements only when there were some: the entry of a day
        # without them stays as it was.
        ideas = {"votes": total.votes, "statements": total.statements}
        await store.audit.add(
            "retention",
            "responses_deleted",
            days=days,
            **total.shared,
            answers=total.answers,
            files=len(total.files),
            messages=total.messages,
            **{name: n for name, n in ideas.items() if n},
        )
    return total


async def _job(context: CocreateContext) -> None:
    await run_retention(context.store, context.settings, context.clock)


def schedule(job_queue: JobQueue[CocreateContext], settings: Settings) -> None:
    """Wakes `run_retention` once a day, if RETENTION_DAYS is set."""
    if settings.retention_days is None:
        return
    job_queue.run_repeating(_job, interval=EVERY, first=FIRST, name=JOB)
    logger.info("Responses older than %s days are deleted once a day", settings.retention_days)
