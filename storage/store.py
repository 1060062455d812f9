"""The Store: one open database and the repositories on it, handed to the bot at start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from storage.answers import Answers
from storage.audit import AuditLog
from storage.broadcasts import Broadcasts
from storage.coordination import Coordination, OneProcess, Shared
from storage.db import Database
from storage.export import Responses
from storage.inbox import Inbox
from storage.members import AboutYou, Consent, Members, Projects
from storage.outbox import Outbox
from storage.pg_db import PostgresDatabase
from storage.questions import Questions
from storage.replies import Replies
from storage.retention import Retention
from storage.roles import Roles
from storage.safeguarding import Safeguarding
from storage.search import forget_deleted
from storage.sessions import Sessions
from storage.sharing import Pseudonyms, Sharing
from storage.sms import Sms
from storage.sqlite_db import SqliteDatabase, path_from_url
from storage.statements import Statements
from storage.stats import Stats
from storage.themes import Themes
from storage.tracker import Tracker
from storage.votes import Votes
from storage.web_sessions import WebSessions


def is_postgres(url: str) -> bool:
    """Whether a DATABASE_URL names PostgreSQL (else SQLite)."""
    return url.startswith(("postgresql://", "postgres://"))


async def open_database(url: str) -> Database:
    """Opens (and migrates) the database a DATABASE_URL names: `sqlite:///path` or
    `postgresql://…`."""
    if is_postgres(url):
        return await PostgresDatabase.open(url)
    return await SqliteDatabase.open(path_from_url(url))


class Store:
    """Every repository, sharing one connection. Open with `await Store.open(...)`."""

    def __init__(
        self,
        db: Database,
        now: Callable[[], datetime],
        coordination: Coordination | None = None,
    ) -> None:
        self.db = db
        # What the processes sharing the database agree on (storage/coordination.py).
        self.coordination = coordination or OneProcess()
        process = self.coordination.process
        self.members = Members(db, now)
        self.projects = Projects(db, now)
        self.consent = Consent(db, now)
        self.about = AboutYou(db, now)
        self.inbox = Inbox(db, now, process)
        db.before_checkpoint.append(self.inbox.flush)  # done-marks clear members' words
        db.before_checkpoint.append(partial(forget_deleted, db))  # erased words, from search
        self.audit = AuditLog(db, now)
        self.outbox = Outbox(db, now, process)
        self.sessions = Sessions(db, now)
        self.sharing = Sharing(db, now)
        self.statements = Statements(db, now)
        self.questions = Questions(db, now)
        self.answers = Answers(db, now)
        self.broadcasts = Broadcasts(db, now)
        self.replies = Replies(db, now)
        self.pseudonyms = Pseudonyms(db)
        self.roles = Roles(db, now)
        self.responses = Responses(db, self.pseudonyms, self.audit)
        self.stats = Stats(db)
        self.votes = Votes(db, now)
        self.retention = Retention(db, self.outbox)
        self.tracker = Tracker(db, now)
        self.web_sessions = WebSessions(db, now)  # signing in to the workbench (bot/web/)
        self.safeguarding = Safeguarding(db, now)  # the flags staff work through
        self.themes = Themes(db, now)  # themes staff give to what members said
        self.sms = Sms(db, now)  # SMS members' numbers and texts (bot/sms.py)

    @classmethod
    async def open(cls, path: Path, now: Callable[[], datetime]) -> Store:
        """Opens and migrates the SQLite database at a path."""
        return cls(await SqliteDatabase.open(path), now)

    @classmethod
    async def open_url(cls, url: str, now: Callable[[], datetime]) -> Store:
        """Opens (and migrates) the database a DATABASE_URL names: SQLite or PostgreSQL.
        With PostgreSQL, this process also joins the others sharing it (its locks)."""
        db = await open_database(url)
        if not isinstance(db, PostgresDatabase):
            return cls(db, now)
        try:
            coordination = await Shared.connect(url, db.pool)
        except BaseException:
            await db.close()
            raise
        return cls(db, now, coordination)

    async def forget_contact(self, chat_id: int) -> None:
        """Forgets how to reach someone who is not a member (said "Not now" to joining): an
        SMS number; nothing is kept for a Telegram chat."""
        await self.sms.forget_unjoined(chat_id)

    async def erase_member(self, member_id: int) -> None:
        """Deletes everything kept about a member (see Members.erase)."""
        await self.members.erase(member_id)

    async def close(self) -> None:
        """Writes what was left for later, and closes the database."""
        await self.inbox.flush()
        await self.db.close()
        await self.coordination.close()
