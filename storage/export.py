"""Responses: every story, idea and answer members gave, written out as CSV, Excel or JSON
Lines for organisers (`cocreate export`, /export). Retention is storage/retention.py.

A response is a submitted story or idea (drafts are not) or an answer to a question.
Tables read: submissions, submission_parts, media, safeguarding_flags, answers,
question_rounds, questions, members, projects, about_you, pseudonyms.

Exports read through a read-only connection of their own: WAL gives it one consistent
snapshot while the bot keeps writing, and rows are fetched a chunk at a time and written out
as they come, so memory does not grow with the number of rows. The columns are a contract (README,
"Exports"): add new ones at the end; never rename or reorder them. Telegram user ids, chat
ids and usernames are never selected, so no export can contain them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from collections.abc import Set as AbstractSet
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from itertools import count
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import xlsxwriter

from storage.audit import AuditLog
from storage.db import BUSY_TIMEOUT_MS, Database
from storage.questions import utc
from storage.sharing import Pseudonyms

FORMATS = ("csv", "xlsx", "json")
SUFFIXES = {"csv": ".csv", "xlsx": ".xlsx", "json": ".jsonl"}
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
)
PARTS = ("what_happened", "how_it_affected", "what_would_help", "idea", "who_it_helps")
ABOUT = ("age_band", "area", "extra")
MEDIA_COLUMN = COLUMNS.index("media_files")
WHEN_COLUMN = COLUMNS.index("submitted_at")
FLAG_COLUMN = COLUMNS.index("safeguarding_flag")
TEXT_COLUMNS = tuple(
    i
    for i, name in enumerate(COLUMNS)
    if name not in ("question_id", "media_files", "submitted_at", "safeguarding_flag")
)
CHUNK = 2000
YES_NO = {"yes": "Yes", "no": "No"}
# A cell that starts with one of these is read as a formula by spreadsheets (OWASP, CSV
# injection); in CSV it gets a leading single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_576  # Excel's limit per sheet, header included
XLSX_MAX_CELL = 32_767  # Excel's limit on the characters in one cell

# One row: the values of COLUMNS in order. Text is str, ids are int, media_files a tuple of
# file names, submitted_at an aware datetime in TIMEZONE, safeguarding_flag a bool.
Row = tuple[Any, ...]
Progress = Callable[[int, int], None]


class BadExport(ValueError):
    """What was asked for cannot be exported; the message is one sentence for a person."""


@dataclass(frozen=True)
class ExportFilter:
    """Which responses to export. Bounds are aware datetimes: `since` inclusive, `until` not."""

    project: str | None = None
    question_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_arguments(
        cls,
        *,
        project: str | None,
        question: str | None,
        since: str | None,
        until: str | None,
        tz: tzinfo,
    ) -> ExportFilter:
        """Reads command-line values; a date alone covers that whole day in TIMEZONE."""
        question_id = None
        if question is not None:
            if not question.strip().isdigit():
                raise BadExport(f"--question takes a question number, not {question!r}.")
            question_id = int(question)
        start = parse_when(since, tz, "--since") if since else None
        end = parse_when(until, tz, "--until", end_of_day=True) if until else None
        if start is not None and end is not None and start >= end:
            raise BadExport("--since must be before --until.")
        return cls(project or None, question_id, start, end)

    def for_audit(self) -> dict[str, Any]:
        """The filter as the audit log keeps it (only what was set)."""
        values = {
            "project": self.project,
            "question": self.question_id,
            "since": utc(self.since) if self.since else None,
            "until": utc(self.until) if self.until else None,
        }
        return {k: v for k, v in values.items() if v is not None}


def parse_when(text: str, tz: tzinfo, option: str, *, end_of_day: bool = False) -> datetime:
    """`2026-12-01` (the start of that day, or with end_of_day the start of the next) or an
    ISO date and time (in TIMEZONE unless it carries an offset)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + timedelta(days=1 if end_of_day else 0)
            return datetime(day.year, day.month, day.day, tzinfo=tz)
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadExport(f"{option} {text!r} is not a date like 2026-12-01.") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def check_out(out: Path) -> None:
    """Refuses an output path whose folder does not exist, or which is a folder."""
    if not out.parent.is_dir():
        raise BadExport(f"The folder {str(out.parent)!r} does not exist.")
    if out.is_dir():
        raise BadExport(f"{str(out)!r} is a folder; give a file name.")


def check_format(fmt: str) -> str:
    """The format, or BadExport."""
    if fmt not in FORMATS:
        raise BadExport(f"--format must be csv, xlsx or json, not {fmt!r}.")
    return fmt


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    rows: int
    files: tuple[Path, ...]
    seconds: float
    media_zip: Path | None = None
    media_added: int = 0
    media_missing: int = 0


# ---- the queries

_ABOUT_SQL = ", ".join(
    f"(SELECT answer FROM about_you WHERE member_id = m.id AND field = '{f}') AS {f}" for f in ABOUT
)
_PARTS_SQL = ", ".join(
    f"(SELECT text FROM submission_parts WHERE submission_id = s.id AND part = '{p}') AS {p}"
    for p in PARTS
)
_SUBMISSIONS_FROM = (
    " FROM submissions s LEFT JOIN projects p ON p.id = s.project_id WHERE s.status = 'submitted'"
)
_SUBMISSIONS_SELECT = (
    "SELECT s.id, s.member_id, s.kind, p.code AS project, s.language, s.volunteer,"
    " s.submitted_at, "
    + _PARTS_SQL
    + ", (SELECT group_concat(file_name, ' ') FROM (SELECT file_name FROM media"
    " WHERE submission_id = s.id ORDER BY id)) AS media,"
    " EXISTS (SELECT 1 FROM safeguarding_flags WHERE submission_id = s.id) AS flagged"
)
_ANSWERS_FROM = (
    " FROM answers a JOIN question_rounds r ON r.id = a.round_id"
    " JOIN questions q ON q.id = r.question_id WHERE 1 = 1"
)
# What is the same on every row of a member or of a question is read once (see _Facts).
_ANSWERS_SELECT = (
    "SELECT a.id, a.member_id, a.choice, a.text, a.answered_at, r.question_id,"
    " (SELECT group_concat(file_name, ' ') FROM (SELECT file_name FROM media"
    " WHERE answer_id = a.id ORDER BY id)) AS media,"
    " EXISTS (SELECT 1 FROM safeguarding_flags WHERE answer_id = a.id) AS flagged"
)
_MEMBERS_SELECT = (
    "SELECT m.id, m.display_name, m.language, "
    + _ABOUT_SQL
    + " FROM members m WHERE m.id IN (SELECT value FROM json_each(?))"
)
_QUESTIONS_SELECT = (
    "SELECT id, text, kind, options, audience FROM questions"
    " WHERE id IN (SELECT value FROM json_each(?))"
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
        params.append(utc(flt.since))
    if flt.until is not None:
        sql += " AND s.submitted_at < ?"
        params.append(utc(flt.until))
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
        params.append(utc(flt.since))
    if flt.until is not None:
        sql += " AND a.answered_at < ?"
        params.append(utc(flt.until))
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

    def __init__(self, conn: aiosqlite.Connection, pseudonyms: Pseudonyms) -> None:
        self._conn, self._pseudonyms = conn, pseudonyms
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
            async with self._conn.execute(_MEMBERS_SELECT, (json.dumps(sorted(missing)),)) as cur:
                found = await cur.fetchall()
            pseudonyms = await self._pseudonyms.of_many(r[0] for r in found)
            for member_id, name, language, age_band, area, extra in found:
                pseudonym = pseudonyms[member_id]
                self.members[member_id] = (pseudonym, name, language, age_band, area, extra)
        missing = question_ids - self.questions.keys()
        if missing:
            async with self._conn.execute(_QUESTIONS_SELECT, (json.dumps(sorted(missing)),)) as cur:
                for question_id, text, kind, options, audience in await cur.fetchall():
                    scope, _, code = str(audience).partition(":")
                    self.questions[question_id] = Asked(
                        text=text,
                        kind=kind,
                        options=tuple(str(x) for x in json.loads(options)),
                        project=code if scope == "project" else None,
                    )


# ---- the writers


class _Sink(Protocol):
    def write(self, row: Row) -> None: ...

    def size(self) -> int: ...

    def close(self) -> None: ...


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet will show as text, never run as a formula (OWASP)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class _Utf8File:
    """A UTF-8 file written through an in-memory buffer of text, emptied every 256 kB: one
    encode and one write a buffer, not a row. `size` is exact to within the buffer."""

    FLUSH_AT = 1 << 18  # characters

    def __init__(self, path: Path, bom: bool = False) -> None:
        self._raw = path.open("wb")
        self.buffer = io.StringIO()
        self._bytes = self._raw.write(b"\xef\xbb\xbf") if bom else 0

    def written(self) -> None:
        """Called after each row: empties the buffer into the file once it is large."""
        if self.buffer.tell() >= self.FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        data = self.buffer.getvalue().encode("utf-8")
        self._bytes += self._raw.write(data)
        self.buffer.seek(0)
        self.buffer.truncate()

    def size(self) -> int:
        return self._bytes + self.buffer.tell()

    def close(self) -> None:
        try:
            self._flush()
        finally:
            self._raw.close()


class CsvSink:
    """UTF-8 with a byte-order mark (so Excel reads accents), one header row."""

    def __init__(self, path: Path) -> None:
        self._file = _Utf8File(path, bom=True)
        self._csv = csv.writer(self._file.buffer)
        self._csv.writerow(COLUMNS)

    def write(self, row: Row) -> None:
        cells = list(row)  # None is written as an empty cell, a number as its digits
        for i in TEXT_COLUMNS:
            text = cells[i]
            if text and text.startswith(FORMULA_STARTS):
                cells[i] = "'" + text
        media = cells[MEDIA_COLUMN]
        cells[MEDIA_COLUMN] = neutralise(" ".join(media)) if media else None
        cells[WHEN_COLUMN] = cells[WHEN_COLUMN].isoformat()
        cells[FLAG_COLUMN] = "yes" if cells[FLAG_COLUMN] else "no"
        self._csv.writerow(cells)
        self._file.written()

    def size(self) -> int:
        return self._file.size()

    def close(self) -> None:
        self._file.close()


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


class JsonLinesSink:
    """One JSON object per line, keyed by the column names."""

    def __init__(self, path: Path) -> None:
        self._file = _Utf8File(path)
        self._dumps = json.JSONEncoder(ensure_ascii=False).encode

    def write(self, row: Row) -> None:
        record = dict(zip(COLUMNS, map(_json_value, row), strict=True))
        self._file.buffer.write(self._dumps(record) + "\n")
        self._file.written()

    def size(self) -> int:
        return self._file.size()

    def close(self) -> None:
        self._file.close()


class XlsxSink:
    """xlsxwriter in constant_memory mode: each row goes to disk as it is written.

    Text is always written as text (never a formula, number or link), submitted_at as a real
    date and time in TIMEZONE; the header row is frozen. Past Excel's row limit the rows go
    on in a new sheet. `size` is an estimate (the text written), above the zipped file's size.
    """

    def __init__(self, path: Path) -> None:
        self._book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
            },
        )
        self._bold = self._book.add_format({"bold": True})
        self._when = self._book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self._sheets = 0
        self._bytes = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self._sheets += 1
        name = "Responses" if self._sheets == 1 else f"Responses {self._sheets}"
        sheet = self._book.add_worksheet(name)
        sheet.freeze_panes(1, 0)
        sheet.set_column(0, len(COLUMNS) - 1, 16)
        sheet.set_column(COLUMNS.index("submitted_at"), COLUMNS.index("submitted_at"), 20)
        for column, title in enumerate(COLUMNS):
            sheet.write_string(0, column, title, self._bold)
        self._sheet = sheet
        self._row = 1

    def write(self, row: Row) -> None:
        if self._row >= XLSX_MAX_ROWS:
            self._new_sheet()
        sheet, r = self._sheet, self._row
        for c, value in enumerate(row):
            if value is None:
                continue
            if isinstance(value, str):
                if value:
                    sheet.write_string(r, c, value[:XLSX_MAX_CELL])
                    self._bytes += len(value)
            elif isinstance(value, bool):
                sheet.write_string(r, c, "yes" if value else "no")
            elif isinstance(value, datetime):
                sheet.write_datetime(r, c, value.replace(tzinfo=None), self._when)
            elif isinstance(value, int):
                sheet.write_number(r, c, value)
            elif value:  # media file names
                text = " ".join(value)
                sheet.write_string(r, c, text[:XLSX_MAX_CELL])
                self._bytes += len(text)
            self._bytes += 2
        self._row += 1

    def size(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._book.close()


SINKS: dict[str, Callable[[Path], _Sink]] = {
    "csv": CsvSink,
    "xlsx": XlsxSink,
    "json": JsonLinesSink,
}


class _MediaZip:
    """The files named in media_files, stored under those names (no recompression)."""

    def __init__(self, path: Path, media_dir: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._dir = media_dir
        self.added = 0
        self.missing = 0

    def add(self, names: tuple[str, ...]) -> None:
        for name in names:
            safe = Path(name).name  # names only: never a path from the database
            source = self._dir / safe
            if source.is_file():
                self._zip.write(source, arcname=safe)
                self.added += 1
            else:
                self.missing += 1

    def close(self) -> None:
        self._zip.close()


def _temp_beside(path: Path) -> Path:
    """A new empty file in the same folder, so that the final rename is atomic."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(name)


# ---- the repository


class Responses:
    """Every response, streamed for export."""

    def __init__(self, db: Database, pseudonyms: Pseudonyms, audit: AuditLog) -> None:
        self._db, self._pseudonyms, self._audit = db, pseudonyms, audit

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
    async def _reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read-only connection holding one snapshot of the database until it closes."""
        uri = self._db.path.resolve().as_uri() + "?mode=ro"
        conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        try:
            conn.row_factory = None  # plain tuples: the fastest rows to unpack
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("BEGIN")
            yield conn
        finally:
            await conn.close()

    async def _count(self, conn: aiosqlite.Connection, flt: ExportFilter) -> int:
        total = 0
        submissions = _submissions_where(flt)
        queries = [_answers_where(flt), *([submissions] if submissions else [])]
        for where, params in queries:
            async with conn.execute("SELECT COUNT(*)" + where, params) as cur:
                found = await cur.fetchone()
            total += int(found[0]) if found else 0
        return total

    async def _chunks(
        self, conn: aiosqlite.Connection, flt: ExportFilter, tz: tzinfo
    ) -> AsyncGenerator[list[Row], None]:
        """Stories and ideas (by response id), then answers (by response id)."""
        facts = _Facts(conn, self._pseudonyms)
        submissions = _submissions_where(flt)
        if submissions is not None:
            where, params = submissions
            async with conn.execute(_SUBMISSIONS_SELECT + where + " ORDER BY s.id", params) as cur:
                async with aclosing(_prefetched(cur)) as batches:
                    async for batch in batches:
                        await facts.load({r[1] for r in batch})
                        yield [_submission_row(r, facts.members[r[1]], tz) for r in batch]
        where, params = _answers_where(flt)
        async with conn.execute(_ANSWERS_SELECT + where + " ORDER BY a.id", params) as cur:
            async with aclosing(_prefetched(cur)) as batches:
                async for batch in batches:
                    await facts.load({r[1] for r in batch}, {r[5] for r in batch})
                    people, questions = facts.members, facts.questions
                    yield [_answer_row(r, people[r[1]], questions[r[5]], tz) for r in batch]

    async def rows(self, flt: ExportFilter, tz: tzinfo) -> AsyncIterator[Row]:
        """Every matching response as a row of COLUMNS' values (for tests and small uses)."""
        async with self._reader() as conn, aclosing(self._chunks(conn, flt, tz)) as chunks:
            async for chunk in chunks:
                for row in chunk:
                    yield row

    async def _write(
        self,
        fmt: str,
        flt: ExportFilter,
        tz: tzinfo,
        paths: Iterator[Path],
        made: list[Path],
        *,
        max_bytes: int | None = None,
        media: _MediaZip | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Streams rows into files taken from `paths` (listed in `made` as they are opened),
        a new one whenever `max_bytes` is reached; returns how many rows it wrote."""
        opened = SINKS[check_format(fmt)]
        written = 0
        sink: _Sink | None = None
        try:
            async with self._reader() as conn, aclosing(self._chunks(conn, flt, tz)) as chunks:
                total = await self._count(conn, flt) if progress else 0
                async for chunk in chunks:
                    for row in chunk:
                        if sink is None or (max_bytes is not None and sink.size() >= max_bytes):
                            if sink is not None:
                                sink.close()
                            made.append(next(paths))
                            sink = opened(made[-1])
                        sink.write(row)
                        if media is not None and row[MEDIA_COLUMN]:
                            media.add(row[MEDIA_COLUMN])
                    written += len(chunk)
                    if progress is not None:
                        progress(written, total)
            if sink is None:  # nothing matched: a file with the header only
                made.append(next(paths))
                sink = opened(made[-1])
        finally:
            if sink is not None:
                sink.close()
        return written

    async def export(
        self,
        fmt: str,
        out: Path,
        flt: ExportFilter,
        tz: tzinfo,
        *,
        actor: str,
        media_dir: Path | None = None,
        media_out: Path | None = None,
        progress: Progress | None = None,
    ) -> ExportResult:
        """Writes every matching response to `out` (and, given media_out, their files to a zip),
        whole or not at all: into temporary files beside them, renamed at the end.

        `progress(done, total)` is called after each chunk. The export goes in the audit log.
        """
        check_format(fmt)
        check_out(out)
        if media_out is not None:
            check_out(media_out)
        flt = await self.check(flt)
        started = time.monotonic()
        temp = _temp_beside(out)
        media_temp = _temp_beside(media_out) if media_out is not None else None
        media = _MediaZip(media_temp, media_dir or Path(".")) if media_temp else None
        try:
            try:
                rows = await self._write(
                    fmt, flt, tz, iter([temp]), [], media=media, progress=progress
                )
            finally:
                if media is not None:
                    media.close()
            os.replace(temp, out)
            if media_temp is not None and media_out is not None:
                os.replace(media_temp, media_out)
        except BaseException:
            temp.unlink(missing_ok=True)
            if media_temp is not None:
                media_temp.unlink(missing_ok=True)
            raise
        result = ExportResult(
            rows=rows,
            files=(out,),
            seconds=time.monotonic() - started,
            media_zip=media_out,
            media_added=media.added if media else 0,
            media_missing=media.missing if media else 0,
        )
        await self._log(actor, fmt, flt, result)
        return result

    async def export_parts(
        self,
        fmt: str,
        folder: Path,
        stem: str,
        flt: ExportFilter,
        tz: tzinfo,
        *,
        actor: str,
        max_bytes: int,
    ) -> ExportResult:
        """Writes files `<stem>.<suffix>` in `folder`, or, past about `max_bytes` each, parts
        `<stem>-part1.<suffix>`, `<stem>-part2.<suffix>` … (for uploads with a size limit).

        A part may pass max_bytes by one row. The export goes in the audit log.
        """
        flt = await self.check(flt)
        started = time.monotonic()
        suffix = SUFFIXES[check_format(fmt)]
        paths = (folder / f"{stem}-part{n}{suffix}" for n in count(1))
        made: list[Path] = []
        try:
            rows = await self._write(fmt, flt, tz, paths, made, max_bytes=max_bytes)
        except BaseException:
            for path in made:
                path.unlink(missing_ok=True)
            raise
        if len(made) == 1:
            whole = folder / f"{stem}{suffix}"
            os.replace(made[0], whole)
            made = [whole]
        result = ExportResult(rows=rows, files=tuple(made), seconds=time.monotonic() - started)
        await self._log(actor, fmt, flt, result)
        return result

    async def _log(self, actor: str, fmt: str, flt: ExportFilter, result: ExportResult) -> None:
        detail: dict[str, Any] = {"format": fmt, "rows": result.rows, **flt.for_audit()}
        if result.media_zip is not None:
            detail["media_files"] = result.media_added
        await self._audit.add(actor, "export", **detail)


def _local(stored: str, tz: tzinfo) -> datetime:
    return datetime.fromisoformat(stored).astimezone(tz)


async def _prefetched(cursor: aiosqlite.Cursor) -> AsyncGenerator[list[Any], None]:
    """A cursor's rows a chunk at a time, fetching the next chunk while the caller works on
    this one: SQLite runs in aiosqlite's thread, so the two overlap on a second core."""
    pending = asyncio.ensure_future(cursor.fetchmany(CHUNK))
    try:
        while batch := await pending:
            pending = asyncio.ensure_future(cursor.fetchmany(CHUNK))
            yield list(batch)
    finally:
        if not pending.done():  # stopped early: let the fetch finish before the cursor closes
            await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()  # retrieved, so asyncio does not warn about it


def _submission_row(r: tuple[Any, ...], person: Person, tz: tzinfo) -> Row:
    _id, _, kind, project, language, volunteer, submitted_at = r[:7]
    what_happened, how_it_affected, what_would_help, idea, who_it_helps, media, flagged = r[7:]
    pseudonym, name, _, age_band, area, extra = person
    return (
        f"S-{_id}",
        pseudonym,
        name,
        kind,
        project,
        None,
        None,
        what_happened,
        how_it_affected,
        what_would_help,
        idea,
        who_it_helps,
        None,
        None,
        None,
        volunteer,
        tuple(media.split(" ")) if media else (),
        language,
        _local(submitted_at, tz),
        bool(flagged),
        age_band,
        area,
        extra,
    )


def _answer_row(r: tuple[Any, ...], person: Person, asked: Asked, tz: tzinfo) -> Row:
    _id, _, choice, text, answered_at, question_id, media, flagged = r
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
    )
