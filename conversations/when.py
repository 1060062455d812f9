"""Reading the times facilitators type: "24/12/2026 18:00", "18:00", "Monday 18:00"."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

WEEKDAYS = {
    name: index
    for index, names in enumerate(
        (
            ("monday", "mon", "dydd llun", "llun"),
            ("tuesday", "tue", "tues", "dydd mawrth", "mawrth"),
            ("wednesday", "wed", "dydd mercher", "mercher"),
            ("thursday", "thu", "thur", "thurs", "dydd iau", "iau"),
            ("friday", "fri", "dydd gwener", "gwener"),
            ("saturday", "sat", "dydd sadwrn", "sadwrn"),
            ("sunday", "sun", "dydd sul", "sul"),
        )
    )
    for name in names
}
_TIME = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?$")
_DATE = re.compile(r"^(\d{1,4})[/\-.](\d{1,2})(?:[/\-.](\d{2,4}))?$")


def parse_time(text: str) -> time | None:
    """18:00, 18.00, 6pm, 6:30 pm."""
    found = _TIME.match(text.strip().lower())
    if not found:
        return None
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    suffix = found.group(3)
    if suffix:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    if hour > 23 or minute > 59 or (found.group(2) is None and suffix is None):
        return None
    return time(hour, minute)


def parse_date(text: str, today: date) -> date | None:
    """24/12/2026, 2026-12-24, 24/12 (the next such day)."""
    found = _DATE.match(text.strip())
    if not found:
        return None
    a, b, c = found.group(1), found.group(2), found.group(3)
    try:
        if len(a) == 4:  # 2026-12-24
            if c is None:
                return None
            return date(int(a), int(b), int(c))
        year = int(c) + (2000 if c and len(c) == 2 else 0) if c else today.year
        day = date(year, int(b), int(a))
    except ValueError:
        return None
    if c is None and day < today:
        day = day.replace(year=today.year + 1)
    return day


def parse_at(text: str, now: datetime, tz: tzinfo) -> datetime | None:
    """A date and a time, as an aware datetime in `tz`."""
    parts = text.strip().split()
    if len(parts) != 2:
        return None
    day = parse_date(parts[0], now.astimezone(tz).date())
    at = parse_time(parts[1])
    if day is None or at is None:
        return None
    return datetime.combine(day, at).replace(tzinfo=tz)


def parse_weekly(text: str) -> tuple[int, time] | None:
    """ "Monday 18:00" → (0, 18:00)."""
    words = text.strip().lower().split()
    if len(words) < 2:
        return None
    at = parse_time(words[-1])
    weekday = WEEKDAYS.get(" ".join(words[:-1]))
    if at is None or weekday is None:
        return None
    return weekday, at


def next_daily(now: datetime, at: time, tz: tzinfo) -> datetime:
    """The next time the clock shows `at` (today if still ahead)."""
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), at).replace(tzinfo=tz)
    return candidate if candidate > local else candidate + timedelta(days=1)


def next_weekly(now: datetime, weekday: int, at: time, tz: tzinfo) -> datetime:
    """The next `weekday` at `at` (today if still ahead)."""
    local = now.astimezone(tz)
    ahead = (weekday - local.weekday()) % 7
    candidate = datetime.combine(local.date() + timedelta(days=ahead), at).replace(tzinfo=tz)
    return candidate if candidate > local else candidate + timedelta(days=7)
