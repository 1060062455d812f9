"""The overview's figures: the live counters, and who takes part by "about you" group.

Who takes part is /stats's own reading (storage/stats.py), with its suppression (a count from
1 to 9 is hidden, and so is any count that would give one away by subtraction), shown as
conversations/stats.py shows it. The members counter is /stats's "joined", hidden when /stats
hides it (the breakdowns add up to it). Joined in the last 7 days is a count of people too: it
is hidden from 1 to 9. Stories, ideas, answers and flags waiting count things staff read one
by one anyway, and a flag waiting must never be hidden: they are shown as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from conversations.context import Resources
from conversations.stats import group_name, shown, top_groups
from storage.stats import ABOUT_FIELDS, JOINED, TOOK_PART, hidden_in_stats
from storage.suppression import hidden_counts
from storage.workbench import Reader

LANGUAGE = "en"  # the workbench's pages are in English (so far)
RECENT = timedelta(days=7)


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


async def figures(resources: Resources, reader: Reader) -> Figures:
    """Reads (on the workbench's own connection) and suppresses the overview's figures."""
    settings, lang = resources.settings, LANGUAGE
    counts = await reader.counters(since=resources.clock.now() - RECENT)
    extra = settings.about_extra_question
    fields = [field for field in ABOUT_FIELDS if field != "extra" or extra]
    overview = await reader.stats.overview(fields)
    members = overview.membership
    breakdowns = {field: top_groups(overview.breakdowns[field], lang) for field in fields}
    hidden = hidden_in_stats(members, breakdowns)
    recent_hidden = hidden_counts({"recent": counts.joined_since})
    counters = (
        Counter("members", "Members", shown(members.joined, JOINED in hidden, lang)),
        Counter(
            "joined_recently",
            "Joined in the last 7 days",
            shown(counts.joined_since, "recent" in recent_hidden, lang),
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
