"""Counts for /stats: who joined and where they are now, and who took part, by each
"about you" answer. Tables read: members, about_you, submissions, answers.

Only counts leave this module: no member, no answer. Small numbers are hidden where they
are shown (conversations/stats.py), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.db import Database

ABOUT_FIELDS = ("age_band", "area", "extra")
# A member took part once they shared a story or an idea, or answered a question.
_TOOK_PART = (
    "SELECT member_id FROM submissions WHERE status = 'submitted'"
    " UNION SELECT member_id FROM answers"
)


@dataclass(frozen=True)
class Membership:
    """Everyone who joined, each counted once: active, stopped, unreachable or still joining."""

    joined: int
    active: int  # reached the menu; not stopped; Telegram has not said they blocked the bot
    stopped: int  # sent /stop
    unreachable: int  # blocked the bot (and did not /stop)
    joining: int  # agreed, but have not reached the menu yet
    took_part: int


@dataclass(frozen=True)
class Group:
    """Members who gave one "about you" answer (None: gave none), and how many took part."""

    answer: str | None
    joined: int
    took_part: int


class Stats:
    """Counts of members and of who took part."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def membership(self) -> Membership:
        """How many joined, and where they are now."""
        row = await self._db.fetch_one(
            "SELECT COUNT(*) AS joined,"
            " COALESCE(SUM(stopped_at IS NULL AND unreachable_at IS NULL"
            "  AND onboarded_at IS NOT NULL), 0) AS active,"
            " COALESCE(SUM(stopped_at IS NOT NULL), 0) AS stopped,"
            " COALESCE(SUM(stopped_at IS NULL AND unreachable_at IS NOT NULL), 0) AS unreachable,"
            " COALESCE(SUM(stopped_at IS NULL AND unreachable_at IS NULL"
            "  AND onboarded_at IS NULL), 0) AS joining,"
            f" (SELECT COUNT(*) FROM ({_TOOK_PART})) AS took_part"
            " FROM members"
        )
        assert row is not None
        return Membership(
            joined=int(row["joined"]),
            active=int(row["active"]),
            stopped=int(row["stopped"]),
            unreachable=int(row["unreachable"]),
            joining=int(row["joining"]),
            took_part=int(row["took_part"]),
        )

    async def by_answer(self, field: str) -> list[Group]:
        """Everyone who joined, grouped by their answer to one "about you" question (typed
        answers that differ only in case are one group); the largest groups first, and those
        who gave no answer last."""
        rows = await self._db.fetch_all(
            "SELECT MIN(ay.answer) AS answer, COUNT(*) AS joined, COUNT(tp.member_id) AS took_part"
            " FROM members m"
            " LEFT JOIN about_you ay ON ay.member_id = m.id AND ay.field = ?"
            f" LEFT JOIN ({_TOOK_PART}) tp ON tp.member_id = m.id"
            " GROUP BY lower(ay.answer)"
            " ORDER BY MIN(ay.answer) IS NULL, COUNT(*) DESC, MIN(ay.answer)",
            (field,),
        )
        return [
            Group(answer=r["answer"], joined=int(r["joined"]), took_part=int(r["took_part"]))
            for r in rows
        ]
