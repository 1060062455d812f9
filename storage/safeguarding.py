"""The safeguarding queue: flags raised on members' words (conversations/safeguarding.py), what
staff did with them, and the list the workbench shows (bot/web/pages/safeguarding.py).

Tables: safeguarding_flags (followed_up_at and followed_up_by: who dealt with a flag, when),
audit_log, and for a flag's context submissions, submission_parts, answers, question_rounds,
questions and roles (a handler's name).

What staff do with a flag is recorded by one function, `record`, wherever they do it: "Read
it" under an alert in Telegram ("read": an audit entry), and "I have dealt with this" in the
workbench ("dealt_with": who and when on the flag, and an audit entry, together). The audit
entry names the flag, never the words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from storage.db import Database, Row
from storage.times import from_db, to_db

Action = Literal["read", "dealt_with"]
AUDIT_ACTIONS: dict[Action, str] = {
    "read": "safeguarding_read",
    "dealt_with": "safeguarding_dealt_with",
}


@dataclass(frozen=True)
class QueuedFlag:
    """One flag in the queue, with its words in their context."""

    id: int
    member_id: int
    kind: str | None  # the story's or idea's kind (storage/kinds.py), if it was in one
    part: str | None  # the part of it the words were for
    question: str | None  # the question the words answered, if they were an answer
    place: str | None  # where the member was: a flow and its step, or "menu"
    words: str  # what they wrote, as flagged ("" if it is gone)
    flagged_at: datetime
    followed_up_at: datetime | None
    followed_up_by: int | None  # the staff member's Telegram id
    handler: str | None  # their name, as /roles knows it

    @property
    def waiting(self) -> bool:
        return self.followed_up_at is None


_QUEUE = """
    SELECT f.id, f.member_id, f.part, f.place, f.flagged_at, f.followed_up_at,
           f.followed_up_by, s.kind, q.text AS question, ro.name AS handler,
           COALESCE(f.words, a.text, (SELECT p.text FROM submission_parts p
             WHERE p.submission_id = f.submission_id AND p.part = f.part), '') AS words
      FROM safeguarding_flags f
      LEFT JOIN submissions s ON s.id = f.submission_id
      LEFT JOIN answers a ON a.id = f.answer_id
      LEFT JOIN question_rounds r ON r.id = a.round_id
      LEFT JOIN questions q ON q.id = r.question_id
      LEFT JOIN roles ro ON ro.telegram_user_id = f.followed_up_by
"""


def _queued(r: Row) -> QueuedFlag:
    return QueuedFlag(
        id=int(r["id"]),
        member_id=int(r["member_id"]),
        kind=r["kind"],
        part=r["part"],
        question=r["question"],
        place=r["place"],
        words=str(r["words"]),
        flagged_at=from_db(r["flagged_at"]),
        followed_up_at=from_db(r["followed_up_at"]),
        followed_up_by=r["followed_up_by"],
        handler=r["handler"],
    )


class Safeguarding:
    """Flags as staff work through them."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now

    async def waiting(self, limit: int = 200) -> list[QueuedFlag]:
        """Flags no one has dealt with yet, oldest first."""
        rows = await self._db.fetch_all(
            f"{_QUEUE} WHERE f.followed_up_at IS NULL ORDER BY f.flagged_at, f.id LIMIT ?",
            (limit,),
        )
        return [_queued(r) for r in rows]

    async def dealt_with(self, limit: int = 50) -> list[QueuedFlag]:
        """Flags dealt with, the most recently dealt with first."""
        rows = await self._db.fetch_all(
            f"{_QUEUE} WHERE f.followed_up_at IS NOT NULL"
            " ORDER BY f.followed_up_at DESC, f.id DESC LIMIT ?",
            (limit,),
        )
        return [_queued(r) for r in rows]

    async def record(self, flag_id: int, by: int, action: Action) -> bool:
        """Records what a member of staff (their Telegram id) did with a flag, with an audit
        entry in the same transaction. "dealt_with" also keeps who and when on the flag.

        False, and nothing recorded, if there is no such flag, or it was dealt with already
        (the first to deal with it stays the one on record)."""
        now = to_db(self._now())
        async with self._db.transaction() as conn:
            if action == "dealt_with":
                sql = (
                    "UPDATE safeguarding_flags SET followed_up_at = ?, followed_up_by = ?"
                    " WHERE id = ? AND followed_up_at IS NULL"
                )
                done = (await conn.execute(sql, (now, by, flag_id))) == 1
            else:
                sql = "SELECT 1 FROM safeguarding_flags WHERE id = ?"
                done = await conn.fetch_one(sql, (flag_id,)) is not None
            if done:
                await conn.execute(
                    "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
                    (now, f"telegram:{by}", AUDIT_ACTIONS[action], json.dumps({"flag": flag_id})),
                )
        return done
