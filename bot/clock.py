"""The one injectable clock: everything that asks "what time is it?" asks a Clock."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    """Something that says what time it is, as an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """Reads the system time in the configured time zone."""

    def __init__(self, tz: tzinfo | str = "Europe/London") -> None:
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz

    def now(self) -> datetime:
        """Returns the current time in the clock's zone."""
        return datetime.now(self.tz)


class FakeClock:
    """A clock that only moves when told to: for tests and rehearsals."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        """Returns the time the clock was set to."""
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Moves the clock forward and returns the new time."""
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        """Puts the clock at a given time."""
        self._now = when
