"""The outbox: every message to many members, one row per recipient, and the batches it sends.

Tables: outbox, delivery_batches (migration 3). bot/delivery.py is the one sender. Erasure
and retention remove members' words from it (see "data rights" below).

A row moves queued → sending → sent. The sender claims a row ('sending', committed) only
when its turn in the bot's budget has come, just before its request leaves (rows whose turns
come together share one transaction), and records how each call went (`settle`: 'sent' with
Telegram's message id, or a failure) in as few transactions as it safely can, each of them
also claiming the next rows. So a crash leaves 'sending' only rows whose request had left:
calls in flight, or answered but not yet recorded. Such a row may have reached the member, so
at start it becomes 'unconfirmed' and is not sent again unless the batch's author asks
(`send_again`, knowing some may get it twice); rows that never left are still 'queued'.
Other final states: 'failed' (Telegram refused it, or it kept failing), 'skipped' (the member
used /stop or blocked the bot). Times are UTC ISO text, as everywhere in the database, so they
compare correctly as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from storage.db import Database, Row, Tx, new_id
from storage.times import from_db, to_db

Status = Literal["queued", "sending", "sent", "failed", "skipped", "unconfirmed"]
SkipReason = Literal["stopped", "unreachable"]
# What mark_sending found: 'sending' (go ahead), a skip reason, or 'gone' (not queued any more).
Claim = Literal["sending", "stopped", "unreachable", "gone"]

PENDING: tuple[Status, ...] = ("queued", "sending")


def ceil_second(when: datetime) -> datetime:
    """A time rounded up to the next whole second, so a wait is never cut short."""
    if when.microsecond:
        return when.replace(microsecond=0) + timedelta(seconds=1)
    return when


@dataclass(frozen=True)
class Outgoing:
    """One message to one chat, as a flow hands it in. `member_id` None: not to a member."""

    member_id: int | None
    chat_id: int
    text: str
    reply_markup: Mapping[str, Any] | None = None  # the Bot API's JSON, e.g. markup.to_dict()
    # The member whose own words the text carries to someone else (an answer back to staff):
    # erasing that member deletes the row.
    words_of: int | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    batch_id: int
    member_id: int | None
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    status: Status
    attempts: int
    not_before: datetime
    held_for_quiet_hours: bool
    skip_reason: str | None
    last_error: str | None
    telegram_message_id: int | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class SentText:
    """A message a member was sent: its text and buttons, and the member's language."""

    text: str
    reply_markup: dict[str, Any] | None
    language: str


@dataclass(frozen=True)
class Batch:
    id: int
    kind: str
    ref_id: int | None
    author_chat_id: int | None
    author_language: str
    created_at: datetime
    finished_at: datetime | None
    reported_at: datetime | None


@dataclass(frozen=True)
class BatchCounts:
    """How a batch's rows stand. Every row is in exactly one of the counts that sum to total."""

    queued: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    unconfirmed: int = 0
    stopped: int = 0  # skipped: the member used /stop
    unreachable: int = 0  # skipped: the member blocked the bot
    held_for_quiet_hours: int = 0  # not a status: rows quiet hours delayed (any status)

    @property
    def total(self) -> int:
        return (
            self.queued
            + self.sending
            + self.sent
            + self.failed
            + self.unconfirmed
            + self.stopped
            + self.unreachable
        )

    @property
    def finished(self) -> bool:
        return self.queued == 0 and self.sending == 0


# ---- what became of a claimed row, for `Outbox.settle` (one transaction for many)


@dataclass(frozen=True)
class Sent:
    """Telegram accepted the message."""

    row_id: int
    telegram_message_id: int


@dataclass(frozen=True)
class Failed:
    """Given up: Telegram refused it, or it failed too many times. `attempts` None: unchanged."""

    row_id: int
    error: str
    attempts: int | None = None


@dataclass(frozen=True)
class Unconfirmed:
    """The call may have reached Telegram but no answer came: never send it again."""

    row_id: int
    error: str


@dataclass(frozen=True)
class Deferred:
    """Back in the queue until `until` (a retry after a failure, or Telegram's RetryAfter)."""

    row_id: int
    until: datetime
    attempts: int
    error: str | None = None


@dataclass(frozen=True)
class Skipped:
    """Left unsent on purpose."""

    row_id: int
    reason: SkipReason


@dataclass(frozen=True)
class Unreachable:
    """Telegram said the member blocked the bot: recorded on the member (first time `at`), and
    every row still waiting for them ('queued' or 'sending', the one in hand too) skipped."""

    member_id: int
    at: datetime


Outcome = Sent | Failed | Unconfirmed | Deferred | Skipped | Unreachable


def _row(row: Row) -> OutboxRow:
    markup = row["reply_markup"]
    return OutboxRow(
        id=row["id"],
        batch_id=row["batch_id"],
        member_id=row["member_id"],
        chat_id=row["chat_id"],
        text=row["text"],
        reply_markup=json.loads(markup) if markup is not None else None,
        status=row["status"],
        attempts=row["attempts"],
        not_before=from_db(row["not_before"]),
        held_for_quiet_hours=bool(row["held_for_quiet_hours"]),
        skip_reason=row["skip_reason"],
        last_error=row["last_error"],
        telegram_message_id=row["telegram_message_id"],
        created_at=from_db(row["created_at"]),
        sent_at=from_db(row["sent_at"]),
    )


def _batch(row: Row) -> Batch:
    return Batch(
        id=row["id"],
        kind=row["kind"],
        ref_id=row["ref_id"],
        author_chat_id=row["author_chat_id"],
        author_language=row["author_language"],
        created_at=from_db(row["created_at"]),
        finished_at=from_db(row["finished_at"]),
        reported_at=from_db(row["reported_at"]),
    )


async def _new_batch(
    conn: Tx,
    kind: str,
    ref_id: int | None,
    author_chat_id: int | None,
    author_language: str,
    now: str,
) -> int:
    """Starts a delivery batch (inside the caller's transaction); returns its id."""
    batch_id = new_id(
        await conn.fetch_one(
            "INSERT INTO delivery_batches"
            " (kind, ref_id, author_chat_id, author_language, created_at)"
            " VALUES (?, ?, ?, ?, ?) RETURNING id",
            (kind, ref_id, author_chat_id, author_language, now),
        )
    )
    assert batch_id is not None
    return batch_id


async def insert_batch(
    conn: Tx,
    kind: str,
    ref_id: int | None,
    messages: Sequence[Outgoing],
    now: str,
    due: str,
    author_chat_id: int | None = None,
    author_language: str = "en",
) -> int:
    """Queues messages as one batch inside the caller's transaction (`Outbox.enqueue_batch`,
    or a repository that must queue them with its own change: storage/tracker.py)."""
    batch_id = await _new_batch(conn, kind, ref_id, author_chat_id, author_language, now)
    await conn.executemany(
        "INSERT INTO outbox (batch_id, member_id, chat_id, text, reply_markup,"
        " not_before, created_at, words_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                batch_id,
                m.member_id,
                m.chat_id,
                m.text,
                json.dumps(dict(m.reply_markup)) if m.reply_markup is not None else None,
                due,
                now,
                m.words_of,
            )
            for m in messages
        ],
    )
    return batch_id


class Outbox:
    """Rows waiting to be sent, and what became of each one."""

    def __init__(
        self, db: Database, now: Callable[[], datetime], process: int | None = None
    ) -> None:
        self._db, self._now = db, now
        # This process's mark on the rows it sends, when several share the database
        # (storage/coordination.py): a row left 'sending' by a process that is gone is
        # known to be unconfirmed.
        self.process = process

    # ---- writing, for the flows

    async def enqueue_batch(
        self,
        kind: str,
        ref_id: int | None,
        messages: Sequence[Outgoing],
        *,
        author_chat_id: int | None = None,
        author_language: str = "en",
        not_before: datetime | None = None,
    ) -> int:
        """Queues one message per recipient as one batch, in one transaction; returns its id.

        With `author_chat_id`, the author is sent a delivery report once every row is final.
        """
        now = to_db(self._now())
        due = to_db(ceil_second(not_before)) if not_before is not None else now
        async with self._db.transaction() as conn:
            return await insert_batch(
                conn, kind, ref_id, messages, now, due, author_chat_id, author_language
            )

    async def enqueue_query(
        self,
        kind: str,
        ref_id: int | None,
        recipients: tuple[str, Sequence[object]],
        texts: Mapping[str, tuple[str, Mapping[str, Any] | None]],
        default_language: str,
        *,
        author_chat_id: int | None = None,
        author_language: str = "en",
        keep_empty: bool = True,
    ) -> tuple[int | None, int]:
        """Queues one message to each member a query selects, as one batch, in one
        transaction and one INSERT … SELECT: no member is read into memory, so a broadcast
        to 100,000 takes seconds and no memory. Returns the batch's id and its rows.

        `recipients` is SQL selecting members (id, chat_id and language columns) in the
        order they should be sent, with its parameters (storage/questions.py makes them).
        `texts` holds the message (text, reply markup) in each language; a member whose
        language is not there gets `default_language`'s. Without `keep_empty`, a batch that
        would have no rows is not made (its id is None).
        """
        if default_language not in texts:
            raise ValueError(f"no text in the default language {default_language!r}")
        sql, params = recipients
        now = to_db(self._now())
        languages = ", ".join("(?, ?, ?)" for _ in texts)
        values = [
            value
            for language, (text, markup) in texts.items()
            for value in (language, text, json.dumps(dict(markup)) if markup is not None else None)
        ]
        async with self._db.transaction() as conn:
            batch_id = await _new_batch(conn, kind, ref_id, author_chat_id, author_language, now)
            rows = await conn.execute(
                # INSERT first: Python's sqlite3 counts the rows only of a statement that
                # starts with INSERT (not WITH).
                "INSERT INTO outbox (batch_id, member_id, chat_id, text, reply_markup,"
                " not_before, created_at)"
                f" WITH texts (language, text, markup) AS (VALUES {languages}),"
                f" recipients AS ({sql})"
                " SELECT ?, r.id, r.chat_id, COALESCE(t.text, d.text),"
                " CASE WHEN t.language IS NULL THEN d.markup ELSE t.markup END, ?, ?"
                " FROM recipients r LEFT JOIN texts t ON t.language = r.language"
                " JOIN texts d ON d.language = ? ORDER BY r.id",
                (*values, *params, batch_id, now, now, default_language),
            )
            if not rows and not keep_empty:
                await conn.execute("DELETE FROM delivery_batches WHERE id = ?", (batch_id,))
                return None, 0
        return batch_id, rows

    # ---- reading, for the sender

    async def due(self, now: datetime, limit: int = 100) -> list[OutboxRow]:
        """Queued rows due at `now`, oldest first, at most one per chat (its oldest due row)."""
        at = to_db(now)
        # SQLite is told which partial index to walk; PostgreSQL's planner finds it.
        sqlite = self._db.dialect == "sqlite"
        queued = " INDEXED BY outbox_queued" if sqlite else ""
        by_chat = " INDEXED BY outbox_queued_chat" if sqlite else ""
        rows = await self._db.fetch_all(
            f"SELECT o.* FROM outbox o{queued}"
            " WHERE o.status = 'queued' AND o.not_before <= ?"
            f" AND NOT EXISTS (SELECT 1 FROM outbox e{by_chat}"
            "  WHERE e.chat_id = o.chat_id AND e.status = 'queued' AND e.id < o.id"
            "  AND e.not_before <= ?)"
            " ORDER BY o.id LIMIT ?",
            (at, at, limit),
        )
        return [_row(r) for r in rows]

    async def get(self, row_id: int) -> OutboxRow | None:
        """One row by id."""
        row = await self._db.fetch_one("SELECT * FROM outbox WHERE id = ?", (row_id,))
        return _row(row) if row else None

    async def rows_of(self, batch_id: int) -> list[OutboxRow]:
        """Every row of a batch, in the order they were queued."""
        rows = await self._db.fetch_all(
            "SELECT * FROM outbox WHERE batch_id = ? ORDER BY id", (batch_id,)
        )
        return [_row(r) for r in rows]

    # ---- state changes

    async def settle(
        self, outcomes: Sequence[Outcome] = (), claim: Sequence[int] = ()
    ) -> dict[int, Claim]:
        """Records `outcomes`, then claims the rows `claim` names: one transaction for both.

        A claimed row becomes 'sending' just before its Telegram call. The members' /stop and
        blocked state is read for the whole group in the same transaction: a member who used
        /stop or blocked the bot since the row was queued gets no message, and the row is
        skipped with that reason. Returns each claimed id's verdict ('sending': go ahead).
        """
        if not outcomes and not claim:
            return {}
        async with self._db.transaction() as conn:
            if outcomes:
                await self._record(conn, outcomes)
            return await self._claim(conn, claim) if claim else {}

    async def _record(self, conn: Tx, outcomes: Sequence[Outcome]) -> None:
        now = to_db(self._now())
        sent: list[tuple[Any, ...]] = []
        failed: list[tuple[Any, ...]] = []
        unconfirmed: list[tuple[Any, ...]] = []
        deferred: list[tuple[Any, ...]] = []
        skipped: list[tuple[Any, ...]] = []
        unreachable: list[Unreachable] = []
        for o in outcomes:
            if isinstance(o, Sent):
                sent.append((o.telegram_message_id, now, o.row_id))
            elif isinstance(o, Failed):
                failed.append((o.error, o.attempts, o.row_id))
            elif isinstance(o, Unconfirmed):
                unconfirmed.append((o.error, o.row_id))
            elif isinstance(o, Deferred):
                until = to_db(ceil_second(o.until))
                deferred.append((until, o.attempts, o.error, o.row_id))
            elif isinstance(o, Skipped):
                skipped.append((o.reason, o.row_id))
            else:
                unreachable.append(o)
        for sql, params in (
            (
                "UPDATE outbox SET status = 'sent', telegram_message_id = ?, sent_at = ?,"
                " last_error = NULL WHERE id = ?",
                sent,
            ),
            (
                "UPDATE outbox SET status = 'failed', last_error = ?,"
                " attempts = COALESCE(?, attempts) WHERE id = ?",
                failed,
            ),
            ("UPDATE outbox SET status = 'unconfirmed', last_error = ? WHERE id = ?", unconfirmed),
            (
                "UPDATE outbox SET status = 'queued', not_before = ?, attempts = ?,"
                " last_error = ? WHERE id = ?",
                deferred,
            ),
            ("UPDATE outbox SET status = 'skipped', skip_reason = ? WHERE id = ?", skipped),
        ):
            if params:
                await conn.executemany(sql, params)
        if unreachable:
            await conn.executemany(
                "UPDATE members SET unreachable_at = COALESCE(unreachable_at, ?) WHERE id = ?",
                [(to_db(u.at), u.member_id) for u in unreachable],
            )
            await conn.executemany(
                "UPDATE outbox SET status = 'skipped', skip_reason = 'unreachable'"
                " WHERE member_id = ? AND status IN ('queued', 'sending')",
                [(u.member_id,) for u in unreachable],
            )

    async def _claim(self, conn: Tx, ids: Sequence[int]) -> dict[int, Claim]:
        """Claims queued rows for sending. With several processes, a row another process is
        claiming at this moment is skipped (FOR UPDATE SKIP LOCKED): it is theirs."""
        marks = ",".join("?" * len(ids))
        mine = " FOR UPDATE OF o SKIP LOCKED" if self.process is not None else ""
        found = await conn.fetch_all(
            "SELECT o.id, o.status, o.member_id, m.stopped_at, m.unreachable_at"
            f" FROM outbox o LEFT JOIN members m ON m.id = o.member_id WHERE o.id IN ({marks})"
            + mine,
            tuple(ids),
        )
        verdicts: dict[int, Claim] = dict.fromkeys(ids, "gone")
        going: list[int] = []
        skipped: list[tuple[str, int]] = []
        for row in found:
            if row["status"] != "queued":
                continue
            verdict: Claim = "sending"
            if row["member_id"] is not None:
                if row["unreachable_at"] is not None:
                    verdict = "unreachable"
                elif row["stopped_at"] is not None:
                    verdict = "stopped"
            verdicts[row["id"]] = verdict
            if verdict == "sending":
                going.append(row["id"])
            else:
                skipped.append((verdict, row["id"]))
        if going:
            await conn.execute(
                "UPDATE outbox SET status = 'sending', claimed_by = ?"
                f" WHERE id IN ({','.join('?' * len(going))})",
                (self.process, *going),
            )
        if skipped:
            await conn.executemany(
                "UPDATE outbox SET status = 'skipped', skip_reason = ? WHERE id = ?", skipped
            )
        return verdicts

    # One row at a time (each its own transaction), for flows and tests; the sender uses settle.

    async def mark_sending(self, row_id: int) -> Claim:
        """Claims one queued row just before its Telegram call (see `settle`)."""
        return (await self.settle(claim=[row_id]))[row_id]

    async def mark_sent(self, row_id: int, telegram_message_id: int) -> None:
        """Records that Telegram accepted the message."""
        await self.settle([Sent(row_id, telegram_message_id)])

    async def mark_failed(self, row_id: int, error: str, *, attempts: int | None = None) -> None:
        """Gives up on a row: Telegram refused it, or it failed too many times."""
        await self.settle([Failed(row_id, error, attempts)])

    async def mark_unconfirmed(self, row_id: int, error: str) -> None:
        """The call may have reached Telegram but no answer came: never send it again."""
        await self.settle([Unconfirmed(row_id, error)])

    async def mark_skipped(self, row_id: int, reason: SkipReason) -> None:
        """Leaves a row unsent on purpose."""
        await self.settle([Skipped(row_id, reason)])

    async def defer(
        self, row_id: int, until: datetime, attempts: int, *, error: str | None = None
    ) -> None:
        """Puts a row back in the queue until a later time (a retry after a failure or a wait)."""
        await self.settle([Deferred(row_id, until, attempts, error)])

    async def hold_for_quiet_hours(self, now: datetime, until: datetime) -> int:
        """Moves every due row to a member to the end of quiet hours; returns how many."""
        return await self._db.execute(
            "UPDATE outbox SET not_before = ?, held_for_quiet_hours = 1"
            " WHERE status = 'queued' AND member_id IS NOT NULL AND not_before <= ?",
            (to_db(ceil_second(until)), to_db(now)),
        )

    async def mark_member_unreachable(self, member_id: int, now: datetime) -> int:
        """Telegram said the member blocked the bot: records it on the member and skips every
        row still waiting for them (the one in hand too). Returns the rows skipped."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE members SET unreachable_at = COALESCE(unreachable_at, ?) WHERE id = ?",
                (to_db(now), member_id),
            )
            return await conn.execute(
                "UPDATE outbox SET status = 'skipped', skip_reason = 'unreachable'"
                " WHERE member_id = ? AND status IN ('queued', 'sending')",
                (member_id,),
            )

    async def recover_after_restart(self, *, mine: bool = False) -> int:
        """Every row left 'sending' becomes 'unconfirmed': its request had left, and may have
        reached Telegram, so it is not sent again silently. Returns how many. Call before the
        first pass. With several processes, only the rows of processes that are gone (and
        again from time to time: a process may die while the others run); and with `mine`,
        this process's own too (its sender calls it when none of its calls is in flight:
        at its start, after a pass that failed)."""
        if self.process is not None:
            return await self._db.execute(
                "UPDATE outbox SET status = 'unconfirmed', last_error = 'interrupted'"
                " WHERE status = 'sending' AND (claimed_by IS NULL OR claimed_by = ?"
                " OR claimed_by NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL))",
                (self.process if mine else None,),
            )
        return await self._db.execute(
            "UPDATE outbox SET status = 'unconfirmed', last_error = 'interrupted'"
            " WHERE status = 'sending'"
        )

    async def unconfirmed_members(self, batch_id: int) -> list[int]:
        """The members whose row in a batch is 'unconfirmed', in the order they were queued."""
        rows = await self._db.fetch_all(
            "SELECT member_id FROM outbox WHERE batch_id = ? AND status = 'unconfirmed'"
            " AND member_id IS NOT NULL ORDER BY id",
            (batch_id,),
        )
        return [int(r["member_id"]) for r in rows]

    async def send_again(self, batch_id: int) -> int:
        """Queues a batch's 'unconfirmed' rows again (its author chose to, knowing some may
        get it twice), and reopens the batch, so its author gets a new report. Returns how
        many rows; 0 if none was left (pressed twice)."""
        async with self._db.transaction() as conn:
            count = await conn.execute(
                "UPDATE outbox SET status = 'queued', not_before = ?, last_error = 'sent_again'"
                " WHERE batch_id = ? AND status = 'unconfirmed'",
                (to_db(self._now()), batch_id),
            )
            if count:
                await conn.execute(
                    "UPDATE delivery_batches SET finished_at = NULL, reported_at = NULL"
                    " WHERE id = ?",
                    (batch_id,),
                )
            return count

    # ---- batches and reports

    async def batch(self, batch_id: int) -> Batch | None:
        """One batch by id."""
        row = await self._db.fetch_one("SELECT * FROM delivery_batches WHERE id = ?", (batch_id,))
        return _batch(row) if row else None

    async def batch_counts(self, batch_id: int) -> BatchCounts:
        """How the rows of a batch stand."""
        rows = await self._db.fetch_all(
            "SELECT status, skip_reason, COUNT(*) AS n, SUM(held_for_quiet_hours) AS held"
            " FROM outbox WHERE batch_id = ? GROUP BY status, skip_reason",
            (batch_id,),
        )
        counts: dict[str, int] = {}
        held = 0
        for r in rows:
            key = r["skip_reason"] if r["status"] == "skipped" else r["status"]
            if key not in BatchCounts.__dataclass_fields__:
                raise ValueError(f"outbox row of batch {batch_id} has unknown state {key!r}")
            counts[key] = counts.get(key, 0) + int(r["n"])
            held += int(r["held"] or 0)
        return BatchCounts(**counts, held_for_quiet_hours=held)

    async def sent_texts(self, batch_id: int, chats: tuple[int, int]) -> list[SentText]:
        """What the batch's rows sent ('sent') to chats in the range [first, end) of `chats`
        (a channel's range: bot/channels.py) carried, each with its member's language."""
        rows = await self._db.fetch_all(
            "SELECT o.text, o.reply_markup, m.language FROM outbox o"
            " LEFT JOIN members m ON m.id = o.member_id"
            " WHERE o.batch_id = ? AND o.status = 'sent' AND o.chat_id >= ? AND o.chat_id < ?"
            " ORDER BY o.id",
            (batch_id, *chats),
        )
        return [
            SentText(
                r["text"],
                json.loads(r["reply_markup"]) if r["reply_markup"] else None,
                str(r["language"] or "en"),
            )
            for r in rows
        ]

    async def close_finished_batches(self) -> int:
        """Stamps finished_at on open batches whose rows are all final; returns how many."""
        return await self._db.execute(
            "UPDATE delivery_batches SET finished_at = ? WHERE finished_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.batch_id = delivery_batches.id"
            "  AND o.status IN ('queued', 'sending'))",
            (to_db(self._now()),),
        )

    async def has_open_batches(self) -> bool:
        """Whether any batch is not finished yet (cheap: a partial index)."""
        row = await self._db.fetch_one(
            "SELECT 1 FROM delivery_batches WHERE finished_at IS NULL LIMIT 1"
        )
        return row is not None

    async def finished_unreported_batches(self) -> list[Batch]:
        """Finished batches whose author wants a report and has not had it."""
        rows = await self._db.fetch_all(
            "SELECT * FROM delivery_batches WHERE finished_at IS NOT NULL"
            " AND reported_at IS NULL AND author_chat_id IS NOT NULL ORDER BY id"
        )
        return [_batch(r) for r in rows]

    async def mark_reported(self, batch_id: int, report: Outgoing | None = None) -> int | None:
        """Marks a batch reported and queues the report (a batch of its own, kind 'report')
        in the same transaction, so it goes exactly once. Returns the report's batch id."""
        now = to_db(self._now())
        async with self._db.transaction() as conn:
            if (
                await conn.execute(
                    "UPDATE delivery_batches SET reported_at = ?"
                    " WHERE id = ? AND reported_at IS NULL",
                    (now, batch_id),
                )
            ) == 0 or report is None:
                return None
            report_batch = new_id(
                await conn.fetch_one(
                    "INSERT INTO delivery_batches (kind, ref_id, created_at)"
                    " VALUES ('report', ?, ?) RETURNING id",
                    (batch_id, now),
                )
            )
            assert report_batch is not None
            await conn.execute(
                "INSERT INTO outbox"
                " (batch_id, member_id, chat_id, text, reply_markup, not_before, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    report_batch,
                    report.member_id,
                    report.chat_id,
                    report.text,
                    json.dumps(dict(report.reply_markup)) if report.reply_markup else None,
                    now,
                    now,
                ),
            )
            return report_batch

    # ---- data rights: erasure and retention

    @staticmethod
    async def forget_member(conn: Tx, member_id: int, chat_id: int) -> int:
        """Inside an erasure: deletes every row to the member's chat or carrying their words
        (an answer back queued to staff), whatever its status. Returns how many."""
        return await conn.execute(
            "DELETE FROM outbox WHERE member_id = ? OR words_of = ? OR chat_id = ?",
            (member_id, member_id, chat_id),
        )

    async def wipe_text_before(self, cutoff: datetime, limit: int = 500) -> int:
        """Empties the text of up to `limit` rows queued before `cutoff` that reached a final
        status (their counts stay, for reports); returns how many. Call until it returns 0."""
        return await self._db.execute(
            "UPDATE outbox SET text = '', reply_markup = NULL WHERE id IN"
            " (SELECT id FROM outbox WHERE text != '' AND created_at < ?"
            "  AND status NOT IN ('queued', 'sending') ORDER BY created_at LIMIT ?)",
            (to_db(cutoff), limit),
        )

    async def status_counts(self) -> dict[str, int]:
        """Rows by status over the whole outbox (for start-up logs and checks)."""
        rows = await self._db.fetch_all("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}
