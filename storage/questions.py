"""Questions facilitators ask and the rounds (schedules) in which they go out.

Tables: questions, question_rounds (migration 4); reads outbox and answers to know who was
sent a round and who answered it. Answers, broadcasts and replies live in storage/answers.py,
storage/broadcasts.py and storage/replies.py. What is due is worked out here from a given "now": the
scheduler only decides when to ask.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, Row, Tx, new_id
from storage.members import member_from_row
from storage.models import Member
from storage.times import from_db, to_db

Now = Callable[[], datetime]
KINDS = ("open", "choice", "scale", "yesno")
# `delivered_messages` of a round whose request has left but is not recorded yet: newer than
# any message the member was shown before.
IN_FLIGHT = 2**62


@dataclass(frozen=True)
class Question:
    id: int
    author_id: int
    author_chat_id: int
    author_language: str
    text: str
    kind: str
    options: tuple[str, ...]
    audience: str
    repeat: str
    starts_at: datetime
    reminder_hours: int | None
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Round:
    id: int
    question_id: int
    due_at: datetime
    status: str
    sent_at: datetime | None
    batch_id: int | None
    reminder_due_at: datetime | None
    reminder_sent_at: datetime | None
    closes_at: datetime | None


def _question(r: Row) -> Question:
    return Question(
        id=r["id"],
        author_id=r["author_id"],
        author_chat_id=r["author_chat_id"],
        author_language=r["author_language"],
        text=r["text"],
        kind=r["kind"],
        options=tuple(json.loads(r["options"])),
        audience=r["audience"],
        repeat=r["repeat"],
        starts_at=from_db(r["starts_at"]),
        reminder_hours=r["reminder_hours"],
        status=r["status"],
        created_at=from_db(r["created_at"]),
    )


def _round(r: Row) -> Round:
    return Round(
        id=r["id"],
        question_id=r["question_id"],
        due_at=from_db(r["due_at"]),
        status=r["status"],
        sent_at=from_db(r["sent_at"]),
        batch_id=r["batch_id"],
        reminder_due_at=from_db(r["reminder_due_at"]),
        reminder_sent_at=from_db(r["reminder_sent_at"]),
        closes_at=from_db(r["closes_at"]),
    )


def audience_query(audience: str) -> tuple[str, tuple[object, ...]]:
    """SQL selecting the members (every column, in id order) an audience names: everyone,
    project:<code>, tag:<word> (one of the member's "about you" answers, any case) or
    answered:<question id>; with its parameters. Only members who reached the menu."""
    kind, _, value = audience.partition(":")
    base = "SELECT m.* FROM members m WHERE m.onboarded_at IS NOT NULL"
    if kind == "everyone":
        return base + " ORDER BY m.id", ()
    if kind == "project":
        return (
            base + " AND m.id IN (SELECT mp.member_id FROM member_projects mp"
            " JOIN projects p ON p.id = mp.project_id WHERE p.code = ?) ORDER BY m.id",
            (value,),
        )
    if kind == "tag":
        return (
            base + " AND m.id IN (SELECT member_id FROM about_you"
            " WHERE lower(answer) = lower(?)) ORDER BY m.id",
            (value.strip(),),
        )
    if kind == "answered":
        return (
            base + " AND m.id IN (SELECT a.member_id FROM answers a JOIN question_rounds r"
            " ON r.id = a.round_id WHERE r.question_id = ?) ORDER BY m.id",
            (int(value or 0),),
        )
    raise ValueError(f"unknown audience {audience!r}")


def reminder_query(round_id: int, audience: str) -> tuple[str, tuple[object, ...]]:
    """SQL selecting the members a round's reminder goes to, in id order: in its audience,
    sent the round (or maybe sent it), and not answered yet; with its parameters."""
    sql, params = audience_query(audience)
    return (
        f"SELECT * FROM ({sql}) a"
        " WHERE a.id IN (SELECT o.member_id FROM outbox o"
        "  JOIN question_rounds r ON r.batch_id = o.batch_id"
        "  WHERE r.id = ? AND o.status IN ('sent', 'unconfirmed'))"
        " AND a.id NOT IN (SELECT member_id FROM answers WHERE round_id = ?)"
        " ORDER BY a.id",
        (*params, round_id, round_id),
    )


class Questions:
    """Questions, their rounds, and whom a round is for."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    # ---- questions and rounds

    async def create(
        self,
        *,
        author_id: int,
        author_chat_id: int,
        author_language: str,
        text: str,
        kind: str,
        options: Sequence[str],
        audience: str,
        repeat: str,
        starts_at: datetime,
        reminder_hours: int | None,
    ) -> Question:
        """Stores a question and its first round, in one unit of work."""
        async with self._db.transaction() as conn:
            question_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO questions (author_id, author_chat_id, author_language, text, kind,"
                    " options, audience, repeat, starts_at, reminder_hours, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        author_id,
                        author_chat_id,
                        author_language,
                        text,
                        kind,
                        json.dumps(list(options)),
                        audience,
                        repeat,
                        to_db(starts_at),
                        reminder_hours,
                        to_db(self._now()),
                    ),
                )
            )
            await conn.execute(
                "INSERT INTO question_rounds (question_id, due_at) VALUES (?, ?)",
                (question_id, to_db(starts_at)),
            )
        question = await self.get(question_id)
        assert question is not None
        return question

    async def get(self, question_id: int) -> Question | None:
        """A question by id."""
        row = await self._db.fetch_one("SELECT * FROM questions WHERE id = ?", (question_id,))
        return _question(row) if row else None

    async def _with_questions(self, round_ids: list[int]) -> list[tuple[Round, Question]]:
        """Rounds with their questions, in the order given."""
        found = []
        for round_id in round_ids:
            round_ = await self.round(round_id)
            question = await self.get(round_.question_id) if round_ else None
            if round_ is not None and question is not None:
                found.append((round_, question))
        return found

    async def round(self, round_id: int) -> Round | None:
        """A round by id."""
        row = await self._db.fetch_one("SELECT * FROM question_rounds WHERE id = ?", (round_id,))
        return _round(row) if row else None

    async def recent(self, limit: int = 10) -> list[Question]:
        """The newest questions that went out or will, newest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM questions WHERE status != 'cancelled' ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [_question(r) for r in rows]

    async def due_rounds(self, now: datetime) -> list[tuple[Round, Question]]:
        """Rounds whose time has come, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT r.id AS round_id FROM question_rounds r"
            " JOIN questions q ON q.id = r.question_id"
            " WHERE r.status = 'due' AND r.due_at <= ? AND q.status = 'scheduled'"
            " ORDER BY r.due_at, r.id",
            (to_db(now),),
        )
        return await self._with_questions([int(r["round_id"]) for r in rows])

    async def mark_round_sent(
        self,
        round_id: int,
        *,
        batch_id: int | None,
        sent_at: datetime,
        closes_at: datetime,
        reminder_due_at: datetime | None,
        next_due_at: datetime | None,
    ) -> None:
        """Records that a round went out, and opens the next one of a repeating question."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE question_rounds SET status = 'sent', sent_at = ?, batch_id = ?,"
                " closes_at = ?, reminder_due_at = ? WHERE id = ? AND status = 'due'",
                (
                    to_db(sent_at),
                    batch_id,
                    to_db(closes_at),
                    to_db(reminder_due_at) if reminder_due_at else None,
                    round_id,
                ),
            )
            await self._next_round(conn, round_id, next_due_at)

    async def mark_round_missed(self, round_id: int, next_due_at: datetime | None) -> None:
        """Records that a round was too late to send (the bot was down too long)."""
        async with self._db.transaction() as conn:
            await conn.execute(
                "UPDATE question_rounds SET status = 'missed' WHERE id = ? AND status = 'due'",
                (round_id,),
            )
            await self._next_round(conn, round_id, next_due_at)

    async def _next_round(self, conn: Tx, round_id: int, next_due_at: datetime | None) -> None:
        if next_due_at is None:
            await conn.execute(
                "UPDATE questions SET status = 'finished' WHERE status = 'scheduled' AND id ="
                " (SELECT question_id FROM question_rounds WHERE id = ?)",
                (round_id,),
            )
            return
        await conn.execute(
            "INSERT INTO question_rounds (question_id, due_at)"
            " SELECT question_id, ? FROM question_rounds WHERE id = ?"
            " ON CONFLICT DO NOTHING",
            (to_db(next_due_at), round_id),
        )

    async def due_reminders(self, now: datetime) -> list[tuple[Round, Question]]:
        """Sent rounds whose reminder time has come."""
        rows = await self._db.fetch_all(
            "SELECT id FROM question_rounds WHERE status = 'sent' AND reminder_sent_at IS NULL"
            " AND reminder_due_at IS NOT NULL AND reminder_due_at <= ? ORDER BY reminder_due_at",
            (to_db(now),),
        )
        return await self._with_questions([int(r["id"]) for r in rows])

    async def mark_reminder_sent(self, round_id: int, when: datetime) -> None:
        """Records that a round's reminder went out."""
        await self._db.execute(
            "UPDATE question_rounds SET reminder_sent_at = ? WHERE id = ?", (to_db(when), round_id)
        )

    async def next_wake(self) -> datetime | None:
        """The earliest time a round or a reminder is due (broadcasts: Broadcasts.next_wake)."""
        row = await self._db.fetch_one(
            "SELECT MIN(t) AS t FROM ("
            " SELECT MIN(r.due_at) AS t FROM question_rounds r JOIN questions q"
            "  ON q.id = r.question_id WHERE r.status = 'due' AND q.status = 'scheduled'"
            " UNION ALL SELECT MIN(reminder_due_at) FROM question_rounds"
            "  WHERE status = 'sent' AND reminder_sent_at IS NULL) AS wakes"
        )
        return from_db(str(row["t"])) if row and row["t"] else None

    async def upcoming(self) -> list[tuple[Round, Question]]:
        """Rounds still to go out, soonest first."""
        rows = await self._db.fetch_all(
            "SELECT r.id FROM question_rounds r JOIN questions q ON q.id = r.question_id"
            " WHERE r.status = 'due' AND q.status = 'scheduled' ORDER BY r.due_at"
        )
        return await self._with_questions([int(r["id"]) for r in rows])

    async def cancel(self, question_id: int) -> bool:
        """Cancels a question and every round not sent yet."""
        async with self._db.transaction() as conn:
            changed = (
                await conn.execute(
                    "UPDATE questions SET status = 'cancelled'"
                    " WHERE id = ? AND status = 'scheduled'",
                    (question_id,),
                )
            ) > 0
            await conn.execute(
                "UPDATE question_rounds SET status = 'cancelled'"
                " WHERE question_id = ? AND status = 'due'",
                (question_id,),
            )
        return changed

    # ---- audiences

    async def audience(self, audience: str) -> list[Member]:
        """Members an audience names: everyone, project:<code>, tag:<word>, answered:<id>.

        A tag is a word one of the member's "about you" answers equals (e.g. an area).
        Members who stopped or cannot be reached are included: the sender skips and counts them.
        Everyone, in memory: for a few; a round or a broadcast queues with `audience_query`.
        """
        sql, params = audience_query(audience)
        return [member_from_row(r) for r in await self._db.fetch_all(sql, params)]

    async def reachable(self, audience: str) -> int:
        """How many members of an audience can get a message now: not those who stopped
        messages or cannot be reached (the sender would skip them). Counted in SQL."""
        sql, params = audience_query(audience)
        row = await self._db.fetch_one(
            f"SELECT COUNT(*) AS n FROM ({sql}) AS a"
            " WHERE stopped_at IS NULL AND unreachable_at IS NULL",
            params,
        )
        return int(row["n"]) if row else 0

    async def reachable_by_language(self, audience: str, chats: tuple[int, int]) -> dict[str, int]:
        """How many members of an audience can get a message now (as `reachable` counts),
        by language, among those whose chat id is in the range [first, end) of `chats` (a
        channel's range: bot/channels.py). Counted in SQL."""
        sql, params = audience_query(audience)
        rows = await self._db.fetch_all(
            f"SELECT language, COUNT(*) AS n FROM ({sql}) AS a"
            " WHERE stopped_at IS NULL AND unreachable_at IS NULL"
            " AND chat_id >= ? AND chat_id < ? GROUP BY language ORDER BY language",
            (*params, *chats),
        )
        return {str(r["language"]): int(r["n"]) for r in rows}

    # ---- rounds sent to a member

    async def open_rounds_for(self, member_id: int, now: datetime) -> list[tuple[Round, Question]]:
        """Rounds sent to the member that still take answers, newest first."""
        rows = await self._db.fetch_all(
            "SELECT r.id, o.sent_at FROM question_rounds r"
            " JOIN outbox o ON o.batch_id = r.batch_id"
            " JOIN questions q ON q.id = r.question_id"
            # 'sending' too: Telegram may have shown the question before the sender recorded
            # it 'sent' (it records several together; with several processes, or a sender
            # killed meanwhile, a while later), and a member who presses its button has it.
            " WHERE o.member_id = ? AND o.status IN ('sending', 'sent', 'unconfirmed')"
            " AND r.closes_at > ? AND q.status != 'cancelled' ORDER BY o.sent_at DESC, r.id DESC",
            (member_id, to_db(now)),
        )
        return await self._with_questions([int(r["id"]) for r in rows])

    async def delivered_after(self, round_id: int, member_id: int, since: str) -> bool:
        """Whether the round reached the member after a moment (an ISO time, as stored)."""
        row = await self._db.fetch_one(
            "SELECT 1 FROM outbox o JOIN question_rounds r ON r.batch_id = o.batch_id"
            " WHERE r.id = ? AND o.member_id = ? AND o.status = 'sent' AND o.sent_at > ?",
            (round_id, member_id, since),
        )
        return row is not None

    async def delivered_messages(self, round_ids: Sequence[int], member_id: int) -> dict[int, int]:
        """The Telegram message id each round reached the member with, in one read (rounds
        that have not reached them are left out); IN_FLIGHT while its row is 'sending'
        (Telegram may have shown it before the sender recorded it 'sent' with its id: it is
        then the member's newest message)."""
        if not round_ids:
            return {}
        marks = ", ".join("?" for _ in round_ids)
        rows = await self._db.fetch_all(
            "SELECT r.id, o.status, o.telegram_message_id FROM outbox o"
            " JOIN question_rounds r ON r.batch_id = o.batch_id"
            f" WHERE r.id IN ({marks}) AND o.member_id = ? AND o.status IN ('sent', 'sending')",
            (*round_ids, member_id),
        )
        found: dict[int, int] = {}
        for row in rows:
            if row["status"] == "sending":
                found[int(row["id"])] = IN_FLIGHT
            elif row["telegram_message_id"]:
                found.setdefault(int(row["id"]), int(row["telegram_message_id"]))
        return found
