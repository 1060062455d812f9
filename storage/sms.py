"""SMS members' numbers, the texts they send and the texts sent to them (issue 15).

Tables (storage/migrations.py says what each keeps): sms_numbers, sms_inbound, sms_messages.
A phone number is personal data: it is kept only sealed, found by a keyed hash (both made
by bot/sms.py, with SMS_NUMBER_KEY; this layer never sees a number in clear), never
exported, and erased with its member (`forget`, called by Members.erase). An SMS member's
chat id is `SMS_BASE + sms_numbers.id`; an inbound text's update id is
`SMS_BASE + sms_inbound.id`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database, IntegrityErrors, Row, Tx, new_id
from storage.times import from_db, to_db

Now = Callable[[], datetime]
SMS_BASE = 2**53  # as bot/channels.py: storage does not import bot/

# How far along each status is: a status callback never moves a text back (Twilio's come
# in any order, and one may come before the send's own answer is recorded).
RANK = {
    "sending": 0,
    "accepted": 1,
    "queued": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
}
_RANK_SQL = (
    "CASE status"
    + "".join(f" WHEN '{name}' THEN {rank}" for name, rank in RANK.items())
    + " ELSE 0 END"
)


@dataclass(frozen=True)
class SmsNumber:
    """One number that texted the bot: its chat, the number sealed, and its STOP."""

    chat_id: int
    sealed: str
    stopped_at: datetime | None
    asked: str | None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None


@dataclass(frozen=True)
class SmsMessage:
    """One text sent to a member."""

    id: int
    sid: str | None
    chat_id: int
    outbox_id: int | None
    segments: int
    status: str


class Sms:
    """The SMS channel's rows."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    # ---- numbers

    async def by_hash(self, number_hash: str) -> SmsNumber | None:
        """The number with this keyed hash, if it ever texted."""
        row = await self._db.fetch_one(
            "SELECT * FROM sms_numbers WHERE number_hash = ?", (number_hash,)
        )
        return _number(row) if row is not None else None

    async def by_chat(self, chat_id: int) -> SmsNumber | None:
        """The number behind an SMS chat, if it is still kept."""
        row = await self._db.fetch_one(
            "SELECT * FROM sms_numbers WHERE id = ?", (chat_id - SMS_BASE,)
        )
        return _number(row) if row is not None else None

    async def add(self, number_hash: str, sealed: str) -> SmsNumber:
        """Keeps a new number (or finds it, if it was added meanwhile); gives its chat."""
        try:
            async with self._db.transaction() as conn:
                await conn.fetch_one(
                    "INSERT INTO sms_numbers (number_hash, sealed, created_at)"
                    " VALUES (?, ?, ?) RETURNING id",
                    (number_hash, sealed, to_db(self._now())),
                )
        except IntegrityErrors:
            pass  # another request added it first
        found = await self.by_hash(number_hash)
        assert found is not None
        return found

    async def set_stopped(self, chat_id: int, stopped: bool) -> bool:
        """Records STOP (or START) for a number; True if that changed anything."""
        if stopped:
            sql = "UPDATE sms_numbers SET stopped_at = ? WHERE id = ? AND stopped_at IS NULL"
            params: tuple[object, ...] = (to_db(self._now()), chat_id - SMS_BASE)
        else:
            sql = "UPDATE sms_numbers SET stopped_at = NULL WHERE id = ? AND stopped_at IS NOT NULL"
            params = (chat_id - SMS_BASE,)
        return await self._db.execute(sql, params) > 0

    # ---- texts received

    async def inbound_id(self, message_sid: str, chat_id: int) -> tuple[int, bool]:
        """The update id of a received text, and whether it is new: the same id for the same
        MessageSid (a retried post), kept before the update is recorded (a crash in between
        loses nothing: the retry records it)."""
        sql = "SELECT id FROM sms_inbound WHERE message_sid = ?"
        row = await self._db.fetch_one(sql, (message_sid,))
        fresh = False
        if row is None:
            try:
                async with self._db.transaction() as conn:
                    fresh = (
                        await conn.execute(
                            "INSERT INTO sms_inbound (message_sid, chat_id, received_at)"
                            " VALUES (?, ?, ?)",
                            (message_sid, chat_id, to_db(self._now())),
                        )
                        > 0
                    )
            except IntegrityErrors:
                fresh = False  # the same text, posted twice at once
            row = await self._db.fetch_one(sql, (message_sid,))
            assert row is not None
        return SMS_BASE + int(row["id"]), fresh

    async def prune_inbound(self, before: datetime) -> int:
        """Forgets which texts were received before a moment (the inbox forgets their
        updates then too); returns how many."""
        return await self._db.execute(
            "DELETE FROM sms_inbound WHERE received_at < ?", (to_db(before),)
        )

    async def forget_unjoined(
        self, chat_id: int | None = None, before: datetime | None = None
    ) -> int:
        """Forgets the numbers (and their texts) of people who never joined: one chat's, or
        every one first seen before a moment and with no member and no place in joining left.
        Returns how many numbers."""
        clauses: list[str] = []
        params: list[object] = []
        if chat_id is not None:
            if chat_id < SMS_BASE:
                return 0
            clauses.append("n.id = ?")
            params.append(chat_id - SMS_BASE)
        if before is not None:
            clauses.append("n.created_at < ?")
            params.append(to_db(before))
        where = " AND ".join(clauses) or "1 = 1"
        unjoined = (
            f"SELECT n.id FROM sms_numbers n WHERE {where}"
            " AND NOT EXISTS (SELECT 1 FROM members m WHERE m.telegram_user_id = n.id + ?)"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = n.id + ?"
            " AND s.flow IS NOT NULL)"
        )
        async with self._db.transaction() as tx:
            ids = [
                int(r["id"]) for r in await tx.fetch_all(unjoined, (*params, SMS_BASE, SMS_BASE))
            ]
            for id_ in ids:
                await tx.execute("DELETE FROM sms_numbers WHERE id = ?", (id_,))
                await tx.execute("DELETE FROM sms_messages WHERE chat_id = ?", (SMS_BASE + id_,))
        return len(ids)

    # ---- texts sent

    async def sending(
        self, chat_id: int, segments: int, outbox_id: int | None, asked: str | None
    ) -> int:
        """Records a text about to be sent (and what it asks); returns its id."""
        now = to_db(self._now())
        rows = await self._db.execute_all(
            [
                (
                    "INSERT INTO sms_messages"
                    " (chat_id, outbox_id, segments, status, created_at, updated_at)"
                    " VALUES (?, ?, ?, 'sending', ?, ?) RETURNING id",
                    (chat_id, outbox_id, segments, now, now),
                ),
                (
                    "UPDATE sms_numbers SET asked = ? WHERE id = ?",
                    (asked, chat_id - SMS_BASE),
                ),
            ]
        )
        return new_id(rows[0][0] if rows[0] else None)

    async def sent(self, message_id: int, sid: str, status: str) -> None:
        """The provider took the text: its sid, and its status unless a callback came first."""
        await self._db.execute(
            "UPDATE sms_messages SET sid = ? WHERE id = ? AND sid IS NULL", (sid, message_id)
        )
        await self.track(message_id, status)

    async def track(self, message_id: int, status: str) -> bool:
        """Moves a text to a later status (a status callback); True if it moved."""
        rank = RANK.get(status)
        if rank is None:
            return False
        changed = await self._db.execute(
            f"UPDATE sms_messages SET status = ?, updated_at = ? WHERE id = ? AND {_RANK_SQL} < ?",
            (status, to_db(self._now()), message_id, rank),
        )
        return changed > 0

    async def message(self, message_id: int) -> SmsMessage | None:
        """One text sent."""
        row = await self._db.fetch_one("SELECT * FROM sms_messages WHERE id = ?", (message_id,))
        return _message(row) if row is not None else None

    async def messages_to(self, chat_id: int) -> list[SmsMessage]:
        """The texts sent to a chat, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM sms_messages WHERE chat_id = ? ORDER BY id", (chat_id,)
        )
        return [_message(row) for row in rows]

    # ---- erasure

    @staticmethod
    async def forget(conn: Tx, chat_id: int) -> None:
        """Erases a member's number and every row that links texts to their chat (inside
        Members.erase's transaction)."""
        if chat_id < SMS_BASE:
            return  # a Telegram member
        await conn.execute("DELETE FROM sms_numbers WHERE id = ?", (chat_id - SMS_BASE,))
        await conn.execute("DELETE FROM sms_inbound WHERE chat_id = ?", (chat_id,))
        await conn.execute("DELETE FROM sms_messages WHERE chat_id = ?", (chat_id,))


def _number(row: Row) -> SmsNumber:
    return SmsNumber(
        chat_id=SMS_BASE + int(row["id"]),
        sealed=str(row["sealed"]),
        stopped_at=from_db(row["stopped_at"]),
        asked=row["asked"],
    )


def _message(row: Row) -> SmsMessage:
    return SmsMessage(
        id=int(row["id"]),
        sid=row["sid"],
        chat_id=int(row["chat_id"]),
        outbox_id=row["outbox_id"],
        segments=int(row["segments"]),
        status=str(row["status"]),
    )
