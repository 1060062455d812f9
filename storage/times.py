"""Times across the storage boundary: the one place they turn into text and back.

Repositories take and return aware datetimes. In SQLite a time is UTC ISO text to the second
("2026-12-01T10:00:00+00:00"), which sorts and compares correctly as text in SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def to_db(when: datetime) -> str:
    """An aware datetime as stored: UTC ISO text to the second. Naive ones are refused."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("a stored time needs a time zone")
    return when.astimezone(UTC).replace(microsecond=0).isoformat()


@overload
def from_db(text: str) -> datetime: ...
@overload
def from_db(text: None) -> None: ...
def from_db(text: str | None) -> datetime | None:
    """A stored time as an aware UTC datetime; None stays None."""
    if text is None:
        return None
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"stored time without a time zone: {text!r}")
    return when.astimezone(UTC)
