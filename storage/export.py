"""Responses: every story, idea and answer members gave, written out as CSV, Excel or JSON
Lines for organisers (`cocreate export`, /export). Retention is storage/retention.py.

A response is a submitted story or idea (drafts are not) or an answer to a question.
Tables read: submissions, submission_parts, media, safeguarding_flags, answers,
question_rounds, questions, members, projects, about_you, pseudonyms.

An export as a whole is here: what the Store calls `responses`, all or nothing (written
beside its file under a temporary name, renamed at the end), whole or in parts, and in the
audit log. storage/export_rows.py reads the responses as rows through one read-only snapshot;
storage/export_files.py writes rows out as files. Options typed on the command line are read
in bot/export_args.py: this module takes aware datetimes and paths.

Votes, statements and the status history of ideas (storage/export_ideas.py) come from the
same snapshot, under the same filter: in Excel as sheets after the responses, in CSV and
JSON Lines as files of their own beside the responses' (`answers-votes.csv` beside
`answers.csv`). A table with no matching row gets no sheet and no file.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import tzinfo
from itertools import count
from pathlib import Path
from typing import Any

from storage.audit import AuditLog
from storage.db import Database
from storage.export_files import (
    SUFFIXES,
    MediaZip,
    Progress,
    Sink,
    XlsxSink,
    write_rows,
    write_table,
)
from storage.export_ideas import TABLES, IdeaTables, Table
from storage.export_rows import ExportFilter, ResponseRows, Row
from storage.sharing import Pseudonyms


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    rows: int
    files: tuple[Path, ...]
    seconds: float
    media_zip: Path | None = None
    media_added: int = 0
    media_missing: int = 0
    tables: dict[str, int] = field(default_factory=dict)  # rows of each table written
    table_files: tuple[Path, ...] = ()  # CSV and JSON Lines: one file per table written


# ---- the queries
# (storage/export_rows.py) and the writers (storage/export_files.py), put together


class Responses:
    """Every response, streamed for export."""

    def __init__(self, db: Database, pseudonyms: Pseudonyms, audit: AuditLog) -> None:
        self._db, self._audit, self._pseudonyms = db, audit, pseudonyms
        self._rows = ResponseRows(db, pseudonyms)

    async def check(self, flt: ExportFilter) -> ExportFilter:
        """The filter with the project's code as stored; BadExport if a project or question
        it names does not exist."""
        return await self._rows.check(flt)

    def rows(self, flt: ExportFilter, tz: tzinfo) -> AsyncIterator[Row]:
        """Every matching response as a row of COLUMNS' values (for tests and small uses)."""
        return self._rows.rows(flt, tz)

    async def _write(
        self,
        fmt: str,
        flt: ExportFilter,
        tz: tzinfo,
        paths: Iterator[Path],
        made: list[Path],
        table_path: Callable[[Table], Path],
        *,
        max_bytes: int | None = None,
        media: MediaZip | None = None,
        progress: Progress | None = None,
    ) -> tuple[int, dict[str, int]]:
        """Streams the rows of one snapshot into files taken from `paths` (see write_rows),
        and the tables beside them: into the last workbook, or each into `table_path(table)`.
        Returns the responses written and the rows of each table written."""
        async with self._rows.snapshot() as snapshot:
            total = await snapshot.count(flt) if progress else 0
            ideas = IdeaTables(snapshot.reader, self._pseudonyms)
            counts = {table.name: await ideas.count(table, flt) for table in TABLES}
            wanted = [table for table in TABLES if counts[table.name]]

            async def sheets(sink: Sink) -> None:
                assert isinstance(sink, XlsxSink)
                for table in wanted:
                    sink.start_table(table.title, table.columns)
                    async for chunk in ideas.chunks(table, flt, tz):
                        for row in chunk:
                            sink.write(row)

            rows = await write_rows(
                snapshot.chunks(flt, tz),
                fmt,
                paths,
                made,
                max_bytes=max_bytes,
                media=media,
                progress=progress,
                total=total,
                finish=sheets if fmt == "xlsx" and wanted else None,
            )
            if fmt != "xlsx":
                for table in wanted:
                    chunks = ideas.chunks(table, flt, tz)
                    counts[table.name] = await write_table(
                        chunks, fmt, table_path(table), table.columns
                    )
            return rows, {name: n for name, n in counts.items() if n}

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
        An OSError (a folder it may not write in, a full disk) leaves no file behind.
        """
        flt = await self.check(flt)
        started = time.monotonic()
        temps: list[Path] = []  # the file, then the media zip, under temporary names
        tables: list[tuple[Path, Path]] = []  # each table's file: temporary name, final name
        media: MediaZip | None = None

        def table_path(table: Table) -> Path:
            final = out.with_name(f"{out.stem}-{table.name}{out.suffix}")
            temps.append(_temp_beside(final))
            tables.append((temps[-1], final))
            return temps[-1]

        try:
            temps.append(_temp_beside(out))
            if media_out is not None:
                temps.append(_temp_beside(media_out))
                media = MediaZip(temps[1], media_dir or Path("."))
            try:
                rows, counts = await self._write(
                    fmt, flt, tz, iter(temps[:1]), [], table_path, media=media, progress=progress
                )
            finally:
                if media is not None:
                    media.close()
            os.replace(temps[0], out)
            if media_out is not None:
                os.replace(temps[1], media_out)
            for temp, final in tables:
                os.replace(temp, final)
        except BaseException:
            for temp in temps:
                temp.unlink(missing_ok=True)
            raise
        result = ExportResult(
            rows=rows,
            files=(out,),
            seconds=time.monotonic() - started,
            media_zip=media_out,
            media_added=media.added if media else 0,
            media_missing=media.missing if media else 0,
            tables=counts,
            table_files=tuple(final for _, final in tables),
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
        suffix = SUFFIXES[fmt]
        paths = (folder / f"{stem}-part{n}{suffix}" for n in count(1))
        made: list[Path] = []
        tables: list[Path] = []

        def table_path(table: Table) -> Path:
            tables.append(folder / f"{stem}-{table.name}{suffix}")
            return tables[-1]

        try:
            rows, counts = await self._write(
                fmt, flt, tz, paths, made, table_path, max_bytes=max_bytes
            )
        except BaseException:
            for path in made + tables:
                path.unlink(missing_ok=True)
            raise
        if len(made) == 1:
            whole = folder / f"{stem}{suffix}"
            os.replace(made[0], whole)
            made = [whole]
        result = ExportResult(
            rows=rows,
            files=tuple(made),
            seconds=time.monotonic() - started,
            tables=counts,
            table_files=tuple(tables),
        )
        await self._log(actor, fmt, flt, result)
        return result

    async def _log(self, actor: str, fmt: str, flt: ExportFilter, result: ExportResult) -> None:
        detail: dict[str, Any] = {"format": fmt, "rows": result.rows, **flt.for_audit()}
        detail.update(result.tables)  # rows of each table beside the responses, if any
        if result.media_zip is not None:
            detail["media_files"] = result.media_added
        await self._audit.add(actor, "export", **detail)


def _temp_beside(path: Path) -> Path:
    """A new empty file in the same folder, so that the final rename is atomic."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(name)
