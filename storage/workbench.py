"""Counts for the workbench's overview, and a cheap sign that something changed.

Tables read: members, submissions, answers, safeguarding_flags. Only counts leave this
module. Who took part by "about you" group is storage/stats.py's (the same as /stats).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Database
from storage.kinds import IDEA, STORY
from storage.times import to_db


@dataclass(frozen=True)
class Counters:
    """The overview's live counters, read at one moment."""

    members: int
    joined_since: int  # joined at or after the time asked about
    stories: int
    ideas: int
    answers: int
    flagged_waiting: int  # safeguarding flags no one has followed up yet


class WorkbenchCounts:
    """Reads the overview's counters."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def counters(self, since: datetime) -> Counters:
        """Every counter, in one statement (so of one moment)."""
        row = await self._db.fetch_one(
            "SELECT"
            " (SELECT COUNT(*) FROM members) AS members,"
            " (SELECT COUNT(*) FROM members WHERE joined_at >= ?) AS joined_since,"
            " (SELECT COUNT(*) FROM submissions WHERE status = 'submitted' AND kind = ?)"
            "  AS stories,"
            " (SELECT COUNT(*) FROM submissions WHERE status = 'submitted' AND kind = ?)"
            "  AS ideas,"
            " (SELECT COUNT(*) FROM answers) AS answers,"
            " (SELECT COUNT(*) FROM safeguarding_flags WHERE followed_up_at IS NULL)"
            "  AS flagged_waiting",
            (to_db(since), STORY.key, IDEA.key),
        )
        assert row is not None
        return Counters(**{name: int(row[name]) for name in row.keys()})

    async def changes(self) -> int:
        """How many rows this process's connection has written since it opened: it moves
        whenever the bot (or the workbench) writes anything, and costs nothing to read.

        One connection writes for the whole process, so this sees every change; several
        processes sharing PostgreSQL will need LISTEN/NOTIFY instead."""
        row = await self._db.fetch_one("SELECT total_changes() AS n")
        assert row is not None
        return int(row["n"])
