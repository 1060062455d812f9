"""Members, the projects they join, their consent receipts and "about you" answers.

Tables: members, member_projects, projects, consent_receipts, about_you. Erasure deletes
from every table that holds a member's data (most by ON DELETE CASCADE).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

from storage.db import Database, IntegrityErrors, Row, Statement, new_id
from storage.models import ConsentReceipt, Member, Project
from storage.outbox import Outbox
from storage.sms import Sms
from storage.times import from_db, to_db

Now = Callable[[], datetime]


def member_from_row(row: Row) -> Member:
    return Member(
        id=row["id"],
        telegram_user_id=row["telegram_user_id"],
        chat_id=row["chat_id"],
        language=row["language"],
        display_name=row["display_name"],
        joined_at=from_db(row["joined_at"]),
        onboarded_at=from_db(row["onboarded_at"]),
        stopped_at=from_db(row["stopped_at"]),
        unreachable_at=from_db(row["unreachable_at"]),
    )


def _project(row: Row) -> Project:
    return Project(
        id=row["id"], code=row["code"], name=row["name"], created_at=from_db(row["created_at"])
    )


def _receipt(row: Row) -> ConsentReceipt:
    return ConsentReceipt(
        id=row["id"],
        member_id=row["member_id"],
        consent_version=row["consent_version"],
        language=row["language"],
        agreed_to=tuple(json.loads(row["agreed_to"])),
        agreed_at=from_db(row["agreed_at"]),
        withdrawn_at=from_db(row["withdrawn_at"]),
    )


class Projects:
    """The projects members can join with a link (`/start <code>`)."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def add(self, code: str, name: str) -> Project:
        """Creates a project; raises ValueError if the code is taken."""
        try:
            # A savepoint: in PostgreSQL a failed statement would spoil the whole transaction.
            async with self._db.transaction() as conn:
                await conn.execute(
                    "INSERT INTO projects (code, name, created_at) VALUES (?, ?, ?)",
                    (code, name, to_db(self._now())),
                )
        except IntegrityErrors as exc:
            raise ValueError(f"A project with the code {code!r} already exists") from exc
        project = await self.by_code(code)
        assert project is not None
        return project

    async def by_code(self, code: str) -> Project | None:
        """Finds a project by its code, ignoring case."""
        row = await self._db.fetch_one("SELECT * FROM projects WHERE code = ?", (code,))
        return _project(row) if row else None

    async def all(self) -> list[Project]:
        """Lists every project, oldest first."""
        return [_project(r) for r in await self._db.fetch_all("SELECT * FROM projects ORDER BY id")]


class Members:
    """People who agreed to take part. No row exists for someone who has not agreed."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    @staticmethod
    def reading(telegram_user_id: int) -> Statement:
        """The query `by_telegram_id` makes (for Database.prefetch)."""
        return ("SELECT * FROM members WHERE telegram_user_id = ?", (telegram_user_id,))

    async def by_telegram_id(self, telegram_user_id: int) -> Member | None:
        """Finds a member by their Telegram user id."""
        row = await self._db.fetch_one(*self.reading(telegram_user_id))
        return member_from_row(row) if row else None

    async def get(self, member_id: int) -> Member | None:
        """Finds a member by their own id."""
        row = await self._db.fetch_one("SELECT * FROM members WHERE id = ?", (member_id,))
        return member_from_row(row) if row else None

    async def join(
        self,
        *,
        telegram_user_id: int,
        chat_id: int,
        language: str,
        consent_version: str,
        agreed_to: Sequence[str],
        project_id: int | None = None,
    ) -> Member:
        """Creates the member and their consent receipt together (idempotent on replay)."""
        now = to_db(self._now())
        async with self._db.transaction() as conn:
            existing = await conn.fetch_one(
                "SELECT id FROM members WHERE telegram_user_id = ?", (telegram_user_id,)
            )
            if existing is None:
                member_id = new_id(
                    await conn.fetch_one(
                        "INSERT INTO members (telegram_user_id, chat_id, language, joined_at)"
                        " VALUES (?, ?, ?, ?) RETURNING id",
                        (telegram_user_id, chat_id, language, now),
                    )
                )
                await conn.execute(
                    "INSERT INTO consent_receipts"
                    " (member_id, consent_version, language, agreed_to, agreed_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (member_id, consent_version, language, json.dumps(list(agreed_to)), now),
                )
            else:
                member_id = existing["id"]
            if project_id is not None:
                await conn.execute(
                    "INSERT INTO member_projects (member_id, project_id, joined_at)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                    (member_id, project_id, now),
                )
        member = await self.get(int(member_id))
        assert member is not None
        return member

    async def join_project(self, member_id: int, project_id: int) -> bool:
        """Adds the member to a project; False if they were in it already."""
        changed = await self._db.execute(
            "INSERT INTO member_projects (member_id, project_id, joined_at)"
            " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (member_id, project_id, to_db(self._now())),
        )
        return changed > 0

    async def projects_of(self, member_id: int) -> list[Project]:
        """Lists the projects a member joined."""
        rows = await self._db.fetch_all(
            "SELECT p.* FROM projects p JOIN member_projects mp ON mp.project_id = p.id"
            " WHERE mp.member_id = ? ORDER BY mp.joined_at, p.id",
            (member_id,),
        )
        return [_project(r) for r in rows]

    async def set_language(self, member_id: int, language: str) -> None:
        """Stores the language the member reads."""
        await self._db.execute(
            "UPDATE members SET language = ? WHERE id = ?", (language, member_id)
        )

    async def set_display_name(self, member_id: int, name: str | None) -> None:
        """Names the member (their first name) or makes them anonymous (None)."""
        await self._db.execute(
            "UPDATE members SET display_name = ? WHERE id = ?", (name, member_id)
        )

    async def mark_onboarded(self, member_id: int) -> None:
        """Records that the member reached the menu."""
        await self._db.execute(
            "UPDATE members SET onboarded_at = COALESCE(onboarded_at, ?) WHERE id = ?",
            (to_db(self._now()), member_id),
        )

    async def set_stopped(self, member_id: int, stopped: bool) -> None:
        """/stop sets it; /resume clears it, and brings back a member marked unreachable."""
        if stopped:
            sql = "UPDATE members SET stopped_at = ? WHERE id = ?"
            await self._db.execute(sql, (to_db(self._now()), member_id))
        else:
            sql = "UPDATE members SET stopped_at = NULL, unreachable_at = NULL WHERE id = ?"
            await self._db.execute(sql, (member_id,))

    async def mark_reachable(self, telegram_user_id: int) -> bool:
        """A member wrote to the bot, so they have unblocked it; True if they were unreachable."""
        # Read first: most members are reachable, and a read starts no write transaction.
        # It is the read every update's flows make (by_telegram_id), made once per update.
        member = await self.by_telegram_id(telegram_user_id)
        if member is None or member.unreachable_at is None:
            return False
        changed = await self._db.execute(
            "UPDATE members SET unreachable_at = NULL"
            " WHERE telegram_user_id = ? AND unreachable_at IS NOT NULL",
            (telegram_user_id,),
        )
        return changed > 0

    async def erase(self, member_id: int) -> None:
        """Deletes everything about a member; their consent receipt is closed and unlinked.

        Their words go from the outbox too, wherever they were queued, and from the WAL file
        (a checkpoint; secure_delete has zeroed the freed space). The audit log keeps only
        that an erasure happened.
        """
        now = to_db(self._now())
        async with self._db.transaction() as conn:
            row = await conn.fetch_one(
                "SELECT telegram_user_id, chat_id FROM members WHERE id = ?", (member_id,)
            )
            if row is None:
                return
            user_id = row["telegram_user_id"]
            await Outbox.forget_member(conn, member_id, row["chat_id"])
            # A name never shown needs no reserving (a placeholder from migration 6); a name
            # that was shown stays reserved, unlinked by ON DELETE SET NULL.
            await conn.execute(
                "DELETE FROM pseudonyms WHERE member_id = ? AND name LIKE 'legacy:%'",
                (member_id,),
            )
            await conn.execute(
                "UPDATE consent_receipts SET withdrawn_at = ?"
                " WHERE member_id = ? AND withdrawn_at IS NULL",
                (now, member_id),
            )
            # Cascades to about_you and member_projects; unlinks consent_receipts.
            await conn.execute("DELETE FROM members WHERE id = ?", (member_id,))
            await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            await Sms.forget(conn, row["chat_id"])  # an SMS member's number, and its texts
            await conn.execute(
                "INSERT INTO audit_log (at, actor, action) VALUES (?, 'member', 'erasure')",
                (now,),
            )
        await self._db.checkpoint()

    async def exists(self, telegram_user_id: int) -> bool:
        """Whether this Telegram user has joined (agreed to what is kept)."""
        row = await self._db.fetch_one(
            "SELECT 1 FROM members WHERE telegram_user_id = ?", (telegram_user_id,)
        )
        return row is not None

    async def count(self) -> int:
        """How many members there are."""
        row = await self._db.fetch_one("SELECT COUNT(*) AS n FROM members")
        return int(row["n"]) if row else 0


class Consent:
    """Consent receipts: which version of the consent text a member agreed to, and when."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def current(self, member_id: int) -> ConsentReceipt | None:
        """The member's open receipt, if any."""
        row = await self._db.fetch_one(
            "SELECT * FROM consent_receipts WHERE member_id = ? AND withdrawn_at IS NULL"
            " ORDER BY id DESC LIMIT 1",
            (member_id,),
        )
        return _receipt(row) if row else None

    async def all(self) -> list[ConsentReceipt]:
        """Every receipt, open or closed."""
        rows = await self._db.fetch_all("SELECT * FROM consent_receipts ORDER BY id")
        return [_receipt(r) for r in rows]


class AboutYou:
    """Optional answers used only to see who is missing. A skipped question has no row."""

    def __init__(self, db: Database, now: Now) -> None:
        self._db, self._now = db, now

    async def answer(self, member_id: int, field: str, answer: str) -> None:
        """Stores (or replaces) the member's answer for one field."""
        await self._db.execute(
            "INSERT INTO about_you (member_id, field, answer, answered_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (member_id, field) DO UPDATE"
            " SET answer = excluded.answer, answered_at = excluded.answered_at",
            (member_id, field, answer, to_db(self._now())),
        )

    async def of(self, member_id: int) -> dict[str, str]:
        """The member's answers by field."""
        rows = await self._db.fetch_all(
            "SELECT field, answer FROM about_you WHERE member_id = ?", (member_id,)
        )
        return {r["field"]: r["answer"] for r in rows}
