"""What the workbench's Questions page reads: each round that went out, how many it was sent
to, delivered to and answered by, the answers per option, and the open answers
(bot/web/pages/questions.py). Read on the workbench's own read-only connection.

Tables read: questions, question_rounds, outbox (a round's batch), answers, media.
Counts leave this module as they are; the page hides small ones (storage/suppression.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from storage.db import Database
from storage.dialect import ids_from_json
from storage.search import File, file_of
from storage.times import from_db


@dataclass(frozen=True)
class RoundFigures:
    """One round of a question, and what came of it."""

    round_id: int
    question_id: int
    text: str
    kind: str  # open, choice, scale, yesno
    options: tuple[str, ...]  # a choice question's labels
    sent_at: datetime | None
    sent: int  # members it was queued for (not those skipped: stopped or unreachable)
    delivered: int  # Telegram took the message
    answered: int
    per_choice: dict[str, int]  # stored choice (option number, scale value, yes/no) → answers


@dataclass(frozen=True)
class OpenAnswer:
    id: int
    member_id: int
    text: str | None
    answered_at: datetime
    files: tuple[File, ...]
    replies: int  # replies the team sent to it already


class Rounds:
    """Question rounds and their answers, for the Questions page."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def sent(self, offset: int = 0, limit: int = 10) -> list[RoundFigures]:
        """Rounds that went out, newest first, a page at a time."""
        rows = await self._db.fetch_all(
            "SELECT r.id FROM question_rounds r WHERE r.status = 'sent'"
            " ORDER BY r.sent_at DESC, r.id DESC LIMIT ? OFFSET ?",
            (limit, offset),
        )
        found = [await self.get(int(r["id"])) for r in rows]
        return [f for f in found if f is not None]

    async def get(self, round_id: int) -> RoundFigures | None:
        """One round that went out, with its counts."""
        row = await self._db.fetch_one(
            "SELECT r.id, r.question_id, r.sent_at, r.batch_id, q.text, q.kind, q.options"
            " FROM question_rounds r JOIN questions q ON q.id = r.question_id"
            " WHERE r.id = ? AND r.status = 'sent'",
            (round_id,),
        )
        if row is None:
            return None
        outbox = await self._db.fetch_all(
            "SELECT status, COUNT(*) AS n FROM outbox WHERE batch_id = ? GROUP BY status",
            (row["batch_id"],),
        )
        by_status = {str(r["status"]): int(r["n"]) for r in outbox}
        choices = await self._db.fetch_all(
            "SELECT choice, COUNT(*) AS n FROM answers WHERE round_id = ? GROUP BY choice",
            (round_id,),
        )
        return RoundFigures(
            round_id=int(row["id"]),
            question_id=int(row["question_id"]),
            text=str(row["text"]),
            kind=str(row["kind"]),
            options=tuple(str(o) for o in json.loads(row["options"] or "[]")),
            sent_at=from_db(row["sent_at"]),
            sent=sum(n for status, n in by_status.items() if status != "skipped"),
            delivered=by_status.get("sent", 0),
            answered=sum(int(r["n"]) for r in choices),
            per_choice={str(r["choice"]): int(r["n"]) for r in choices if r["choice"] is not None},
        )

    async def open_answers(
        self, round_id: int, offset: int = 0, limit: int = 20
    ) -> list[OpenAnswer]:
        """Answers in words (or a voice note) to a round, newest first."""
        rows = await self._db.fetch_all(
            "SELECT a.id, a.member_id, a.text, a.answered_at,"
            " (SELECT COUNT(*) FROM replies p WHERE p.answer_id = a.id) AS replies"
            " FROM answers a WHERE a.round_id = ?"
            " AND (a.text IS NOT NULL OR EXISTS (SELECT 1 FROM media m WHERE m.answer_id = a.id))"
            " ORDER BY a.updated_at DESC, a.id DESC LIMIT ? OFFSET ?",
            (round_id, limit, offset),
        )
        files: dict[int, list[File]] = {}
        if rows:
            media = await self._db.fetch_all(
                "SELECT id, answer_id, kind, mime_type, duration FROM media"
                f" WHERE answer_id IN {ids_from_json(self._db)} ORDER BY id",
                (json.dumps([int(r["id"]) for r in rows]),),
            )
            for m in media:
                files.setdefault(int(m["answer_id"]), []).append(file_of(m))
        return [
            OpenAnswer(
                id=int(r["id"]),
                member_id=int(r["member_id"]),
                text=r["text"],
                answered_at=from_db(str(r["answered_at"])),
                files=tuple(files.get(int(r["id"]), ())),
                replies=int(r["replies"]),
            )
            for r in rows
        ]
