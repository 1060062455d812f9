"""The overview's figures: the live counters, and who takes part by "about you" group.

Who takes part is /stats's own reading (storage/stats.py), with its suppression (a count from
1 to 9 is hidden, and so is any count that would give one away by subtraction), shown as
conversations/stats.py shows it. The members counter is /stats's "joined", hidden when /stats
hides it (the breakdowns add up to it). Joined in the last 7 days is a count of people too: it
is hidden from 1 to 9. Stories, ideas, answers and flags waiting count things staff read one
by one anyway, and a flag waiting must never be hidden: they are shown as they are.

How fresh (`Overview`): the counters are read again whenever the database changed (SQLite's
data_version; one statement), so a member's message shows at once. Who takes part by group is
/stats's whole reading, about a second with 100,000 members: it is read again in the
background at most every GROUPS_EVERY seconds after a change, and the page shows the last
reading meanwhile (the members counter is fresh, hidden from 1 to 9, or whenever that
reading hid it). Nothing is read while nothing changed: a page opened again is drawn from
what was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from conversations.context import Resources
from conversations.stats import group_name, shown, top_groups
from storage.stats import ABOUT_FIELDS, JOINED, TOOK_PART, hidden_in_stats
from storage.stats import Overview as StatsReading
from storage.suppression import hidden_counts
from storage.workbench import Counters, Reader

logger = logging.getLogger(__name__)

LANGUAGE = "en"  # the workbench's pages are in English (so far)
RECENT = timedelta(days=7)
GROUPS_EVERY = 30.0  # seconds: who takes part by group is read again at most this often


@dataclass(frozen=True)
class Counter:
    key: str
    label: str
    value: str


@dataclass(frozen=True)
class GroupRow:
    name: str
    took_part: str
    joined: str


@dataclass(frozen=True)
class Breakdown:
    field: str
    title: str
    rows: tuple[GroupRow, ...]


@dataclass(frozen=True)
class Figures:
    """Everything the overview shows, as text (hidden counts are "*")."""

    counters: tuple[Counter, ...]
    took_part: str
    joined: str
    breakdowns: tuple[Breakdown, ...]


class Overview:
    """The overview's figures, read again only when the database changed (see the module)."""

    def __init__(
        self,
        resources: Resources,
        reader: Reader,
        groups_every: float = GROUPS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resources, self.reader = resources, reader
        self.groups_every, self.clock = groups_every, clock
        self.refreshed: Callable[[], None] = lambda: None  # told when groups were read anew
        self._figures: tuple[int, Figures] | None = None  # with the data_version read at
        self._groups: tuple[float, StatsReading] | None = None  # with when it was read
        self._reading: asyncio.Task[None] | None = None

    async def figures(self) -> Figures:
        """The figures as the database is now (what was read, if nothing changed since)."""
        version = await self.reader.changes()
        if self._figures is not None and self._figures[0] == version:
            return self._figures[1]
        counts = await self.reader.counters(since=self.resources.clock.now() - RECENT)
        made = build(self.resources, counts, await self._who_takes_part())
        self._figures = (version, made)
        return made

    async def _who_takes_part(self) -> StatsReading:
        if self._groups is None:
            await self._read_groups()
        elif self.clock() - self._groups[0] >= self.groups_every and (
            self._reading is None or self._reading.done()
        ):
            self._reading = asyncio.create_task(self._read_groups_again())
        assert self._groups is not None
        return self._groups[1]

    async def _read_groups(self) -> None:
        fields = fields_of(self.resources)
        self._groups = (self.clock(), await self.reader.stats.overview(fields))

    async def _read_groups_again(self) -> None:
        try:
            await self._read_groups()
        except Exception:  # the page keeps the last reading; the next change tries again
            logger.exception("Could not read who takes part")
            return
        self._figures = None  # drawn again with the new reading
        self.refreshed()

    async def close(self) -> None:
        """Stops a reading in the background (the server is stopping)."""
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading


def fields_of(resources: Resources) -> list[str]:
    """The "about you" questions asked (the extra one only if set)."""
    extra = resources.settings.about_extra_question
    return [field for field in ABOUT_FIELDS if field != "extra" or extra]


def build(resources: Resources, counts: Counters, reading: StatsReading) -> Figures:
    """The figures from the counters and a reading of who takes part, suppressed."""
    settings, lang = resources.settings, LANGUAGE
    extra = settings.about_extra_question
    fields = fields_of(resources)
    members = reading.membership
    breakdowns = {field: top_groups(reading.breakdowns[field], lang) for field in fields}
    hidden = hidden_in_stats(members, breakdowns)
    fresh = hidden_counts({"members": counts.members, "recent": counts.joined_since})
    # Hidden from 1 to 9, and whenever the reading of who takes part hid it (the parts
    # shown beside it would give it away).
    members_hidden = "members" in fresh or JOINED in hidden
    counters = (
        Counter("members", "Members", shown(counts.members, members_hidden, lang)),
        Counter(
            "joined_recently",
            "Joined in the last 7 days",
            shown(counts.joined_since, "recent" in fresh, lang),
        ),
        Counter("stories", "Stories", str(counts.stories)),
        Counter("ideas", "Ideas", str(counts.ideas)),
        Counter("answers", "Answers to questions", str(counts.answers)),
        Counter("flagged", "Flagged items waiting", str(counts.flagged_waiting)),
    )
    titles = {
        "age_band": "By age",
        "area": "By area",
        "extra": extra,
    }
    tables = tuple(
        Breakdown(
            field=field,
            title=titles[field],
            rows=tuple(
                GroupRow(
                    name=group_name(field, group.answer, lang),
                    took_part=shown(group.took_part, (field, i, TOOK_PART) in hidden, lang),
                    joined=shown(group.joined, (field, i, JOINED) in hidden, lang),
                )
                for i, group in enumerate(groups)
            ),
        )
        for field, groups in breakdowns.items()
    )
    return Figures(
        counters=counters,
        took_part=shown(members.took_part, TOOK_PART in hidden, lang),
        joined=shown(members.joined, JOINED in hidden, lang),
        breakdowns=tables,
    )
