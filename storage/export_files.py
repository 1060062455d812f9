"""Rows into files: CSV, Excel (xlsx) or JSON Lines, one row per response under a header of
COLUMNS, and the media files the rows name into a zip. `write_rows` streams rows into one
file, or several of about a given size; storage/export_rows.py reads the rows and
storage/export.py puts the two together. The tables beside the responses (votes, statements,
status history: storage/export_ideas.py) go into a workbook's sheets (`XlsxSink.start_table`)
or a CSV or JSON Lines file each (`write_table`), their cells made safe the same way.

Cells are written so that a spreadsheet shows them as text: never run as a formula (CSV gets
a leading quote, Excel gets strings), which is what an answer like `=HYPERLINK(…)` would
otherwise be.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import aclosing
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import xlsxwriter

from storage.export_rows import FLAG_COLUMN, MEDIA_COLUMN, WHEN_COLUMN, Row, columns

FORMATS = ("csv", "xlsx", "json")
SUFFIXES = {"csv": ".csv", "xlsx": ".xlsx", "json": ".jsonl"}
NOT_TEXT = ("question_id", "media_files", "submitted_at", "safeguarding_flag")


def text_columns(names: tuple[str, ...]) -> tuple[int, ...]:
    """Where the text cells are (a part of any kind is text)."""
    return tuple(i for i, name in enumerate(names) if name not in NOT_TEXT)


# A cell that starts with one of these is read as a formula by spreadsheets (OWASP, CSV
# injection); in CSV it gets a leading single quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_576  # Excel's limit per sheet, header included
XLSX_MAX_CELL = 32_767  # Excel's limit on the characters in one cell

Progress = Callable[[int, int], None]


class Sink(Protocol):
    """Writes rows into one file; `size` is about how large the file has grown."""

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
        self._columns = columns()
        self._text = text_columns(self._columns)
        self._csv.writerow(self._columns)

    def write(self, row: Row) -> None:
        cells = list(row)  # None is written as an empty cell, a number as its digits
        for i in self._text:
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
        self._columns = columns()

    def write(self, row: Row) -> None:
        record = dict(zip(self._columns, map(_json_value, row), strict=True))
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
        self._title, self._names = "Responses", columns()
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
        title = self._title
        sheet = self._book.add_worksheet(title if self._sheets == 1 else f"{title} {self._sheets}")
        sheet.freeze_panes(1, 0)
        names = self._names
        sheet.set_column(0, len(names) - 1, 16)
        for column, name in enumerate(names):
            if name.endswith("_at"):
                sheet.set_column(column, column, 20)
        for column, title in enumerate(names):
            sheet.write_string(0, column, title, self._bold)
        self._sheet = sheet
        self._row = 1

    def start_table(self, title: str, names: tuple[str, ...]) -> None:
        """Rows written from now on go to a new sheet of this title, under these columns
        (a table beside the responses, storage/export_ideas.py)."""
        self._title, self._names, self._sheets = title, names, 0
        self._new_sheet()

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


SINKS: dict[str, Callable[[Path], Sink]] = {
    "csv": CsvSink,
    "xlsx": XlsxSink,
    "json": JsonLinesSink,
}


class MediaZip:
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


async def write_rows(
    chunks: AsyncGenerator[list[Row], None],
    fmt: str,
    paths: Iterator[Path],
    made: list[Path],
    *,
    max_bytes: int | None = None,
    media: MediaZip | None = None,
    progress: Progress | None = None,
    total: int = 0,
    finish: Callable[[Sink], Awaitable[None]] | None = None,
) -> int:
    """Streams rows into files of a format (one of FORMATS) taken from `paths` (listed in
    `made` as they are opened), a new one whenever `max_bytes` is reached; returns how many
    rows it wrote. With no rows at all it writes one file, the header alone.

    Adds the files each row names to `media`; calls `progress(done, total)` after each chunk;
    calls `finish` with the last file before it is closed (to add sheets to a workbook).
    """
    opened = SINKS[fmt]
    written = 0
    sink: Sink | None = None
    try:
        async with aclosing(chunks):
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
        if finish is not None:
            await finish(sink)
    finally:
        if sink is not None:
            sink.close()
    return written


# ---- tables beside the responses (storage/export_ideas.py), each a file of its own


def table_cell(value: Any) -> Any:
    """A cell of a table's CSV: text safe from formulas, a time in ISO 8601, yes or no."""
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value  # a number, or None (an empty cell)


async def write_table(
    chunks: AsyncGenerator[list[Row], None], fmt: str, path: Path, names: tuple[str, ...]
) -> int:
    """Writes a table's rows to one CSV or JSON Lines file under `names`; returns how many."""
    out = _Utf8File(path, bom=fmt == "csv")
    written = 0
    try:
        if fmt == "csv":
            writer = csv.writer(out.buffer)
            writer.writerow(names)
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        async with aclosing(chunks):
            async for chunk in chunks:
                for row in chunk:
                    if fmt == "csv":
                        writer.writerow([table_cell(v) for v in row])
                    else:
                        record = dict(zip(names, map(_json_value, row), strict=True))
                        out.buffer.write(dumps(record) + "\n")
                    out.written()
                written += len(chunk)
    finally:
        out.close()
    return written
