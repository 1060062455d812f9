"""Ideas members weigh, as tables beside the responses: votes, statements and the status
history of ideas and question rounds (README, "Exports", "Votes, statements and status").

Each table is read through the export's own read-only snapshot (storage/export_rows.py), a
chunk at a time, under the same filter as the responses: a project, a question (only the
status of its rounds: votes and statements answer no question), and a time (votes by
voted_at, statements by created_at, status changes by changed_at). Members appear only by
their pseudonym (the same as in the responses), staff only by their role; Telegram ids are
never selected. The columns are a contract like COLUMNS: new ones only at the end.
Tables read: votes, statements, status_changes, submissions, question_rounds, questions,
projects, roles, pseudonyms.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from storage.db import Snapshot
from storage.export_rows import ExportFilter, Row
from storage.sharing import Pseudonyms
from storage.times import from_db, to_db

VOTE_COLUMNS: tuple[str, ...] = ("pseudonym", "statement_id", "choice", "voted_at", "changed_at")
STATEMENT_COLUMNS: tuple[str, ...] = (
    "statement_id",
    "project",
    "response_id",
    "text",
    "visibility",
    "state",
    "edited",
    "agree",
    "disagree",
    "unsure",
    "skipped",
    "created_at",
    "decided_at",
)
STATUS_COLUMNS: tuple[str, ...] = (
    "change_id",
    "target",
    "target_id",
    "question_id",
    "status",
    "reason",
    "changed_by",
    "changed_at",
)
STAFF = "staff"  # who changed a status, once they hold no role any more


@dataclass(frozen=True)
class Table:
    """One table of an export: `name` ends its file's name (`answers-votes.csv`), `title`
    names its Excel sheet."""

    name: str
    title: str
    columns: tuple[str, ...]


VOTES = Table("votes", "Votes", VOTE_COLUMNS)
STATEMENTS = Table("statements", "Statements", STATEMENT_COLUMNS)
STATUS = Table("status", "Status history", STATUS_COLUMNS)
TABLES = (VOTES, STATEMENTS, STATUS)


def _bounds(sql: str, params: list[Any], column: str, flt: ExportFilter) -> str:
    if flt.since is not None:
        sql += f" AND {column} >= ?"
        params.append(to_db(flt.since))
    if flt.until is not None:
        sql += f" AND {column} < ?"
        params.append(to_db(flt.until))
    return sql


def _where(table: Table, flt: ExportFilter) -> tuple[str, list[Any]] | None:
    """The FROM and WHERE of a table's rows (None: nothing of it matches the filter)."""
    params: list[Any] = []
    if table is VOTES:
        if flt.question_id is not None:
            return None
        sql = (
            " FROM votes v JOIN statements st ON st.id = v.statement_id"
            " LEFT JOIN projects p ON p.id = st.project_id WHERE 1 = 1"
        )
        if flt.project is not None:
            sql += " AND p.code = ?"
            params.append(flt.project)
        return _bounds(sql, params, "v.voted_at", flt), params
    if table is STATEMENTS:
        if flt.question_id is not None:
            return None
        sql = " FROM statements st LEFT JOIN projects p ON p.id = st.project_id WHERE 1 = 1"
        if flt.project is not None:
            sql += " AND p.code = ?"
            params.append(flt.project)
        return _bounds(sql, params, "st.created_at", flt), params
    sql = (
        " FROM status_changes c"
        " LEFT JOIN submissions s ON s.id = c.submission_id"
        " LEFT JOIN statements st ON st.id = c.statement_id"
        " LEFT JOIN question_rounds r ON r.id = c.round_id"
        " LEFT JOIN questions q ON q.id = r.question_id"
        " LEFT JOIN projects p ON p.id = coalesce(s.project_id, st.project_id) WHERE 1 = 1"
    )
    if flt.question_id is not None:
        sql += " AND r.question_id = ?"
        params.append(flt.question_id)
    if flt.project is not None:
        sql += " AND (p.code = ? OR lower(q.audience) = lower(?))"
        params += [flt.project, f"project:{flt.project}"]
    return _bounds(sql, params, "c.changed_at", flt), params


_SELECT = {
    "votes": "SELECT v.member_id, v.statement_id, v.choice, v.voted_at, v.changed_at",
    "statements": (
        "SELECT st.id, p.code, st.submission_id, st.text, st.visibility, st.state, st.edited,"
        + ", ".join(
            f" (SELECT COUNT(*) FROM votes WHERE statement_id = st.id AND choice = '{c}')"
            for c in ("agree", "disagree", "unsure", "skip")
        )
        + ", st.created_at, st.decided_at"
    ),
    "status": (
        "SELECT c.id, c.submission_id, c.statement_id, c.round_id, r.question_id, c.status,"
        " c.reason, (SELECT role FROM roles WHERE telegram_user_id = c.changed_by),"
        " c.changed_at"
    ),
}
_ORDER = {
    "votes": " ORDER BY v.voted_at, v.statement_id, v.member_id",
    "statements": " ORDER BY st.id",
    "status": " ORDER BY c.id",
}


def _when(stored: str | None, tz: tzinfo) -> datetime | None:
    return from_db(stored).astimezone(tz) if stored else None


class IdeaTables:
    """The three tables, read through one export's snapshot connection."""

    def __init__(self, snapshot: Snapshot, pseudonyms: Pseudonyms) -> None:
        self._snapshot, self._pseudonyms = snapshot, pseudonyms

    async def count(self, table: Table, flt: ExportFilter) -> int:
        """How many rows of the table match."""
        where = _where(table, flt)
        if where is None:
            return 0
        found = await self._snapshot.fetch_all("SELECT COUNT(*)" + where[0], where[1])
        return int(found[0][0]) if found else 0

    async def chunks(
        self, table: Table, flt: ExportFilter, tz: tzinfo
    ) -> AsyncGenerator[list[Row], None]:
        """The table's matching rows, a chunk at a time, as values of its columns."""
        where = _where(table, flt)
        if where is None:
            return
        sql = _SELECT[table.name] + where[0] + _ORDER[table.name]
        async with aclosing(self._snapshot.stream(sql, where[1])) as batches:
            async for batch in batches:
                yield await self._rows(table, batch, tz)

    async def _rows(self, table: Table, batch: list[Any], tz: tzinfo) -> list[Row]:
        if table is VOTES:
            names = await self._pseudonyms.of_many(r[0] for r in batch)
            return [
                (names[member], statement, choice, _when(voted, tz), _when(changed, tz))
                for member, statement, choice, voted, changed in batch
            ]
        if table is STATEMENTS:
            return [
                (
                    _id,
                    project,
                    f"S-{submission}" if submission is not None else None,
                    text,
                    visibility,
                    state,
                    bool(edited),
                    agree,
                    disagree,
                    unsure,
                    skipped,
                    _when(created, tz),
                    _when(decided, tz),
                )
                for (
                    _id,
                    project,
                    submission,
                    text,
                    visibility,
                    state,
                    edited,
                    agree,
                    disagree,
                    unsure,
                    skipped,
                    created,
                    decided,
                ) in batch
            ]
        rows: list[Row] = []
        for _id, submission, statement, round_, question, status, reason, role, at in batch:
            if submission is not None:
                target, target_id = "idea", f"S-{submission}"
            elif statement is not None:
                target, target_id = "statement", str(statement)
            else:
                target, target_id = "round", str(round_)
            rows.append(
                (_id, target, target_id, question, status, reason, role or STAFF, _when(at, tz))
            )
        return rows
