"""Retention: what is older than RETENTION_DAYS goes, a batch at a time. bot/retention.py is
the daily job that calls it.

A batch deletes submitted stories and ideas (drafts are not responses and stay) and answers,
oldest first; their parts, media rows, flags and replies go with them (ON DELETE CASCADE).
It also empties the text of outbox rows that reached a final status: a sent message may
carry a member's words (an answer back) or words about them. Tables: submissions, answers,
outbox (and, by cascade, submission_parts, media, safeguarding_flags, replies).

Ideas members weigh (issue 12): votes go by voted_at (the triggers keep each statement's
count right). A member's idea takes its statement, that statement's votes and the idea's
status history with it (ON DELETE CASCADE from submissions). A facilitator's own statement
goes by created_at the same way, with its votes and status history: every idea, and all
that was said about it, lives as long as a member's idea would. The status history of
question rounds stays, like the questions (it holds no member's words).
Tables: votes, statements, status_changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from storage import kinds
from storage.db import Database
from storage.dialect import ids_from_json
from storage.outbox import Outbox
from storage.times import to_db


@dataclass(frozen=True)
class Deleted:
    """What retention deleted; `files` are names in MEDIA_DIR to remove. `messages` counts
    outbox rows whose text was emptied. `shared` counts submissions by their kind's plural
    ("stories", "ideas" …, storage/kinds.py)."""

    shared: dict[str, int] = field(default_factory=dict)
    answers: int = 0
    files: tuple[str, ...] = ()
    messages: int = 0
    votes: int = 0  # old enough by voted_at (not those that went with their statement)
    statements: int = 0  # facilitators' own statements (a member's goes with their idea)

    def count(self, plural: str) -> int:
        """How many of one kind were deleted ("stories")."""
        return self.shared.get(plural, 0)

    @property
    def responses(self) -> int:
        return sum(self.shared.values()) + self.answers

    @property
    def anything(self) -> bool:
        return bool(self.responses or self.messages or self.files or self.votes or self.statements)

    def __add__(self, other: Deleted) -> Deleted:
        return Deleted(
            shared={k: self.count(k) + other.count(k) for k in {**self.shared, **other.shared}},
            answers=self.answers + other.answers,
            files=self.files + other.files,
            messages=self.messages + other.messages,
            votes=self.votes + other.votes,
            statements=self.statements + other.statements,
        )


def shared_counts(keys: Iterable[str]) -> dict[str, int]:
    """How many of each kind, by plural, every kind in the list named (a kind no longer in the
    list is counted under its stored key, never left out)."""
    plurals = {k.key: k.plural for k in kinds.all_kinds()}
    counts = dict.fromkeys(plurals.values(), 0)
    for key in keys:
        name = plurals.get(key, key)
        counts[name] = counts.get(name, 0) + 1
    return counts


class Retention:
    """Deletes what is older than a cutoff."""

    def __init__(self, db: Database, outbox: Outbox) -> None:
        self._db, self._outbox = db, outbox

    async def delete_older_than(self, cutoff: datetime, limit: int = 500) -> Deleted:
        """Deletes up to `limit` stories and ideas (submitted before `cutoff`) and `limit`
        answers (first given before it), oldest first, in one unit of work, then empties up
        to `limit` old outbox rows. Call again until it returns nothing (`anything` False)."""
        before = to_db(cutoff)
        ids = ids_from_json(self._db)
        async with self._db.transaction() as conn:
            submissions = [
                (int(r["id"]), str(r["kind"]))
                for r in await conn.fetch_all(
                    "SELECT id, kind FROM submissions WHERE status = 'submitted'"
                    " AND submitted_at < ? ORDER BY id LIMIT ?",
                    (before, limit),
                )
            ]
            answers = [
                int(r["id"])
                for r in await conn.fetch_all(
                    "SELECT id FROM answers WHERE answered_at < ? ORDER BY id LIMIT ?",
                    (before, limit),
                )
            ]
            submission_ids = json.dumps([i for i, _ in submissions])
            answer_ids = json.dumps(answers)
            files = tuple(
                str(r["file_name"])
                for r in await conn.fetch_all(
                    f"SELECT file_name FROM media WHERE submission_id IN {ids}"
                    f" UNION ALL SELECT file_name FROM media WHERE answer_id IN {ids}",
                    (submission_ids, answer_ids),
                )
            )
            await conn.execute(f"DELETE FROM submissions WHERE id IN {ids}", (submission_ids,))
            await conn.execute(f"DELETE FROM answers WHERE id IN {ids}", (answer_ids,))
            votes = await conn.execute(
                "DELETE FROM votes WHERE (member_id, statement_id) IN"
                " (SELECT member_id, statement_id FROM votes WHERE voted_at < ? LIMIT ?)",
                (before, limit),
            )
            statements = await conn.execute(
                "DELETE FROM statements WHERE id IN (SELECT id FROM statements"
                " WHERE submission_id IS NULL AND created_at < ? ORDER BY id LIMIT ?)",
                (before, limit),
            )
        messages = await self._outbox.wipe_text_before(cutoff, limit)
        return Deleted(
            shared=shared_counts(kind for _, kind in submissions),
            answers=len(answers),
            files=files,
            messages=messages,
            votes=votes,
            statements=statements,
        )

    async def checkpoint(self) -> None:
        """Empties the WAL file, so what was deleted is gone from the disk (see Database)."""
        await self._db.checkpoint()
