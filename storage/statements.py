"""What members may be shown and weigh: ideas their authors chose to share, once a facilitator
approved them, and facilitators' own statements. Table: statements (read with submissions,
submission_parts, media and safeguarding_flags).

A member's idea gets a row only if its author chose to share it ('anonymous' or 'named'); it
waits ('waiting') until a facilitator approves it (perhaps edited: `edited` = 1) or declines
it. An idea with no words of its own (a voice note) is summarised by a facilitator first
('summary'); its author says yes ('approved') or no (back to 'waiting', the summary dropped,
so a facilitator can write it again or decline it). An item with a safeguarding flag is never
offered and cannot be approved. A facilitator's own statement has no submission, is 'team'
and is approved at once.

`text` is what other members are shown: for a text idea approved as it is, the words of its
idea part (storage/kinds.IDEA's first part). Every change is one conditional UPDATE, so a
second press or a replayed update changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from storage import kinds
from storage.db import Database, Row, new_id
from storage.questions import IN_FLIGHT
from storage.times import from_db, to_db

Visibility = Literal["anonymous", "named", "team"]
SHARED: tuple[Visibility, ...] = ("anonymous", "named")
IDEA_PART = kinds.IDEA.parts[0]  # the part whose words other members are shown
SUMMARY_BATCH = "summary"  # outbox batch kind: asking an author about a summary of their idea

# Not flagged: no safeguarding flag on the statement's submission (any of its parts).
_NOT_FLAGGED = (
    "NOT EXISTS (SELECT 1 FROM safeguarding_flags f WHERE f.submission_id = s.submission_id)"
)


@dataclass(frozen=True)
class Statement:
    """One row of statements."""

    id: int
    project_id: int | None
    submission_id: int | None
    visibility: str  # 'anonymous' | 'named' | 'team'
    state: str  # 'waiting' | 'summary' | 'approved' | 'declined'
    text: str | None
    edited: bool
    decided_by: int | None
    decided_at: datetime | None
    created_by: int | None
    created_at: datetime
    votes: int


@dataclass(frozen=True)
class Waiting:
    """A shared idea waiting for a facilitator, with what they need to decide."""

    statement: Statement
    member_id: int
    idea: str | None  # the words of its idea part (None: a voice note or photo only)
    who_it_helps: str | None
    media_kinds: tuple[str, ...]  # files sent as the idea part ('voice', 'photo' …)
    media_file_ids: tuple[str, ...]  # their Telegram file ids, to show them to staff
    seconds: int  # the length of its voice notes

    @property
    def needs_summary(self) -> bool:
        """No words of its own: a facilitator writes a summary, its author approves it."""
        return not self.idea


def _statement(row: Row) -> Statement:
    return Statement(
        id=row["id"],
        project_id=row["project_id"],
        submission_id=row["submission_id"],
        visibility=row["visibility"],
        state=row["state"],
        text=row["text"],
        edited=bool(row["edited"]),
        decided_by=row["decided_by"],
        decided_at=from_db(row["decided_at"]),
        created_by=row["created_by"],
        created_at=from_db(row["created_at"]),
        votes=int(row["votes"]),
    )


class Statements:
    """Shared ideas and facilitators' statements, and the steps to approve them."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self._db, self._now = db, now

    async def get(self, statement_id: int) -> Statement | None:
        """A statement by id."""
        row = await self._db.fetch_one("SELECT * FROM statements WHERE id = ?", (statement_id,))
        return _statement(row) if row else None

    async def of_submission(self, submission_id: int) -> Statement | None:
        """The statement of a member's idea, if its author chose to share it."""
        row = await self._db.fetch_one(
            "SELECT * FROM statements WHERE submission_id = ?", (submission_id,)
        )
        return _statement(row) if row else None

    async def share(self, submission_id: int, visibility: Visibility) -> Statement | None:
        """Records that an idea's author lets other members see it (once a facilitator
        approved it): a 'waiting' row. Only for a saved idea; a second call changes nothing.
        None if the submission is not a saved idea, or `visibility` is not a sharing one."""
        if visibility not in SHARED:
            raise ValueError(f"{visibility!r} does not share an idea")
        await self._db.execute(
            "INSERT INTO statements (project_id, submission_id, visibility, created_at)"
            " SELECT project_id, id, ?, ? FROM submissions"
            " WHERE id = ? AND kind = ? AND status = 'submitted'"
            " ON CONFLICT (submission_id) DO NOTHING",
            (visibility, to_db(self._now()), submission_id, kinds.IDEA.key),
        )
        return await self.of_submission(submission_id)

    async def add_own(self, text: str, created_by: int, project_id: int | None = None) -> Statement:
        """A facilitator's own statement: shown to members at once (approved, 'team')."""
        now = to_db(self._now())
        async with self._db.transaction() as conn:
            statement_id = new_id(
                await conn.fetch_one(
                    "INSERT INTO statements (project_id, visibility, state, text, decided_by,"
                    " decided_at, created_by, created_at)"
                    " VALUES (?, 'team', 'approved', ?, ?, ?, ?, ?) RETURNING id",
                    (project_id, text, created_by, now, created_by, now),
                )
            )
        made = await self.get(statement_id)
        assert made is not None
        return made

    async def waiting(self, after: int = 0, limit: int = 1) -> list[Waiting]:
        """Shared ideas waiting for a facilitator, oldest first, from the one after `after`.
        An idea with a safeguarding flag is never among them."""
        rows = await self._db.fetch_all(
            "SELECT s.*, sub.member_id,"
            " (SELECT text FROM submission_parts p WHERE p.submission_id = s.submission_id"
            "  AND p.part = ?) AS idea,"
            " (SELECT text FROM submission_parts p WHERE p.submission_id = s.submission_id"
            "  AND p.part = ?) AS who_it_helps"
            " FROM statements s JOIN submissions sub ON sub.id = s.submission_id"
            f" WHERE s.state = 'waiting' AND s.id > ? AND {_NOT_FLAGGED}"
            " ORDER BY s.id LIMIT ?",
            (IDEA_PART, kinds.IDEA.parts[1], after, limit),
        )
        found = []
        for row in rows:
            media = await self._db.fetch_all(
                "SELECT kind, telegram_file_id, duration FROM media"
                " WHERE submission_id = ? AND part = ? ORDER BY id",
                (row["submission_id"], IDEA_PART),
            )
            idea = row["idea"].strip() if row["idea"] else None
            found.append(
                Waiting(
                    statement=_statement(row),
                    member_id=int(row["member_id"]),
                    idea=idea or None,
                    who_it_helps=row["who_it_helps"],
                    media_kinds=tuple(str(m["kind"]) for m in media),
                    media_file_ids=tuple(str(m["telegram_file_id"]) for m in media),
                    seconds=sum(int(m["duration"] or 0) for m in media),
                )
            )
        return found

    async def next_waiting(self, after: int = 0) -> Waiting | None:
        """The next idea waiting after `after`; from the first again when none is after it."""
        found = await self.waiting(after) or (await self.waiting() if after else [])
        return found[0] if found else None

    async def count_waiting(self) -> int:
        """How many shared ideas wait for a facilitator (flagged ones not counted)."""
        row = await self._db.fetch_one(
            f"SELECT COUNT(*) AS n FROM statements s WHERE s.state = 'waiting' AND {_NOT_FLAGGED}"
            " AND s.submission_id IS NOT NULL"
        )
        return int(row["n"]) if row else 0

    async def find_waiting(self, statement_id: int) -> Waiting | None:
        """One waiting idea by id; None if it is decided, flagged or gone."""
        found = await self.waiting(statement_id - 1)
        return found[0] if found and found[0].statement.id == statement_id else None

    async def approve(
        self, statement_id: int, decided_by: int, text: str | None = None
    ) -> Statement | None:
        """Approves a waiting idea: as its author wrote it (the idea part's words), or with
        `text` (edited). None if it is not waiting, is flagged, or has no words to show."""
        own = ""
        if text is None:
            row = await self._db.fetch_one(
                "SELECT p.text FROM statements s JOIN submission_parts p"
                " ON p.submission_id = s.submission_id AND p.part = ? WHERE s.id = ?",
                (IDEA_PART, statement_id),
            )
            own = str(row["text"]).strip() if row and row["text"] else ""
            if not own:
                return None  # nothing in words to show: it needs a summary
        changed = await self._db.execute(
            "UPDATE statements AS s SET state = 'approved', decided_by = ?, decided_at = ?,"
            " edited = ?, text = ? WHERE s.id = ? AND s.state = 'waiting'"
            f" AND s.submission_id IS NOT NULL AND {_NOT_FLAGGED}",
            (decided_by, to_db(self._now()), int(text is not None), text or own, statement_id),
        )
        return await self.get(statement_id) if changed else None

    async def decline(self, statement_id: int, decided_by: int) -> Statement | None:
        """Declines a waiting idea (or one whose summary waits for its author): other members
        never see it. None if it was not waiting."""
        changed = await self._db.execute(
            "UPDATE statements SET state = 'declined', decided_by = ?, decided_at = ?"
            " WHERE id = ? AND state IN ('waiting', 'summary') AND submission_id IS NOT NULL",
            (decided_by, to_db(self._now()), statement_id),
        )
        return await self.get(statement_id) if changed else None

    async def summarise(self, statement_id: int, decided_by: int, text: str) -> Statement | None:
        """A facilitator's summary of a waiting idea, for its author to approve ('summary').
        None if it is not waiting or is flagged."""
        changed = await self._db.execute(
            "UPDATE statements AS s SET state = 'summary', text = ?, edited = 1,"
            f" decided_by = ?, decided_at = ? WHERE s.id = ? AND s.state = 'waiting'"
            f" AND s.submission_id IS NOT NULL AND {_NOT_FLAGGED}",
            (text, decided_by, to_db(self._now()), statement_id),
        )
        return await self.get(statement_id) if changed else None

    async def answer_summary(
        self, statement_id: int, member_id: int, *, agree: bool
    ) -> Statement | None:
        """The author says yes (approved: members may see the summary) or no (back to
        waiting, the summary dropped). None if it is not their idea or no summary waits."""
        if agree:
            sql = "UPDATE statements AS s SET state = 'approved', decided_at = ?"
        else:
            sql = (
                "UPDATE statements AS s SET state = 'waiting', text = NULL, edited = 0,"
                " decided_by = NULL, decided_at = ?"
            )
        changed = await self._db.execute(
            f"{sql} WHERE s.id = ? AND s.state = 'summary' AND {_NOT_FLAGGED} AND EXISTS"
            " (SELECT 1 FROM submissions sub WHERE sub.id = s.submission_id"
            "  AND sub.member_id = ?)",
            (to_db(self._now()), statement_id, member_id),
        )
        return await self.get(statement_id) if changed else None

    async def summary_asked(self, member_id: int) -> tuple[Statement, int] | None:
        """The newest summary of one of the member's ideas waiting for their yes or no, and
        the id of the message that asked them (None until it was delivered; IN_FLIGHT while
        its row is 'sending')."""
        # A row still 'sending' may have been shown already (the sender records 'sent' and
        # the message id a moment later): it is then the newest thing they were asked.
        row = await self._db.fetch_one(
            "SELECT s.*, (SELECT max(CASE WHEN o.status = 'sending' THEN ?"
            "  ELSE o.telegram_message_id END) FROM outbox o"
            "  JOIN delivery_batches b ON b.id = o.batch_id"
            "  WHERE b.kind = ? AND b.ref_id = s.id AND o.member_id = sub.member_id"
            "  AND o.status IN ('sent', 'sending')) AS asked"
            " FROM statements s JOIN submissions sub ON sub.id = s.submission_id"
            " WHERE sub.member_id = ? AND s.state = 'summary' ORDER BY s.id DESC LIMIT 1",
            (IN_FLIGHT, SUMMARY_BATCH, member_id),
        )
        if row is None or row["asked"] is None:
            return None
        return _statement(row), int(row["asked"])

    async def of_member(self, member_id: int) -> list[Statement]:
        """The statements of a member's shared ideas, oldest first (for /mydata)."""
        rows = await self._db.fetch_all(
            "SELECT s.* FROM statements s JOIN submissions sub ON sub.id = s.submission_id"
            " WHERE sub.member_id = ? ORDER BY s.id",
            (member_id,),
        )
        return [_statement(r) for r in rows]
