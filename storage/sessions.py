"""Where each person is in a flow, and their draft: one row per Telegram user.

Table: sessions. The one door (conversations/door.py) reads a person's row when their
update arrives and writes it back inside every commit of that update's unit of work, with
the update's id. So the flow's effects, the step it moved to, and "update N was applied"
reach the disk together, and a replay after a crash is recognised (`last_update_id`).
Several processes can share it, unlike ptb's in-memory ConversationHandler.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.db import Database, Statement
from storage.times import to_db


@dataclass
class Session:
    """A person's place in a flow (`flow`, `state`), their draft (`data`), and the newest
    update applied for them. Changed in memory by the flows; saved by the door."""

    user_id: int
    flow: str | None = None
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    last_update_id: int = 0
    dropped: bool = False  # forget the row (consent declined, data erased)
    # A row exists, so an emptied session is written, not left stale (not part of equality).
    stored: bool = field(default=False, compare=False)
    # What the row holds (flow, state, data as JSON, last_update_id): unchanged, not written.
    saved: tuple[str | None, str | None, str, int] | None = field(
        default=None, compare=False, repr=False
    )
    # When the row was last written (the person's last update that changed or moved it):
    # a one-step question they are waiting at was asked no later than this.
    updated_at: str | None = field(default=None, compare=False)

    def go(self, flow: str, state: str) -> None:
        """Puts the person at a state of a flow."""
        self.flow, self.state, self.dropped = flow, state, False

    def end(self) -> None:
        """Takes the person out of whatever flow they were in (their data stays)."""
        self.flow = self.state = None

    def drop(self) -> None:
        """Forgets everything: the flow, the data, and (once saved) the row itself."""
        self.end()
        self.data.clear()
        self.dropped = True

    @property
    def empty(self) -> bool:
        """Nothing worth keeping: no flow and no data."""
        return self.flow is None and not self.data


class Sessions:
    """Reads and writes sessions; writes are meant to run inside an update's unit of work."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now

    @staticmethod
    def reading(user_id: int) -> Statement:
        """The query `get` makes (for Database.prefetch)."""
        return (
            "SELECT flow, state, data, last_update_id, updated_at FROM sessions WHERE user_id = ?",
            (user_id,),
        )

    async def get(self, user_id: int) -> Session:
        """The person's session, or a fresh one."""
        row = await self._db.fetch_one(*self.reading(user_id))
        if row is None:
            return Session(user_id)
        flow, state, data = row["flow"], row["state"], row["data"]
        last = int(row["last_update_id"])
        saved = (flow, state, data, last)
        return Session(
            user_id,
            flow,
            state,
            json.loads(data),
            last,
            stored=True,
            saved=saved,
            updated_at=row["updated_at"],
        )

    async def save(self, session: Session) -> None:
        """Writes the session (or deletes it, if dropped), unless the row already holds it."""
        if session.dropped:
            await self.forget(session.user_id)
            session.stored, session.saved = False, None
            return
        data = json.dumps(session.data)
        now = (session.flow, session.state, data, session.last_update_id)
        if session.stored and session.saved == now:
            return
        await self._db.execute(
            "INSERT INTO sessions (user_id, flow, state, data, last_update_id, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
            " flow = excluded.flow, state = excluded.state, data = excluded.data,"
            " last_update_id = CASE WHEN sessions.last_update_id > excluded.last_update_id"
            " THEN sessions.last_update_id ELSE excluded.last_update_id END,"
            " updated_at = excluded.updated_at",
            (
                session.user_id,
                session.flow,
                session.state,
                data,
                session.last_update_id,
                to_db(self._now()),
            ),
        )
        session.stored, session.saved = True, now

    async def forget(self, user_id: int) -> None:
        """Deletes a person's session."""
        await self._db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
