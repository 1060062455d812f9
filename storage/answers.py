"""Members' answers to question rounds, and the media that came with them.

Table: answers (migration 4), media rows that point at an answer; reads outbox and
question_rounds to count who was sent a question.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, Row
from storage.sharing import NewMedia, insert_media
from storage.times import from_db, to_db

Now = Callable[[], datetime]


@dataclass(frozen=True)
class Answer:
    id: int
    round_id: int
    member_id: int
    choice: str | None
    text: str | None
    answered_at: datetime
    updated_at: datetime
    media_kinds: tuple[str, ...] = ()


def _answer(r: Row, media_kinds: tuple[str, ...] = ()) -> Answer:
    return Answer(
        id=r["id"],
        round_id=r["round_id"],
        member_id=r["member_id"],
        choice=r["choice"],
        text=r["text"],
        answered_at=from_db(r["answered_at"]),
        updated_at=from_db(r["updated_at"]),
        media_kinds=media_kinds,
    )


class Answers:
    """Answers: saving, reading, paging and counting them."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def of(self, round_id: int, member_id: int) -> Answer | None:
        """The member's answer to a round, if any."""
        row = await self._db.fetch_one(
            "SELECT * FROM answers WHERE round_id = ? AND member_id = ?", (round_id, member_id)
        )
        return _answer(row) if row else None

    async def get(self, answer_id: int) -> Answer | None:
        """An answer by id."""
        row = await self._db.fetch_one("SELECT * FROM answers WHERE id = ?", (answer_id,))
        return _answer(row) if row else None

    async def save(
        self,
        round_id: int,
        member_id: int,
        *,
        choice: str | None,
        text: str | None,
        media: NewMedia | None = None,
    ) -> tuple[Answer, list[str]]:
        """Stores or changes an answer; returns it and the files it replaced."""
        now = to_db(self._now())
        keep = (
            "INSERT INTO answers (round_id, member_id, choice, text, answered_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (round_id, member_id) DO UPDATE"
            " SET choice = excluded.choice, text = excluded.text,"
            " updated_at = excluded.updated_at RETURNING *",
            (round_id, member_id, choice, text, now, now),
        )
        forget = (
            "DELETE FROM media WHERE answer_id ="
            " (SELECT id FROM answers WHERE round_id = ? AND member_id = ?) RETURNING file_name",
            (round_id, member_id),
        )
        if media is None:  # the usual case: words or a choice, saved in one trip
            kept, gone = await self._db.execute_all([keep, forget])
        else:
            async with self._db.transaction() as conn:
                kept = list(await conn.fetch_all(*keep))
                gone = list(await conn.fetch_all(*forget))
                await insert_media(conn, member_id, media, now, answer_id=int(kept[0]["id"]))
        answer = _answer(kept[0])
        replaced = [str(r["file_name"]) for r in gone]
        return answer, replaced

    async def to_question(self, question_id: int, offset: int, limit: int) -> list[Answer]:
        """Answers to every round of a question, newest first, a page at a time."""
        rows = await self._db.fetch_all(
            "SELECT a.* FROM answers a JOIN question_rounds r ON r.id = a.round_id"
            " WHERE r.question_id = ? ORDER BY a.updated_at DESC, a.id DESC LIMIT ? OFFSET ?",
            (question_id, limit, offset),
        )
        answers = []
        for r in rows:
            kinds = await self._db.fetch_all(
                "SELECT kind FROM media WHERE answer_id = ? ORDER BY id", (r["id"],)
            )
            answers.append(_answer(r, tuple(str(k["kind"]) for k in kinds)))
        return answers

    async def counts(self, question_id: int) -> tuple[dict[str, int], int, int]:
        """Answers per choice, how many answered, and how many were sent the question."""
        rows = await self._db.fetch_all(
            "SELECT a.choice, COUNT(*) AS n FROM answers a JOIN question_rounds r"
            " ON r.id = a.round_id WHERE r.question_id = ? GROUP BY a.choice",
            (question_id,),
        )
        per_choice = {str(r["choice"]): int(r["n"]) for r in rows if r["choice"] is not None}
        answered = sum(int(r["n"]) for r in rows)
        sent = await self._db.fetch_one(
            "SELECT COUNT(*) AS n FROM outbox o JOIN question_rounds r ON r.batch_id = o.batch_id"
            " WHERE r.question_id = ? AND o.status IN ('sent', 'unconfirmed')",
            (question_id,),
        )
        return per_choice, answered, int(sent["n"]) if sent else 0
