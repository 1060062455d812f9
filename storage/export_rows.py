"""Responses as rows: which ones (ExportFilter), in what columns (COLUMNS, one Row each), and
how they are read (SQL over one read-only snapshot, a chunk at a time).

A response is a submitted story or idea (drafts are not) or an answer to a question.
Tables read: submissions, submission_parts, media, safeguarding_flags, answers,
question_rounds, questions, members, projects, about_you, item_themes, themes.

An export reads through a read-only connection of its own (`ResponseRows.snapshot`): WAL
gives it one consistent snapshot while the bot keeps writing, and rows are fetched a chunk at
a time, so memory does not grow with the number of rows. The columns are a contract (README,
"Exports"): add new ones at the end; never rename or reorder them. Telegram user ids, chat
ids and usernames are never selected, so no export can contain them. storage/export_files.py
writes the rows out; storage/export.py puts the two together.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from collections.abc import Set as AbstractSet
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from storage import kinds
from storage.db import Database
from storage.db import Snapshot as DbSnapshot
from storage.dialect import ids_from_json, ordered_text_agg
from storage.sharing import Pseudonyms
from storage.times import from_db, to_db

# The columns as first fixed (the contract): the parts of a story and an idea sit after
# "question". A kind added to storage/kinds.py later gets its parts' columns at the end, after
# these (`columns()`), so no column ever moves.
COLUMNS: tuple[str, ...] = (
    "response_id",
    "pseudonym",
    "first_name",
    "kind",
    "project",
    "question_id",
    "question",
    "what_happened",
    "how_it_affected",
    "what_would_help",
    "idea",
    "who_it_helps",
    "answer",
    "choice",
    "choice_label",
    "volunteer",
    "media_files",
    "language",
    "submitted_at",
    "safeguarding_flag",
    "age_band",
    "area",
    "extra",
    "themes",
)
ABOUT = ("age_band", "area", "extra")
MEDIA_COLUMN = COLUMNS.index("media_files")
WHEN_COLUMN = COLUMNS.index("submitted_at")
FLAG_COLUMN = COLUMNS.index("safeguarding_flag")
YES_NO = {"yes": "Yes", "no": "No"}

# One row: the values of COLUMNS in order. Text is str, ids are int, media_files a tuple of
# file names, submitted_at an aware datetime in TIMEZONE, safeguarding_flag a bool.
Row = tuple[Any, ...]


class BadExport(ValueError):
    """What was asked for cannot be exported; the message is one sentence for a person."""


@dataclass(frozen=True)
class ExportFilter:
    """Which responses to export. Bounds are aware datetimes: `since` inclusive, `until` not.

    bot/export_args.py reads one from `cocreate export`'s options."""

    project: str | None = None
    question_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def for_audit(self) -> dict[str, Any]:
        """The filter as the audit log keeps it (only what was set)."""
        values = {
            "project": self.project,
            "question": self.question_id,
            "since": to_db(self.since) if self.since else None,
            "until": to_db(self.until) if self.until else None,
        }
        return {k: v for k, v in values.items() if v is not None}


# ---- the queries

_ABOUT_SQL = ", ".join(
    f"(SELECT answer FROM about_you WHERE member_id = m.id AND field = '{f}') AS {f}" for f in ABOUT
)


def columns() -> tuple[str, ...]:
    """Every column: COLUMNS, then the parts of any kind that COLUMNS does not have yet."""
    return COLUMNS + tuple(p for p in kinds.part_names() if p not in COLUMNS)


def _parts_sql(parts: tuple[str, ...]) -> str:
    """Each part's text as a column of its own (part names come from storage/kinds.py)."""
    return ", ".join(
        f"(SELECT text FROM submission_parts WHERE submission_id = s.id AND part = '{p}')"
        for p in parts
    )


_SUBMISSIONS_FROM = (
    " FROM submissions s LEFT JOIN projects p ON p.id = s.project_id WHERE s.status = 'submitted'"
)


def _themes_sql(db: Database, column: str, item: str) -> str:
    """An item's themes (storage/themes.py), by name, joined with "; " (a name has no ";")."""
    rest = f"FROM item_themes it JOIN themes t ON t.id = it.theme_id WHERE it.{column} = {item}"
    return ordered_text_agg(db, "t.name", "'; '", rest, "t.name") + " AS themes"


def _media_sql(db: Database, column: str, item: str) -> str:
    """An item's files' names, in the order they came, joined with spaces."""
    rest = f"FROM media WHERE {column} = {item}"
    return ordered_text_agg(db, "file_name", "' '", rest, "id") + " AS media"


def _submissions_select(db: Database, parts: tuple[str, ...]) -> str:
    return (
        "SELECT s.id, s.member_id, s.kind, p.code AS project, s.language, s.volunteer,"
        f" s.submitted_at, {_media_sql(db, 'submission_id', 's.id')},"
        " EXISTS (SELECT 1 FROM safeguarding_flags WHERE submission_id = s.id) AS flagged,"
        f" {_themes_sql(db, 'submission_id', 's.id')}, {_parts_sql(parts)}"
    )


_ANSWERS_FROM = (
    " FROM answers a JOIN question_rounds r ON r.id = a.round_id"
    " JOIN questions q ON q.id = r.question_id WHERE 1 = 1"
)


def _answers_select(db: Database) -> str:
    """What is the same on every row of a member or of a question is read once (_Facts)."""
    return (
        "SELECT a.id, a.member_id, a.choice, a.text, a.answered_at, r.question_id,"
        f" {_media_sql(db, 'answer_id', 'a.id')},"
        " EXISTS (SELECT 1 FROM safeguarding_flags WHERE answer_id = a.id) AS flagged,"
        f" {_themes_sql(db, 'answer_id', 'a.id')}"
    )


def _members_select(db: Database) -> str:
    return (
        f"SELECT m.id, m.display_name, m.language, {_ABOUT_SQL}"
        f" FROM members m WHERE m.id IN {ids_from_json(db)}"
    )


def _questions_select(db: Database) -> str:
    return (
        f"SELECT id, text, kind, options, audience FROM questions WHERE id IN {ids_from_json(db)}"
    )


MEMBERS_KEPT = 50_000  # members' facts kept at once (a few hundred bytes each): bounded


def _submissions_where(flt: ExportFilter) -> tuple[str, list[Any]] | None:
    if flt.question_id is not None:
        return None  # stories and ideas answer no question
    sql, params = _SUBMISSIONS_FROM, list[Any]()
    if flt.project is not None:
        sql += " AND p.code = ?"
        params.append(flt.project)
    if flt.since is not None:
        sql += " AND s.submitted_at >= ?"
        params.append(to_db(flt.since))
    if flt.until is not None:
        sql += " AND s.submitted_at < ?"
        params.append(to_db(flt.until))
    return sql, params


def _answers_where(flt: ExportFilter) -> tuple[str, list[Any]]:
    sql, params = _ANSWERS_FROM, list[Any]()
    if flt.project is not None:
        sql += " AND lower(q.audience) = lower(?)"
        params.append(f"project:{flt.project}")
    if flt.question_id is not None:
        sql += " AND q.id = ?"
        params.append(flt.question_id)
    if flt.since is not None:
        sql += " AND a.answered_at >= ?"
        params.append(to_db(flt.since))
    if flt.until is not None:
        sql += " AND a.answered_at < ?"
        params.append(to_db(flt.until))
    return sql, params


Person = tuple[str, str | None, str, str | None, str | None, str | None]
# pseudonym, first_name, language, age_band, area, extra


@dataclass(frozen=True)
class Asked:
    """What an answer's row needs from its question."""

    text: str
    kind: str
    options: tuple[str, ...]
    project: str | None  # the project it was asked of (audience project:<code>), if any

    def label(self, choice: str | None) -> str | None:
        """A choice in words: the option's label, Yes or No, or a scale's number."""
        if choice is None:
            return None
        if self.kind == "yesno":
            return YES_NO.get(choice, choice)
        if self.kind == "choice" and choice.isdigit() and 0 < int(choice) <= len(self.options):
            return self.options[int(choice) - 1]
        return choice  # a scale: the number is its own label


class _Facts:
    """Members' and questions' facts, read a chunk's worth at a time, in the export's snapshot.

    Kept while the export runs (members up to MEMBERS_KEPT, then forgotten and read again),
    so each row fetches only what is its own.
    """

    def __init__(self, db: Database, snapshot: DbSnapshot, pseudonyms: Pseudonyms) -> None:
        self._db, self._snapshot, self._pseudonyms = db, snapshot, pseudonyms
        self.members: dict[int, Person] = {}
        self.questions: dict[int, Asked] = {}

    async def load(
        self, member_ids: AbstractSet[int], question_ids: AbstractSet[int] = frozenset()
    ) -> None:
        """Makes sure every one of these members and questions is known."""
        missing: AbstractSet[int] = member_ids - self.members.keys()
        if len(self.members) + len(missing) > MEMBERS_KEPT:
            self.members.clear()
            missing = member_ids
        if missing:
            found = await self._snapshot.fetch_all(
                _members_select(self._db), (json.dumps(sorted(missing)),)
            )
            pseudonyms = await self._pseudonyms.of_many(r[0] for r in found)
            for member_id, name, language, age_band, area, extra in found:
                pseudonym = pseudonyms[member_id]
                self.members[member_id] = (pseudonym, name, language, age_band, area, extra)
        missing = question_ids - self.questions.keys()
        if missing:
            asked = await self._snapshot.fetch_all(
                _questions_select(self._db), (json.dumps(sorted(missing)),)
            )
            for question_id, text, kind, options, audience in asked:
                scope, _, code = str(audience).partition(":")
                self.questions[question_id] = Asked(
                    text=text,
                    kind=kind,
                    options=tuple(str(x) for x in json.loads(options)),
                    project=code if scope == "project" else None,
                )


# ---- reading


class ResponseRows:
    """Every response as a row of COLUMNS' values, read through a snapshot of its own."""

    def __init__(self, db: Database, pseudonyms: Pseudonyms) -> None:
        self._db, self._pseudonyms = db, pseudonyms

    async def check(self, flt: ExportFilter) -> ExportFilter:
        """The filter with the project's code as stored; BadExport if a project or question
        it names does not exist."""
        project = flt.project
        if project is not None:
            row = await self._db.fetch_one("SELECT code FROM projects WHERE code = ?", (project,))
            if row is None:
                raise BadExport(f"There is no project with the code {project!r}.")
            project = str(row["code"])
        if flt.question_id is not None:
            row = await self._db.fetch_one(
                "SELECT id FROM questions WHERE id = ?", (flt.question_id,)
            )
            if row is None:
                raise BadExport(f"There is no question number {flt.question_id}.")
        return ExportFilter(project, flt.question_id, flt.since, flt.until)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Snapshot]:
        """One snapshot of the database, read-only, until it closes (Database.snapshot)."""
        async with self._db.snapshot() as snapshot:
            yield Snapshot(self._db, snapshot, self._pseudonyms)

    async def rows(self, flt: ExportFilter, tz: tzinfo) -> AsyncIterator[Row]:
        """Every matching response as a row of COLUMNS' values (for tests and small uses)."""
        async with self.snapshot() as snapshot, aclosing(snapshot.chunks(flt, tz)) as chunks:
            async for chunk in chunks:
                for row in chunk:
                    yield row


class Snapshot:
    """One consistent view of the responses, read-only, open while an export runs (`db`:
    the database it is of, for its dialect)."""

    def __init__(self, db: Database, snapshot: DbSnapshot, pseudonyms: Pseudonyms) -> None:
        self._db, self._snapshot, self._pseudonyms = db, snapshot, pseudonyms

    @property
    def reader(self) -> DbSnapshot:
        """The database's snapshot (for the tables beside the responses)."""
        return self._snapshot

    async def count(self, flt: ExportFilter) -> int:
        """How many responses match."""
        total = 0
        submissions = _submissions_where(flt)
        queries = [_answers_where(flt), *([submissions] if submissions else [])]
        for where, params in queries:
            found = await self._snapshot.fetch_all("SELECT COUNT(*)" + where, params)
            total += int(found[0][0]) if found else 0
        return total

    async def chunks(self, flt: ExportFilter, tz: tzinfo) -> AsyncGenerator[list[Row], None]:
        """The matching rows, a chunk at a time: stories and ideas (by response id), then
        answers (by response id)."""
        snapshot = self._snapshot
        facts = _Facts(self._db, snapshot, self._pseudonyms)
        names, parts = columns(), kinds.part_names()
        more = (None,) * (len(names) - len(COLUMNS))  # answers have no part of a later kind
        submissions = _submissions_where(flt)
        if submissions is not None:
            where, params = submissions
            sql = _submissions_select(self._db, parts) + where + " ORDER BY s.id"
            async with aclosing(snapshot.stream(sql, params)) as batches:
                async for batch in batches:
                    await facts.load({r[1] for r in batch})
                    yield [_submission_row(r, facts.members[r[1]], tz, parts, names) for r in batch]
        where, params = _answers_where(flt)
        sql = _answers_select(self._db) + where + " ORDER BY a.id"
        async with aclosing(snapshot.stream(sql, params)) as batches:
            async for batch in batches:
                await facts.load({r[1] for r in batch}, {r[5] for r in batch})
                people, questions = facts.members, facts.questions
                yield [_answer_row(r, people[r[1]], questions[r[5]], tz) + more for r in batch]


def _local(stored: str, tz: tzinfo) -> datetime:
    return from_db(stored).astimezone(tz)


def _submission_row(
    r: tuple[Any, ...], person: Person, tz: tzinfo, parts: tuple[str, ...], names: tuple[str, ...]
) -> Row:
    _id, _, kind, project, language, volunteer, submitted_at, media, flagged, themes = r[:10]
    pseudonym, name, _, age_band, area, extra = person
    values = {
        **dict(zip(parts, r[10:], strict=True)),
        "response_id": f"S-{_id}",
        "pseudonym": pseudonym,
        "first_name": name,
        "kind": kind,
        "project": project,
        "volunteer": volunteer,
        "media_files": tuple(media.split(" ")) if media else (),
        "language": language,
        "submitted_at": _local(submitted_at, tz),
        "safeguarding_flag": bool(flagged),
        "age_band": age_band,
        "area": area,
        "extra": extra,
        "themes": themes,
    }
    return tuple(values.get(column) for column in names)


def _answer_row(r: tuple[Any, ...], person: Person, asked: Asked, tz: tzinfo) -> Row:
    _id, _, choice, text, answered_at, question_id, media, flagged, themes = r
    pseudonym, name, language, age_band, area, extra = person
    return (
        f"A-{_id}",
        pseudonym,
        name,
        "answer",
        asked.project,
        question_id,
        asked.text,
        None,
        None,
        None,
        None,
        None,
        text,
        choice,
        asked.label(choice),
        None,
        tuple(media.split(" ")) if media else (),
        language,
        _local(answered_at, tz),
        bool(flagged),
        age_band,
        area,
        extra,
        themes,
    )
