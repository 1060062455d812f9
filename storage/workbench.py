"""What the workbench's overview reads, on a connection of its own (`Reader`).

Tables read: members, submissions, answers, safeguarding_flags, about_you (through
storage/stats.py, the same reading as /stats). Only counts leave this module.

The overview is read again whenever the database changes, and with many members a reading
takes a while (100,000 members and 1,000,000 answers: about 50 ms for the counters, 0.3 s
for who takes part). On the bot's own connection every update would wait meanwhile; so the
workbench reads on a second connection, which in WAL mode reads beside the bot's writes and
never holds the bot's lock. It is read-only (`query_only`), and its `PRAGMA data_version`
moves whenever another connection commits: a free way to learn that something changed.
PostgreSQL's readers never hold up its writers: the reader shares the bot's pool, and its
change mark is a fingerprint of which transactions have ended (storage/pg_db.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Database
from storage.kinds import IDEA, STORY
from storage.round_figures import Rounds
from storage.search import Library
from storage.stats import Stats
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


class Reader:
    """A read-only connection to the bot's database, for the workbench's figures."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.stats = Stats(db)
        self.library = Library(db)  # the reader's stories and ideas (storage/search.py)
        self.rounds = Rounds(db)  # the Questions page (storage/round_figures.py)

    @classmethod
    async def open(cls, db: Database) -> Reader:
        """Opens a read-only connection of its own to the bot's database (already migrated)."""
        return cls(await db.open_reader())

    async def close(self) -> None:
        await self._db.close()

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
        """A number that moves whenever another connection (the bot) has committed."""
        return await self._db.change_mark()
