"""The reply relay: a facilitator's reply to an answer, and the member's one answer back.

Table: replies (migration 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, Row, new_id
from storage.times import from_db, to_db

Now = Callable[[], datetime]


@dataclass(frozen=True)
class Reply:
    id: int
    answer_id: int
    staff_id: int
    staff_chat_id: int
    text: str
    sent_at: datetime
    member_text: str | None
    member_replied_at: datetime | None


def _reply(r: Row) -> Reply:
    return Reply(
        id=r["id"],
        answer_id=r["answer_id"],
        staff_id=r["staff_id"],
        staff_chat_id=r["staff_chat_id"],
        text=r["text"],
        sent_at=from_db(r["sent_at"]),
        member_text=r["member_text"],
        member_replied_at=from_db(r["member_replied_at"]),
    )


class Replies:
    """Replies to answers and the answers back to them."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def create(self, answer_id: int, staff_id: int, staff_chat_id: int, text: str) -> Reply:
        """Records a facilitator's reply to an answer."""
        async with self._db.transaction() as conn:
            reply_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO replies (answer_id, staff_id, staff_chat_id, text, sent_at)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id",
                    (answer_id, staff_id, staff_chat_id, text, to_db(self._now())),
                )
            )
        found = await self.get(reply_id)
        assert found is not None
        return found

    async def get(self, reply_id: int) -> Reply | None:
        """A reply by id."""
        row = await self._db.fetch_one("SELECT * FROM replies WHERE id = ?", (reply_id,))
        return _reply(row) if row else None

    async def answer_back(self, reply_id: int, text: str) -> bool:
        """Stores the member's one answer back; False if they answered already."""
        changed = await self._db.execute(
            "UPDATE replies SET member_text = ?, member_replied_at = ?"
            " WHERE id = ? AND member_text IS NULL",
            (text, to_db(self._now()), reply_id),
        )
        return changed > 0
