"""Staff roles (organisers, facilitators) and the single-use links that invite facilitators.

Tables: roles, invites. Organisers come from ORGANISER_IDS at start (`granted_by` NULL);
facilitators join through an invite an organiser made. A removed role keeps its row, with
`removed_at`, for the record. Only the sha256 of an invite's token is kept: the link itself
exists only in the chat it was sent to. Every change is written to the audit log in the same
unit of work as the change itself.

Staff are written to only in their private chat, whose id is their user id: the `chat_id`
column is kept equal to it, never taken from an update (which could name any chat). An invite
works only while the organiser who made it still is one, and a role that ends takes its mail
with it: no delivery report still waiting, and no staff message still queued, goes out to it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from storage.db import Database, Row, Tx, new_id
from storage.times import from_db, to_db

Role = Literal["organiser", "facilitator"]
ORGANISER: Role = "organiser"
FACILITATOR: Role = "facilitator"
INVITE_TTL = timedelta(days=7)
SETTINGS_ACTOR = "settings"  # who granted a role that came from ORGANISER_IDS


@dataclass(frozen=True)
class StaffRole:
    telegram_user_id: int
    role: Role
    name: str | None  # their Telegram first name, once known
    granted_at: datetime
    granted_by: int | None  # None: from ORGANISER_IDS
    removed_at: datetime | None

    @property
    def active(self) -> bool:
        return self.removed_at is None

    @property
    def from_settings(self) -> bool:
        return self.granted_by is None

    @property
    def chat_id(self) -> int:
        """Their private chat with the bot: the only chat staff are written to."""
        return self.telegram_user_id


@dataclass(frozen=True)
class Invite:
    id: int
    created_by: int
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    used_by: int | None


class Redemption(StrEnum):
    """What came of opening an invite link."""

    OK = "ok"  # they are a facilitator now
    ALREADY_STAFF = "already_staff"  # already on the team: nothing changed, the link still works
    WITHDRAWN = "withdrawn"  # whoever made it is not an organiser any more
    EXPIRED = "expired"
    USED = "used"
    UNKNOWN = "unknown"


def token_hash(token: str) -> str:
    """The form an invite token is stored in."""
    return hashlib.sha256(token.encode()).hexdigest()


def actor(user_id: int | None) -> str:
    """How a person is named in the audit log."""
    return SETTINGS_ACTOR if user_id is None else f"telegram:{user_id}"


def _role(row: Row) -> StaffRole:
    role: Role = ORGANISER if row["role"] == ORGANISER else FACILITATOR
    return StaffRole(
        telegram_user_id=row["telegram_user_id"],
        role=role,
        name=row["name"],
        granted_at=from_db(row["granted_at"]),
        granted_by=row["granted_by"],
        removed_at=from_db(row["removed_at"]),
    )


def _invite(row: Row) -> Invite:
    return Invite(
        id=row["id"],
        created_by=row["created_by"],
        created_at=from_db(row["created_at"]),
        expires_at=from_db(row["expires_at"]),
        used_at=from_db(row["used_at"]),
        used_by=row["used_by"],
    )


async def _audit(conn: Tx, at: str, who: str, action: str, **detail: Any) -> None:
    # As AuditLog.add, but inside the caller's transaction, so the record and the change
    # commit together.
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)",
        (at, who, action, json.dumps(detail, sort_keys=True)),
    )


# The flows only staff can be in (conversations/asking.py, broadcasting.py, exporting.py,
# tracking.py, reviewing.py's reply, approving.py's one-step questions: a choice at a
# waiting idea, an edit, a summary, a statement): a session left in one of them ends with
# the role, so that nothing typed later (invited back, say) is taken for its answer.
STAFF_FLOWS = (
    "ask",
    "broadcast",
    "export",
    "reply",
    "track",
    "approve_choose",
    "approve_edit",
    "approve_summary",
    "statement",
)


async def _fetch_role(conn: Tx, user_id: int) -> StaffRole | None:
    row = await conn.fetch_one("SELECT * FROM roles WHERE telegram_user_id = ?", (user_id,))
    return _role(row) if row else None


async def _end_staff_mail(conn: Tx, user_id: int) -> None:
    # A role has ended: batches not yet reported will not be reported to them, and staff
    # messages (reports, notices, answers back: the rows with no member) still queued for
    # their chat are given up.
    await conn.execute(
        "UPDATE delivery_batches SET author_chat_id = NULL"
        " WHERE author_chat_id = ? AND reported_at IS NULL",
        (user_id,),
    )
    await conn.execute(
        "UPDATE outbox SET status = 'failed', last_error = 'role_ended'"
        " WHERE chat_id = ? AND member_id IS NULL AND status = 'queued'",
        (user_id,),
    )
    # Their open staff flows end too (/ask, /broadcast, /export, a reply or an idea's edit
    # being written: STAFF_FLOWS).
    await conn.execute(
        "UPDATE sessions SET flow = NULL, state = NULL, data = '{}'"
        " WHERE user_id = ? AND flow IN (" + ", ".join("?" * len(STAFF_FLOWS)) + ")",
        (user_id, *STAFF_FLOWS),
    )


class Roles:
    """Who is staff, and the invites that make facilitators."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._clock = db, now

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)

    # ---- roles

    async def sync_organisers(self, ids: Iterable[int]) -> None:
        """Makes the ORGANISER_IDS organisers; one no longer listed loses the role it had from them.

        An organiser's private chat has the same id as the person, so their chat is known
        from the start (Telegram refuses messages to it until they open the bot).
        """
        wanted = list(dict.fromkeys(ids))
        at = to_db(self._now())
        async with self._db.transaction() as conn:
            for user_id in wanted:
                current = await _fetch_role(conn, user_id)
                if current is not None and current.active and current.role == ORGANISER:
                    continue
                await conn.execute(
                    "INSERT INTO roles (telegram_user_id, role, chat_id, granted_at)"
                    " VALUES (?, 'organiser', ?, ?) ON CONFLICT (telegram_user_id) DO UPDATE"
                    " SET role = 'organiser', chat_id = excluded.chat_id,"
                    " granted_at = excluded.granted_at, granted_by = NULL, removed_at = NULL",
                    (user_id, user_id, at),
                )
                await _audit(conn, at, SETTINGS_ACTOR, "role_granted", user=user_id, role=ORGANISER)
            listed_before = [
                int(r["telegram_user_id"])
                for r in await conn.fetch_all(
                    "SELECT telegram_user_id FROM roles WHERE role = 'organiser'"
                    " AND granted_by IS NULL AND removed_at IS NULL"
                )
            ]
            for user_id in listed_before:
                if user_id in wanted:
                    continue
                await conn.execute(
                    "UPDATE roles SET removed_at = ? WHERE telegram_user_id = ?", (at, user_id)
                )
                await _end_staff_mail(conn, user_id)
                await _audit(conn, at, SETTINGS_ACTOR, "role_removed", user=user_id, role=ORGANISER)

    async def get(self, user_id: int) -> StaffRole | None:
        """A person's active role, if they have one."""
        row = await self._db.fetch_one(
            "SELECT * FROM roles WHERE telegram_user_id = ? AND removed_at IS NULL", (user_id,)
        )
        return _role(row) if row else None

    async def role_of(self, user_id: int) -> Role | None:
        """'organiser', 'facilitator', or None (never had a role, or it was removed)."""
        found = await self.get(user_id)
        return found.role if found else None

    async def staff(self) -> list[StaffRole]:
        """Everyone with an active role: organisers first, then facilitators, oldest first."""
        rows = await self._db.fetch_all(
            "SELECT * FROM roles WHERE removed_at IS NULL"
            " ORDER BY role = 'facilitator', granted_at, telegram_user_id"
        )
        return [_role(r) for r in rows]

    async def everyone(self) -> list[StaffRole]:
        """Every role ever held, removed ones included, oldest first."""
        rows = await self._db.fetch_all("SELECT * FROM roles ORDER BY granted_at, telegram_user_id")
        return [_role(r) for r in rows]

    async def staff_chat(self, user_id: int) -> int | None:
        """Where staff mail for this person goes: their private chat while they hold a role,
        None once it has ended (or if they never had one)."""
        return user_id if await self.get(user_id) is not None else None

    async def seen(self, user_id: int, name: str | None) -> None:
        """Keeps an active staff member's first name up to date (for /roles)."""
        await self._db.execute(
            "UPDATE roles SET name = COALESCE(?, name)"
            " WHERE telegram_user_id = ? AND removed_at IS NULL",
            (name, user_id),
        )

    async def grant_facilitator(self, user_id: int, name: str | None, granted_by: int) -> StaffRole:
        """Makes someone a facilitator; an organiser stays an organiser. Returns their role."""
        at = to_db(self._now())
        async with self._db.transaction() as conn:
            return await self._grant(conn, at, user_id, name, granted_by)

    @staticmethod
    async def _grant(
        conn: Tx, at: str, user_id: int, name: str | None, granted_by: int
    ) -> StaffRole:
        current = await _fetch_role(conn, user_id)
        if current is not None and current.active:
            return current  # a facilitator already, or an organiser, who keeps that role
        await conn.execute(
            "INSERT INTO roles (telegram_user_id, role, name, chat_id, granted_at, granted_by)"
            " VALUES (?, 'facilitator', ?, ?, ?, ?) ON CONFLICT (telegram_user_id) DO UPDATE"
            " SET role = 'facilitator', name = excluded.name, chat_id = excluded.chat_id,"
            " granted_at = excluded.granted_at, granted_by = excluded.granted_by,"
            " removed_at = NULL",
            (user_id, name, user_id, at, granted_by),
        )
        await _audit(conn, at, actor(granted_by), "role_granted", user=user_id, role=FACILITATOR)
        granted = await _fetch_role(conn, user_id)
        assert granted is not None
        return granted

    async def remove(self, user_id: int, by: int) -> StaffRole | None:
        """Removes a facilitator at once; returns the role removed, or None if there was none.

        Organisers cannot be removed in chat: they come from ORGANISER_IDS.
        """
        at = to_db(self._now())
        async with self._db.transaction() as conn:
            current = await _fetch_role(conn, user_id)
            if current is None or not current.active or current.role != FACILITATOR:
                return None
            await conn.execute(
                "UPDATE roles SET removed_at = ? WHERE telegram_user_id = ?", (at, user_id)
            )
            await _end_staff_mail(conn, user_id)
            await _audit(conn, at, actor(by), "role_removed", user=user_id, role=FACILITATOR)
        return current

    # ---- invites

    async def create_invite(
        self, created_by: int, now: datetime | None = None, ttl: timedelta = INVITE_TTL
    ) -> str:
        """Makes a single-use invite and returns its token (only its hash is stored)."""
        created = (now or self._now()).astimezone(UTC)
        token = secrets.token_urlsafe(24)
        at = to_db(created)
        async with self._db.transaction() as conn:
            invite_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO invites (token_hash, created_by, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?) RETURNING id",
                    (token_hash(token), created_by, at, to_db(created + ttl)),
                )
            )
            await _audit(
                conn, at, actor(created_by), "invite_created", invite=invite_id, days=ttl.days
            )
        return token

    async def redeem(self, token: str, user_id: int, name: str | None) -> Redemption:
        """Uses an invite: its opener becomes a facilitator, once, in one unit of work.

        Someone already on the team leaves the invite unused for the person it was meant for.
        An invite whose maker is no longer an organiser (or has not been one all along since
        making it) is refused.
        """
        now = self._now()
        at = to_db(now)
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(
                "SELECT * FROM invites WHERE token_hash = ?", (token_hash(token),)
            )
            invite = _invite(row) if row else None
            result = self._check(invite, now)
            if invite is not None and result is Redemption.OK:
                maker = await _fetch_role(conn, invite.created_by)
                if (
                    maker is None
                    or not maker.active
                    or maker.role != ORGANISER
                    or maker.granted_at > invite.created_at
                ):
                    result = Redemption.WITHDRAWN
            if result is Redemption.OK:
                current = await _fetch_role(conn, user_id)
                if current is not None and current.active:
                    result = Redemption.ALREADY_STAFF
            if invite is None or result is not Redemption.OK:
                await _audit(
                    conn,
                    at,
                    actor(user_id),
                    "invite_refused",
                    invite=invite.id if invite else None,
                    reason=result.value,
                )
                return result
            await conn.execute(
                "UPDATE invites SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL",
                (at, user_id, invite.id),
            )
            await _audit(conn, at, actor(user_id), "invite_used", invite=invite.id)
            await self._grant(conn, at, user_id, name, invite.created_by)
        return Redemption.OK

    @staticmethod
    def _check(invite: Invite | None, now: datetime) -> Redemption:
        if invite is None:
            return Redemption.UNKNOWN
        if invite.used_at is not None:
            return Redemption.USED
        if invite.expires_at <= now:
            return Redemption.EXPIRED
        return Redemption.OK

    async def invites(self) -> list[Invite]:
        """Every invite, oldest first."""
        rows = await self._db.fetch_all("SELECT * FROM invites ORDER BY id")
        return [_invite(r) for r in rows]
