"""Times across the storage boundary: one pair of functions, and nobody above storage parses
stored text again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from storage.times import from_db, to_db

ROOT = Path(__file__).resolve().parent.parent
# These parse what a person typed, a CLI argument or a setting, never a stored time.
PARSES_INPUT = {"bot/export_args.py", "conversations/when.py", "bot/settings.py"}


def test_a_time_survives_the_round_trip_to_the_second() -> None:
    when = datetime(2026, 12, 1, 10, 0, 5, 999_999, tzinfo=UTC)
    text = to_db(when)
    assert text == "2026-12-01T10:00:05+00:00"
    back = from_db(text)
    assert back == when.replace(microsecond=0)
    assert back.tzinfo is not None and back.utcoffset() == timedelta(0)


def test_none_stays_none() -> None:
    assert from_db(None) is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        to_db(datetime(2026, 12, 1, 10, 0))
    with pytest.raises(ValueError):
        from_db("2026-12-01T10:00:00")


def test_other_time_zones_become_utc() -> None:
    summer = datetime(2026, 7, 1, 18, 30, tzinfo=ZoneInfo("Europe/London"))
    assert to_db(summer) == "2026-07-01T17:30:00+00:00"
    assert to_db(datetime(2026, 12, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-12-01T10:00:00+00:00"
    )
    back = from_db("2026-12-01T12:00:00+02:00")
    assert back == datetime(2026, 12, 1, 10, 0, tzinfo=UTC) and back.tzinfo == UTC


def test_stored_text_still_sorts_as_time() -> None:
    # SQL compares the text, so a later time must be a larger string (no migration needed).
    early = datetime(2026, 12, 1, 23, 0, tzinfo=ZoneInfo("America/New_York"))
    late = datetime(2026, 12, 2, 4, 30, tzinfo=ZoneInfo("Europe/London"))
    assert early < late and to_db(early) < to_db(late)


def test_nothing_above_storage_parses_stored_times() -> None:
    found = []
    for folder in ("bot", "conversations"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in PARSES_INPUT:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "fromisoformat(" in line:
                    found.append(f"{name}:{number}")
    assert found == []
