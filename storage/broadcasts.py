"""Broadcasts: one message a facilitator sends to an audience at a set time.

Table: broadcasts (migration 4). The scheduler sends the due ones through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, Row, new_id
from storage.times import from_db, to_db

Now = Callable[[], datetime]


@dataclass(frozen=True)
class Broadcast:
    id: int
    author_id: int
    author_chat_id: int
    author_language: str
    text: str
    audience: str
    send_at: datetime
    status: str
    batch_id: int | None
    created_at: datetime
    sent_at: datetime | None


def _broadcast(r: Row) -> Broadcast:
    return Broadcast(
        id=r["id"],
        author_id=r["author_id"],
        author_chat_id=r["author_chat_id"],
        author_language=r["author_language"],
        text=r["text"],
        audience=r["audience"],
        send_at=from_db(r["send_at"]),
        status=r["status"],
        batch_id=r["batch_id"],
        created_at=from_db(r["created_at"]),
        sent_at=from_db(r["sent_at"]),
    )


class Broadcasts:
    """Broadcasts: planning, finding the due ones, marking and cancelling them."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def create(
        self,
        *,
        author_id: int,
        author_chat_id: int,
        author_language: str,
        text: str,
        audience: str,
        send_at: datetime,
    ) -> Broadcast:
        """Stores a broadcast to go out at `send_at`."""
        async with self._db.transaction() as conn:
            broadcast_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO broadcasts (author_id, author_chat_id, author_language, text,"
                    " audience, send_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (
                        author_id,
                        author_chat_id,
                        author_language,
                        text,
                        audience,
                        to_db(send_at),
                        to_db(self._now()),
                    ),
                )
            )
        found = await self.get(broadcast_id)
        assert found is not None
        return found

    async def get(self, broadcast_id: int) -> Broadcast | None:
        """A broadcast by id."""
        row = await self._db.fetch_one("SELECT * FROM broadcasts WHERE id = ?", (broadcast_id,))
        return _broadcast(row) if row else None

    async def due(self, now: datetime) -> list[Broadcast]:
        """Broadcasts whose time has come."""
        rows = await self._db.fetch_all(
            "SELECT * FROM broadcasts WHERE status = 'scheduled' AND send_at <= ? ORDER BY send_at",
            (to_db(now),),
        )
        return [_broadcast(r) for r in rows]

    async def scheduled(self) -> list[Broadcast]:
        """Broadcasts still to go out, soonest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM broadcasts WHERE status = 'scheduled' ORDER BY send_at"
        )
        return [_broadcast(r) for r in rows]

    async def mark(self, broadcast_id: int, status: str, batch_id: int | None) -> None:
        """Records that a broadcast was sent (or missed)."""
        await self._db.execute(
            "UPDATE broadcasts SET status = ?, batch_id = ?, sent_at = ?"
            " WHERE id = ? AND status = 'scheduled'",
            (status, batch_id, to_db(self._now()), broadcast_id),
        )

    async def cancel(self, broadcast_id: int) -> bool:
        """Cancels a broadcast not sent yet."""
        changed = await self._db.execute(
            "UPDATE broadcasts SET status = 'cancelled' WHERE id = ? AND status = 'scheduled'",
            (broadcast_id,),
        )
        return changed > 0

    async def next_wake(self) -> datetime | None:
        """When the soonest broadcast still to go out is due."""
        row = await self._db.fetch_one(
            "SELECT MIN(send_at) AS t FROM broadcasts WHERE status = 'scheduled'"
        )
        return from_db(str(row["t"])) if row and row["t"] else None
