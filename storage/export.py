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
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import tzinfo
from itertools import count
from pathlib import Path
from typing import Any

from storage.audit import AuditLog
from storage.db import Database
from storage.export_files import SUFFIXES, MediaZip, Progress, write_rows
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


# ---- the queries
# (storage/export_rows.py) and the writers (storage/export_files.py), put together


class Responses:
    """Every response, streamed for export."""

    def __init__(self, db: Database, pseudonyms: Pseudonyms, audit: AuditLog) -> None:
        self._db, self._audit = db, audit
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
        *,
        max_bytes: int | None = None,
        media: MediaZip | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Streams the rows of one snapshot into files taken from `paths` (see write_rows)."""
        async with self._rows.snapshot() as snapshot:
            total = await snapshot.count(flt) if progress else 0
            return await write_rows(
                snapshot.chunks(flt, tz),
                fmt,
                paths,
                made,
                max_bytes=max_bytes,
                media=media,
                progress=progress,
                total=total,
            )

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
        media: MediaZip | None = None
        try:
            temps.append(_temp_beside(out))
            if media_out is not None:
                temps.append(_temp_beside(media_out))
                media = MediaZip(temps[1], media_dir or Path("."))
            try:
                rows = await self._write(
                    fmt, flt, tz, iter(temps[:1]), [], media=media, progress=progress
                )
            finally:
                if media is not None:
                    media.close()
            os.replace(temps[0], out)
            if media_out is not None:
                os.replace(temps[1], media_out)
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


def _temp_beside(path: Path) -> Path:
    """A new empty file in the same folder, so that the final rename is atomic."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    return Path(name)
