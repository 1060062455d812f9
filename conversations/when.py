"""Reading the times facilitators type: "24/12/2026 18:00", "today 18:00", "tomorrow 9am",
"9pm", "18:00", "Monday 18:00"."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, tzinfo

from bot.delivery import quiet_hours_end
from bot.settings import Settings

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
# Days counted from today, in English and Welsh.
RELATIVE_DAYS = {"today": 0, "heddiw": 0, "tomorrow": 1, "tmrw": 1, "yfory": 1}
_TIME = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm)?$", re.ASCII)
_DATE = re.compile(r"^(\d{1,4})[/\-.](\d{1,2})(?:[/\-.](\d{2,4}))?$", re.ASCII)
_FILLER = {"at", "am", "yn", "ar"}  # "tomorrow at 9am"; "am" alone follows a number


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
    """A day and a time, as an aware datetime in `tz`: "24/12/2026 18:00", "today 18:00",
    "tomorrow 9am", "18:00 tomorrow", or a time alone ("9pm": the next time the clock shows
    it). The day may come before or after the time."""
    words = _join_am_pm(text.replace(",", " ").strip().lower().split())
    words = [w for w in words if w not in _FILLER]
    today = now.astimezone(tz).date()
    if len(words) == 1:
        at = parse_time(words[0])
        return next_daily(now, at, tz) if at is not None else None
    if len(words) != 2:
        return None
    for day_word, time_word in (words, words[::-1]):
        at = parse_time(time_word)
        if at is None:
            continue
        if day_word in RELATIVE_DAYS:
            day: date | None = today + timedelta(days=RELATIVE_DAYS[day_word])
        else:
            day = parse_date(day_word, today)
        if day is not None:
            return datetime.combine(day, at).replace(tzinfo=tz)
    return None


def _join_am_pm(words: list[str]) -> list[str]:
    """ "9 am" → "9am", so that a space before am/pm does not split the time in two."""
    joined: list[str] = []
    for word in words:
        if word in {"am", "pm"} and joined and parse_time(joined[-1] + word) is not None:
            joined[-1] += word
        else:
            joined.append(word)
    return joined


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


def quiet_until(at: datetime, settings: Settings) -> datetime | None:
    """When the quiet hours that `at` falls in end (what is due then waits till that time);
    None if `at` is outside them. The outbox (bot/delivery.py) does the holding."""
    return quiet_hours_end(at, settings.quiet, settings.tz)
