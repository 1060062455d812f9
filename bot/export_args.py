"""`cocreate export`'s options, read and checked before anything is exported: the format, the
file to write, and the filter (storage/ takes the filter as aware datetimes). Each check
raises BadExport with one sentence for the person at the keyboard; bot/cli.py prints it and
exits with status 2.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

from storage.export_files import FORMATS
from storage.export_rows import BadExport, ExportFilter


def check_format(fmt: str) -> str:
    """The format, or BadExport."""
    if fmt not in FORMATS:
        raise BadExport(f"--format must be csv, xlsx or json, not {fmt!r}.")
    return fmt


def check_out(out: Path) -> None:
    """Refuses an output path whose folder does not exist, or which is a folder."""
    if not out.parent.is_dir():
        raise BadExport(f"The folder {str(out.parent)!r} does not exist.")
    if out.is_dir():
        raise BadExport(f"{str(out)!r} is a folder; give a file name.")


def parse_when(text: str, tz: tzinfo, option: str, *, end_of_day: bool = False) -> datetime:
    """A date alone (`2026-12-01`, or `20261201`: the start of that day, or with end_of_day
    the start of the next) or an ISO date and time (in TIMEZONE unless it carries an offset).
    """
    value = text.strip()
    try:
        day = date.fromisoformat(value)  # 2026-12-01, 20261201, 2026-W49-2: a day, however written
    except ValueError:
        pass
    else:
        day += timedelta(days=1 if end_of_day else 0)
        return datetime(day.year, day.month, day.day, tzinfo=tz)
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadExport(f"{option} {text!r} is not a date like 2026-12-01.") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=tz)


def export_filter(
    *,
    project: str | None,
    question: str | None,
    since: str | None,
    until: str | None,
    tz: tzinfo,
) -> ExportFilter:
    """Reads --project, --question, --since and --until; a date alone covers that whole day
    in TIMEZONE."""
    question_id = None
    if question is not None:
        if not question.strip().isdigit():
            raise BadExport(f"--question takes a question number, not {question!r}.")
        question_id = int(question)
    start = parse_when(since, tz, "--since") if since else None
    end = parse_when(until, tz, "--until", end_of_day=True) if until else None
    if start is not None and end is not None and start >= end:
        raise BadExport("--since must be before --until.")
    return ExportFilter(project or None, question_id, start, end)


def could_not_write(out: Path, error: OSError) -> str:
    """One sentence for an OSError met while exporting to `out`: a folder it may not write
    in, a full disk, a file system that is read-only."""
    reason = error.strerror or str(error)
    named = Path(error.filename) if isinstance(error.filename, str) else None
    if named is None or named.parent == out.parent:  # `out`, or a file made beside it
        return f"Could not write {str(out)!r}: {reason}."
    return f"Could not write {str(out)!r}: {reason}: {str(named)!r}."
